#!/usr/bin/env node
// The trainer's Python environment, made on first use: a virtual environment keyed by the lock file and the
// Python version, installed from requirements.lock alone (with its hashes), shared by every checkout and by
// .ci/run. Written for any Node >= 18, without dependencies.
//
//   node scripts/env.mjs run -- pytest -q     runs a command in the environment (making it first when missing)
//   node scripts/env.mjs path                 prints where the environment is (making it first when missing)
//
// Wheels: downloaded first into $KILN_WHEEL_CACHE (else <cache>/kiln/wheels), then installed from there offline.
// Where: $KILN_TRAINER_ENV, else $XDG_CACHE_HOME/kiln/python/trainer-<key>, else ~/.cache/kiln/python/trainer-<key>,
// key = the first 16 hex digits of sha256(lock file, Python version). The package itself is not installed: `run`
// puts this checkout's src/ first on PYTHONPATH, so one environment serves every checkout with the same lock.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, EnvError, cacheRoot, ensureEnv, pythonVersion, sayer } from './pyenv.mjs';

const project = fileURLToPath(new URL('..', import.meta.url));
const LOCK_FILE = join(project, 'requirements.lock');
const MIN_PYTHON = [3, 11];

const say = sayer('trainer env');

function fail(message) {
  say(message);
  process.exit(1);
}

/** The first python3 on PATH (or $KILN_PYTHON) that is at least MIN_PYTHON, with its full version. */
export function findPython() {
  const candidates = process.env.KILN_PYTHON ? [process.env.KILN_PYTHON] : ['python3', 'python3.13', 'python3.12', 'python3.11', 'python'];
  const seen = [];
  for (const cmd of candidates) {
    const version = pythonVersion(cmd);
    if (!version) continue;
    const [major, minor] = version.split('.').map(Number);
    if (major > MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor >= MIN_PYTHON[1])) return { cmd, version };
    seen.push(`${cmd} ${version}`);
  }
  throw new EnvError(`needs Python >= ${MIN_PYTHON.join('.')} (found ${seen.length ? seen.join(', ') : 'none'}); set KILN_PYTHON to one`);
}

/** The trainer environment's folder, made first when it is missing, incomplete or from another lock file. */
export function ensure() {
  return ensureEnv({
    lockFile: LOCK_FILE,
    lockName: LOCK_FILE.slice(project.length),
    python: findPython(),
    dirFor: (key) => process.env.KILN_TRAINER_ENV || join(cacheRoot(), 'kiln', 'python', `trainer-${key}`),
    say,
    title: 'trainer environment',
    envVar: 'KILN_TRAINER_ENV',
  });
}

function ensureOrExit() {
  try {
    return ensure();
  } catch (e) {
    if (e instanceof EnvError) fail(e.message);
    throw e;
  }
}

const main = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
const [command, ...rest] = main ? process.argv.slice(2) : [];
if (!main) {
  // imported (scripts/serve-env.mjs): nothing to run
} else if (command === 'path') {
  console.log(ensureOrExit());
} else if (command === 'run') {
  const argv = rest[0] === '--' ? rest.slice(1) : rest;
  if (!argv.length) fail('usage: node scripts/env.mjs run -- <command> [args...]');
  const dir = ensureOrExit();
  const bin = join(dir, BIN);
  const src = join(project, 'src');
  const env = {
    ...process.env,
    VIRTUAL_ENV: dir,
    PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
    PYTHONPATH: [src, process.env.PYTHONPATH].filter(Boolean).join(delimiter),
  };
  const exe = existsSync(join(bin, argv[0])) ? join(bin, argv[0]) : argv[0];
  // Asynchronous, so that SIGINT and SIGTERM reach the command instead of only ending this process: the train
  // stage answers them with a checkpoint and exit 3, which its caller must see.
  const child = spawn(exe, argv.slice(1), { stdio: 'inherit', env, cwd: process.cwd() });
  const forward = (signal) => child.kill(signal);
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, forward);
  child.on('error', (e) => fail(`cannot run ${argv[0]}: ${e.message}`));
  child.on('exit', (code, signal) => {
    if (signal) {
      // Ended by a signal: end the same way, so the caller sees it.
      for (const s of ['SIGINT', 'SIGTERM']) process.off(s, forward);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
} else {
  console.error('usage: node scripts/env.mjs <run -- command [args...] | path>');
  process.exit(2);
}
