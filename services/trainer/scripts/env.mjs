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
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const project = fileURLToPath(new URL('..', import.meta.url));
const LOCK_FILE = join(project, 'requirements.lock');
const MIN_PYTHON = [3, 11];
const COMPLETE = '.complete';
const BIN = process.platform === 'win32' ? 'Scripts' : 'bin';

const say = (line) => process.stderr.write(`trainer env: ${line}\n`);

function fail(message) {
  say(message);
  process.exit(1);
}

/** The first python3 on PATH (or $KILN_PYTHON) that is at least MIN_PYTHON, with its full version. */
function findPython() {
  const candidates = process.env.KILN_PYTHON ? [process.env.KILN_PYTHON] : ['python3', 'python3.13', 'python3.12', 'python3.11', 'python'];
  const seen = [];
  for (const cmd of candidates) {
    const r = spawnSync(cmd, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const version = r.stdout.trim();
    const [major, minor] = version.split('.').map(Number);
    if (major > MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor >= MIN_PYTHON[1])) return { cmd, version };
    seen.push(`${cmd} ${version}`);
  }
  return fail(`needs Python >= ${MIN_PYTHON.join('.')} (found ${seen.length ? seen.join(', ') : 'none'}); set KILN_PYTHON to one`);
}

function envDir(key) {
  if (process.env.KILN_TRAINER_ENV) return process.env.KILN_TRAINER_ENV;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'kiln', 'python', `trainer-${key}`);
}

/** Where downloaded wheels are kept: $KILN_WHEEL_CACHE, else <cache>/kiln/wheels. */
function wheelCache() {
  if (process.env.KILN_WHEEL_CACHE) return process.env.KILN_WHEEL_CACHE;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'kiln', 'wheels');
}

const isComplete = (dir, key) => {
  try {
    return readFileSync(join(dir, COMPLETE), 'utf8').split('\n')[0] === key;
  } catch {
    return false;
  }
};

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Holds `<dir>.lock` (made with mkdir, which is atomic) while the environment is made, so two set-ups at once
 * take turns. A lock whose owner (pid on this host) is gone is stale and taken over.
 */
function acquire(dir) {
  const lock = `${dir}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  let waiting = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'owner'), `${process.pid}\n${hostname()}\n`);
      return () => rmSync(lock, { recursive: true, force: true });
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let owner;
    try {
      const [pid, host] = readFileSync(join(lock, 'owner'), 'utf8').split('\n');
      owner = { pid: Number(pid), host };
    } catch {
      owner = undefined; // made a moment ago, owner not written yet
    }
    if (owner && owner.host === hostname() && !alive(owner.pid)) {
      say(`taking over a stale lock of pid ${owner.pid} (${lock})`);
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (!waiting && owner) say(`waiting for another set-up (pid ${owner.pid} on ${owner.host}) to finish: ${lock}`);
    waiting = waiting || Boolean(owner);
    sleep(500);
  }
}

/** Runs one step of a cold install with its output appended to the log; on failure prints the log's tail. */
function step(n, total, what, log, cmd, args) {
  const t0 = Date.now();
  say(`[${n}/${total}] ${what} ...`);
  const fd = openSync(log, 'a');
  const r = spawnSync(cmd, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (r.status !== 0) {
    const tail = readFileSync(log, 'utf8').split('\n').slice(-30).join('\n');
    fail(`${what} failed (${r.error?.message ?? `exit ${r.status}`}); the last lines of ${log}:\n${tail}`);
  }
  say(`[${n}/${total}] ${what}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

function make(dir, key, python) {
  // Never clear a folder that is not one of ours: KILN_TRAINER_ENV may point anywhere.
  if (existsSync(dir) && readdirSync(dir).length && !existsSync(join(dir, 'pyvenv.cfg'))) {
    fail(`${dir} is neither empty nor a virtual environment; point KILN_TRAINER_ENV at an empty or new folder`);
  }
  const t0 = Date.now();
  const log = `${dir}.install.log`;
  writeFileSync(log, `kiln trainer environment ${key}, Python ${python.version}, ${new Date().toISOString()}\n`);
  say(`making the environment (Python ${python.version}) in ${dir}; pip's output goes to ${log}`);
  const py = join(dir, BIN, 'python');
  const wheels = wheelCache();
  const pip = ['--require-hashes', '--no-deps', '--only-binary', ':all:', '--no-input', '--disable-pip-version-check', '--progress-bar', 'off'];
  step(1, 3, 'creating the virtual environment', log, python.cmd, ['-m', 'venv', '--clear', dir]);
  // Wheels go to a cache of their own first (pip's HTTP cache keeps few of the big ones): a second environment,
  // or this one made again, installs without downloading. Wheels already there are not fetched again.
  step(2, 3, `fetching the wheels of ${LOCK_FILE.slice(project.length)} into ${wheels} (hash-checked; only the missing ones)`, log, py, [
    '-m', 'pip', 'download', ...pip, '--dest', wheels, '-r', LOCK_FILE,
  ]);
  step(3, 3, 'installing them', log, py, ['-m', 'pip', 'install', ...pip, '--no-index', '--find-links', wheels, '-r', LOCK_FILE]);
  // Written last: an interrupted install has no marker and is made again from scratch.
  writeFileSync(join(dir, COMPLETE), `${key}\nPython ${python.version}\n${new Date().toISOString()}\n`);
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${dir}`);
}

/** The environment's folder, made first when it is missing, incomplete or from another lock file. */
function ensure() {
  if (!existsSync(LOCK_FILE)) fail(`no lock file at ${LOCK_FILE}`);
  const python = findPython();
  const key = createHash('sha256').update(readFileSync(LOCK_FILE)).update(`\0python ${python.version}`).digest('hex').slice(0, 16);
  const dir = envDir(key);
  if (isComplete(dir, key)) return dir;
  const release = acquire(dir);
  try {
    if (!isComplete(dir, key)) make(dir, key, python); // another set-up may have made it while this one waited
  } finally {
    release();
  }
  return dir;
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'path') {
  console.log(ensure());
} else if (command === 'run') {
  const argv = rest[0] === '--' ? rest.slice(1) : rest;
  if (!argv.length) fail('usage: node scripts/env.mjs run -- <command> [args...]');
  const dir = ensure();
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
