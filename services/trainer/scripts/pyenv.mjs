// What the trainer's Python environments share (scripts/env.mjs: the trainer's; scripts/serve-env.mjs: Triton's
// serving one): a virtual environment keyed by its lock file and Python version, made once under
// $XDG_CACHE_HOME/kiln/python (else ~/.cache/kiln/python) behind a mkdir lock, installed offline from a wheel cache
// with the lock file's hashes. Written for any Node >= 18, without dependencies. Errors are `EnvError`s: the CLIs
// print their message and exit 1.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';

export const COMPLETE = '.complete';
export const BIN = process.platform === 'win32' ? 'Scripts' : 'bin';

/** A set-up that cannot go on; its message says what to do. */
export class EnvError extends Error {
  name = 'EnvError';
}

/** `say(line)` to stderr with a prefix, e.g. `trainer env: `. */
export const sayer = (label) => (line) => process.stderr.write(`${label}: ${line}\n`);

/** $XDG_CACHE_HOME, else ~/.cache. */
export const cacheRoot = () => process.env.XDG_CACHE_HOME || join(homedir(), '.cache');

/** Where downloaded wheels are kept: $KILN_WHEEL_CACHE, else <cache>/kiln/wheels. */
export function wheelCache() {
  return process.env.KILN_WHEEL_CACHE || join(cacheRoot(), 'kiln', 'wheels');
}

/** The first 16 hex digits of sha256 over the parts (strings or buffers), NUL-separated. */
export function keyOf(...parts) {
  const h = createHash('sha256');
  parts.forEach((p, i) => {
    if (i) h.update('\0');
    h.update(p);
  });
  return h.digest('hex').slice(0, 16);
}

/** The version of Python `cmd` ("3.11.2"), or undefined when it does not run. */
export function pythonVersion(cmd) {
  const r = spawnSync(cmd, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export const isComplete = (dir, key) => {
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
 * take turns. A lock whose owner (pid on this host) is gone is stale and taken over. Returns the release function.
 */
export function acquire(dir, say) {
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

/** Runs one step of a cold install with its output appended to the log; on failure throws with the log's tail. */
function step(say, n, total, what, log, cmd, args) {
  const t0 = Date.now();
  say(`[${n}/${total}] ${what} ...`);
  const fd = openSync(log, 'a');
  const r = spawnSync(cmd, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (r.status !== 0) {
    const tail = readFileSync(log, 'utf8').split('\n').slice(-30).join('\n');
    throw new EnvError(`${what} failed (${r.error?.message ?? `exit ${r.status}`}); the last lines of ${log}:\n${tail}`);
  }
  say(`[${n}/${total}] ${what}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/**
 * Makes the environment `dir` from `python` ({cmd, version}) and the lock file, then runs `finish(dir, py)` (extra
 * set-up of its own), then writes the completion marker. `envVar` names the variable that may point `dir` anywhere.
 */
function make({ dir, key, python, lockFile, lockName, say, title, envVar, finish }) {
  // Never clear a folder that is not one of ours: the environment variable may point anywhere.
  if (existsSync(dir) && readdirSync(dir).length && !existsSync(join(dir, 'pyvenv.cfg'))) {
    throw new EnvError(`${dir} is neither empty nor a virtual environment; point ${envVar} at an empty or new folder`);
  }
  const t0 = Date.now();
  const log = `${dir}.install.log`;
  writeFileSync(log, `kiln ${title} ${key}, Python ${python.version}, ${new Date().toISOString()}\n`);
  say(`making the environment (Python ${python.version}) in ${dir}; pip's output goes to ${log}`);
  const py = join(dir, BIN, 'python');
  const wheels = wheelCache();
  const pip = ['--require-hashes', '--no-deps', '--only-binary', ':all:', '--no-input', '--disable-pip-version-check', '--progress-bar', 'off'];
  const total = finish ? 4 : 3;
  step(say, 1, total, 'creating the virtual environment', log, python.cmd, ['-m', 'venv', '--clear', dir]);
  // Wheels go to a cache of their own first (pip's HTTP cache keeps few of the big ones): a second environment,
  // or this one made again, installs without downloading. Wheels already there are not fetched again.
  step(say, 2, total, `fetching the wheels of ${lockName} into ${wheels} (hash-checked; only the missing ones)`, log, py, [
    '-m', 'pip', 'download', ...pip, '--dest', wheels, '-r', lockFile,
  ]);
  step(say, 3, total, 'installing them', log, py, ['-m', 'pip', 'install', ...pip, '--no-index', '--find-links', wheels, '-r', lockFile]);
  if (finish) {
    const t1 = Date.now();
    say(`[4/4] finishing the set-up ...`);
    finish(dir, py);
    say(`[4/4] finishing the set-up: done in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  }
  // Written last: an interrupted install has no marker and is made again from scratch.
  writeFileSync(join(dir, COMPLETE), `${key}\nPython ${python.version}\n${new Date().toISOString()}\n`);
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${dir}`);
}

/**
 * The environment's folder, made first when it is missing, incomplete or from another lock file.
 * opts: { lockFile, lockName (as said in messages), python: {cmd, version}, keyParts (more than the lock and the
 * Python version), dirFor(key), say, title, envVar, finish? }.
 */
export function ensureEnv(opts) {
  if (!existsSync(opts.lockFile)) throw new EnvError(`no lock file at ${opts.lockFile}`);
  const key = keyOf(Buffer.concat([readFileSync(opts.lockFile), Buffer.from(`\0python ${opts.python.version}`)]), ...(opts.keyParts ?? []));
  const dir = opts.dirFor(key);
  if (isComplete(dir, key)) return dir;
  const release = acquire(dir, opts.say);
  try {
    if (!isComplete(dir, key)) make({ ...opts, dir, key }); // another set-up may have made it while this one waited
  } finally {
    release();
  }
  return dir;
}
