#!/usr/bin/env node
// The local execution node's agent (`kiln cluster up` starts it): registers the node, keeps its Lease and runs the
// pods scheduled to it as processes on this machine. TypeScript runs from source on Node 24 (type stripping).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`kiln-local-node: needs Node 24 or newer, this is ${process.version}.\n`);
  process.exit(2);
}
const { main } = await import('../src/main.ts');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`kiln-local-node: ${e?.stack ?? e}\n`);
    process.exitCode = 3;
  },
);
