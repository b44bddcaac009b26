#!/usr/bin/env node
// Builds data-prep's native addon (addon.c: the parse filter's native backend and MinHash's inner loop, with
// tree-sitter's C runtime) into native/build/kiln-data-prep.node;
// run by `npm ci` as @kiln/data-prep's install script, or by hand: `node services/data-prep/native/build.mjs`.
// It never fails the install: without a C compiler or Node-API headers the parse filter uses WebAssembly
// (KILN_PARSE_BACKEND=auto) and MinHash its JavaScript loop, and this prints why.
//
// Headers: node_api.h from the `node` devDependency's platform package (Node's headers ship in it), else from
// $npm_config_nodedir, else next to the running node. No download: nothing here reaches the network.
// The C runtime: the `tree-sitter` package's vendored sources (its own install script is denied in the root
// package.json's allowScripts: its prebuilt addon needs a newer libstdc++ than some machines have, and kiln
// does not use that addon).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const say = (m) => console.log(`@kiln/data-prep native addon: ${m}`);

/** A folder holding node_api.h, or undefined. */
export function nodeApiHeaders(env = process.env) {
  const candidates = [];
  try {
    const nodePkg = dirname(require.resolve('node/package.json'));
    const nested = join(nodePkg, 'node_modules');
    if (existsSync(nested)) for (const d of readdirSync(nested)) if (d.startsWith('node-')) candidates.push(join(nested, d, 'include', 'node'));
  } catch {
    // No `node` package: fall through to the others.
  }
  if (env.npm_config_nodedir) candidates.push(join(env.npm_config_nodedir, 'include', 'node'));
  candidates.push(join(dirname(process.execPath), '..', 'include', 'node'));
  return candidates.find((d) => existsSync(join(d, 'node_api.h')));
}

function build() {
  const headers = nodeApiHeaders();
  if (!headers) return say('no Node-API headers (node_api.h) found; data prep will run without it');
  let runtime;
  try {
    runtime = join(dirname(require.resolve('tree-sitter/package.json')), 'vendor', 'tree-sitter', 'lib');
  } catch {
    return say('the tree-sitter package is not installed; data prep will run without it');
  }
  const out = join(here, 'build');
  mkdirSync(out, { recursive: true });
  const tmp = join(out, `kiln-data-prep.${process.pid}.node`);
  const cc = process.env.CC || 'cc';
  const args = [
    '-O3', '-fPIC', '-shared', '-std=c11', '-fvisibility=hidden',
    '-D_POSIX_C_SOURCE=200112L', '-D_DEFAULT_SOURCE', '-DNAPI_VERSION=8',
    `-I${headers}`, `-I${join(runtime, 'include')}`, `-I${join(runtime, 'src')}`,
    join(here, 'addon.c'), join(runtime, 'src', 'lib.c'),
    ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
    '-o', tmp,
  ];
  try {
    execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    rmSync(tmp, { force: true });
    return say(`${cc} failed (${e.message.split('\n')[0]}); data prep will run without it`);
  }
  renameSync(tmp, join(out, 'kiln-data-prep.node'));
  say(`built native/build/kiln-data-prep.node (headers: ${headers})`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) build();
