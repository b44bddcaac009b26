#!/usr/bin/env node
// The run controller's own entry point (the kiln/controller image's command), without the CLI.
// TypeScript runs from source on Node 24 (type stripping), as everywhere in kiln.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`kiln-controller: needs Node 24 or newer, this is ${process.version}.\n`);
  process.exit(2);
}
const { main } = await import('../src/main.ts');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`kiln-controller: ${e?.stack ?? e}\n`);
    process.exitCode = 3;
  },
);
