#!/usr/bin/env node
// Entry point of the `kiln` command. kiln needs Node 24; when an older Node runs this file (the machine's
// own, outside an npm script), re-run it with the Node 24 that the `node` devDependency installs.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const REQUIRED_MAJOR = 24;
const major = Number(process.versions.node.split('.')[0]);

if (major >= REQUIRED_MAJOR) {
  // Cache compiled (and type-stripped) modules on disk: halves the start-up of every later run.
  const { enableCompileCache } = await import('node:module');
  enableCompileCache?.();
  await import('../src/main.ts');
} else {
  let node;
  try {
    node = join(dirname(createRequire(import.meta.url).resolve('node/package.json')), 'bin', 'node');
  } catch {
    node = undefined;
  }
  if (!node || !existsSync(node) || process.env.KILN_REEXEC) {
    process.stderr.write(`kiln: needs Node ${REQUIRED_MAJOR} or newer, this is ${process.version}.\n` + `  Run \`npm install\` in the kiln repository (it installs Node ${REQUIRED_MAJOR} as a dev dependency), or install Node ${REQUIRED_MAJOR}.\n`);
    process.exit(2);
  }
  // Only here: node:child_process (and node:net under it) is several milliseconds of a start-up.
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(node, [process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, KILN_REEXEC: '1' } });
  process.exit(r.status ?? 1);
}
