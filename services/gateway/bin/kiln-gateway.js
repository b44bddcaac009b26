#!/usr/bin/env node
// Entry point of the serving gateway (`kiln-gateway --config gateway.json`): what the gateway image runs, without
// the kiln CLI. Node 24 runs the TypeScript sources directly.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`kiln-gateway: needs Node 24 or newer, this is ${process.version}.\n`);
  process.exit(2);
}
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../src/main.ts');
