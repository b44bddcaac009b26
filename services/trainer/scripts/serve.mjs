#!/usr/bin/env node
// A real tritonserver on this machine (nvidia-pytriton's server 2.51, python backend only; scripts/serve-env.mjs
// makes its environment) serving a model repository. Plain Node ESM, no dependencies. From code:
//
//   import { startTriton, ensureTinyExport, ECHO_REPOSITORY } from '.../services/trainer/scripts/serve.mjs';
//   const triton = await startTriton({ repository: ECHO_REPOSITORY });   // free ports, waits until ready
//   await fetch(`${triton.url}/v2/models/ensemble/generate`, ...);  await triton.stop();
//
// From a shell (stays in the foreground; SIGTERM or Ctrl-C stop it, exit 0):
//
//   node scripts/serve.mjs --repository DIR [--port N] [--grpc-port N] [--metrics-port N] [--host H] [--json]
//   node scripts/serve.mjs --echo          the echo repository      node scripts/serve.mjs --tiny   the tiny export
//
// The server runs in a process group of its own (its python backend stubs with it); stop() sends SIGTERM to the
// group, then SIGKILL after a grace period, and a process that ends without stop() kills the group on its way out.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensure as ensureTrainerEnv } from './env.mjs';
import { EnvError, acquire, cacheRoot, sayer } from './pyenv.mjs';
import { ensureServeEnv } from './serve-env.mjs';

const project = fileURLToPath(new URL('..', import.meta.url));

/** A model repository whose `ensemble` echoes text_input as text_output (word by word when streaming). */
export const ECHO_REPOSITORY = join(project, 'serve-fixtures', 'echo');

/** The name of the model in every kiln repository. */
export const MODEL_NAME = 'ensemble';

const LOG_LINES = 40;
const say = sayer('serve');

/** A port the OS gives free now (closed again before tritonserver binds it). */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Python: SIGTERM to this process when its parent (pid argv[1]) dies (Linux), then exec argv[2:]. */
const PDEATHSIG_EXEC = [
  'import ctypes, os, signal, sys',
  "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)",
  'if os.getppid() != int(sys.argv[1]): sys.exit(1)  # the launcher died before prctl',
  'os.execv(sys.argv[2], sys.argv[2:])',
].join('\n');

/** A Triton server process still to be stopped, by pid: killed (group) when this process exits without stop(). */
const running = new Set();
let exitHook = false;
function track(pid) {
  running.add(pid);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const p of running) {
      try {
        process.kill(-p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

const groupAlive = (pid) => {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};

/** What a folder must hold to be a model repository: a model folder with config.pbtxt. */
function checkRepository(repository) {
  let entries;
  try {
    entries = readdirSync(repository);
  } catch (e) {
    throw new EnvError(`the model repository ${repository} cannot be read (${e.code ?? e.message}); pass a folder that holds <model>/config.pbtxt`);
  }
  const models = entries.filter((m) => existsSync(join(repository, m, 'config.pbtxt')));
  if (!models.length) {
    throw new EnvError(`${repository} is not a Triton model repository (no <model>/config.pbtxt in it); pass an export's <output><target>/ folder`);
  }
  return models;
}

/**
 * Starts tritonserver on `repository` and resolves once `/v2/health/ready` answers 200.
 * opts: repository (required), httpPort / grpcPort / metricsPort (0 or absent: a free port), host (default
 * 127.0.0.1), log(line) (the server's output, line by line), readyTimeoutMs (default 180000), stopGraceMs (default
 * 20000), extraArgs (more tritonserver flags), threads (OMP_NUM_THREADS of the model processes: PyTorch's intra-op
 * threads; on a small busy CPU machine 1 is much faster, docs/serving.md).
 * Resolves { url, grpcUrl, metricsUrl, pid, ports, stop() }; rejects with the server's last log lines when it exits
 * or is not ready in time (the server is stopped first).
 */
export async function startTriton(opts) {
  if (!opts || typeof opts.repository !== 'string' || !opts.repository) throw new TypeError('startTriton: opts.repository (a model repository folder) is required');
  const repository = opts.repository;
  checkRepository(repository);
  const env = ensureServeEnv();
  const host = opts.host ?? '127.0.0.1';
  const ports = {
    http: opts.httpPort || (await freePort(host)),
    grpc: opts.grpcPort || (await freePort(host)),
    metrics: opts.metricsPort || (await freePort(host)),
  };
  const args = [
    `--model-repository=${repository}`,
    `--backend-directory=${env.backends}`,
    `--http-address=${host}`,
    `--http-port=${ports.http}`,
    `--grpc-address=${host}`,
    `--grpc-port=${ports.grpc}`,
    `--metrics-address=${host}`,
    `--metrics-port=${ports.metrics}`,
    '--allow-gpu-metrics=false',
    '--allow-cpu-metrics=false',
    '--exit-on-error=true',
    '--strict-readiness=true',
    `--exit-timeout-secs=${Math.max(1, Math.floor((opts.stopGraceMs ?? 20000) / 1000) - 2)}`,
    ...(opts.extraArgs ?? []),
  ];
  const tail = [];
  const log = opts.log ?? (() => {});
  // The server is exec'd by a two-line Python shim that first asks the kernel for SIGTERM when this process dies
  // (prctl PR_SET_PDEATHSIG, kept across exec): a launcher killed with SIGKILL leaves no server behind.
  const child = spawn(env.python, ['-c', PDEATHSIG_EXEC, String(process.pid), env.tritonserver, ...args], {
    env: { ...process.env, ...env.env, ...(opts.threads ? { OMP_NUM_THREADS: String(opts.threads) } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: stop() ends the python backend stubs with it
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (error) => resolve({ code: null, signal: null, error }));
  });
  if (child.pid) track(child.pid);
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) {
        tail.push(line);
        if (tail.length > LOG_LINES) tail.shift();
        log(line);
      }
    });
  }
  const lastLines = () => tail.map((l) => `  ${l}`).join('\n');
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${ports.http}`;
  let ended;
  exited.then((r) => (ended = r));

  const grace = opts.stopGraceMs ?? 20000;
  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      const pid = child.pid;
      if (pid && !ended) {
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          // already gone
        }
        const t = setTimeout(() => {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // gone
          }
        }, grace);
        await exited;
        clearTimeout(t);
      }
      // The stubs may outlive the server by a moment: wait for the whole group, then make sure of it.
      for (let i = 0; pid && groupAlive(pid) && i < 50; i++) await sleep(100);
      if (pid && groupAlive(pid)) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      running.delete(pid);
    })();
    return stopping;
  };

  const timeoutMs = opts.readyTimeoutMs ?? 180000;
  const t0 = Date.now();
  for (;;) {
    if (ended) {
      const how = ended.error ? `could not start (${ended.error.message})` : `exited (${ended.signal ?? `code ${ended.code}`})`;
      await stop();
      throw new EnvError(`tritonserver ${how} before it was ready on ${repository}; its last lines:\n${lastLines()}`);
    }
    try {
      const r = await fetch(`${url}/v2/health/ready`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > timeoutMs) {
      await stop();
      throw new EnvError(`tritonserver was not ready after ${(timeoutMs / 1000).toFixed(0)} s on ${repository}; its last lines:\n${lastLines()}`);
    }
    await sleep(200);
  }
  return {
    url,
    grpcUrl: `${host}:${ports.grpc}`,
    metricsUrl: `http://${host.includes(':') ? `[${host}]` : host}:${ports.metrics}/metrics`,
    pid: child.pid,
    ports,
    repository,
    exited,
    stop,
  };
}

// --- the tiny export ---------------------------------------------------------------------------------------------

/** Every file under `dir` (relative paths, sorted), for the cache key. */
function filesUnder(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (name === '__pycache__') continue;
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** The key of the tiny export: the trainer's sources, its lock file and the export schemas. */
function tinyKey() {
  const h = createHash('sha256');
  const schemas = join(project, '..', '..', 'schemas', 'stages');
  for (const f of [...filesUnder(join(project, 'src', 'kiln_trainer')), join(project, 'requirements.lock'), ...filesUnder(schemas)]) {
    h.update(relative(project, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * The output folder of a tiny trained model's export (`hf/`, the python target `completions/`, `eval/`), made once
 * per machine by `python -m kiln_trainer.tiny` and cached under <cache>/kiln/tiny-export-<key> (key: the trainer's
 * sources and lock). About a minute on 2 cores the first time; later calls return at once.
 */
export async function ensureTinyExport() {
  const dir = process.env.KILN_TINY_EXPORT || join(cacheRoot(), 'kiln', `tiny-export-${tinyKey()}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return dir;
  const trainer = ensureTrainerEnv();
  const release = acquire(dir, sayer('tiny export'));
  try {
    if (existsSync(done)) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const t0 = Date.now();
    say(`training and exporting the tiny model into ${dir} (once per machine) ...`);
    const python = join(trainer, process.platform === 'win32' ? 'Scripts' : 'bin', 'python');
    const env = { ...process.env, PYTHONPATH: [join(project, 'src'), process.env.PYTHONPATH].filter(Boolean).join(delimiter), HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' };
    const child = spawn(python, ['-m', 'kiln_trainer.tiny', '--output', tmp], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.stdout.resume();
    const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
    if (code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new EnvError(`python -m kiln_trainer.tiny failed (exit ${code}):\n${err.trim()}`);
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    spawnSync('touch', [done]);
    say(`tiny export ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${dir}`);
    return dir;
  } finally {
    release();
  }
}

// --- the CLI -------------------------------------------------------------------------------------------------------

const USAGE = `usage: node scripts/serve.mjs (--repository DIR | --echo | --tiny) [--port N] [--grpc-port N] [--metrics-port N]
                              [--host H] [--threads N] [--ready-timeout S] [--json] [--quiet]
Starts a real tritonserver (python backend) on a model repository, prints its endpoint once it is ready, and stays in
the foreground until SIGTERM or Ctrl-C (exit 0). --echo: the echo model; --tiny: the tiny trained model's export.`;

function parseArgs(argv) {
  const o = {};
  const num = (flag, v) => {
    if (!/^\d+$/.test(v ?? '') || Number(v) > 65535) throw new EnvError(`${flag} needs a port number (0-65535), got ${v ?? 'nothing'}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith('--') && argv[i].includes('=') ? argv[i].split(/=(.*)/s) : [argv[i], undefined];
    const value = () => inline ?? argv[++i];
    if (flag === '--repository') o.repository = value();
    else if (flag === '--port') o.httpPort = num(flag, value());
    else if (flag === '--grpc-port') o.grpcPort = num(flag, value());
    else if (flag === '--metrics-port') o.metricsPort = num(flag, value());
    else if (flag === '--host') o.host = value();
    else if (flag === '--threads') o.threads = num(flag, value());
    else if (flag === '--ready-timeout') o.readyTimeoutMs = Number(value()) * 1000;
    else if (flag === '--echo') o.echo = true;
    else if (flag === '--tiny') o.tiny = true;
    else if (flag === '--json') o.json = true;
    else if (flag === '--quiet') o.quiet = true;
    else if (flag === '--help' || flag === '-h') o.help = true;
    else throw new EnvError(`unknown argument ${argv[i]}\n${USAGE}`);
  }
  return o;
}

async function cli(argv) {
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    say(e.message);
    return 2;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  const sources = [o.repository, o.echo, o.tiny].filter(Boolean).length;
  if (sources !== 1) {
    say(`give one of --repository DIR, --echo, --tiny\n${USAGE}`);
    return 2;
  }
  let signalled;
  const signal = new Promise((resolve) => (signalled = resolve));
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => signalled(s));
  let triton;
  try {
    const repository = o.echo ? ECHO_REPOSITORY : o.tiny ? join(await ensureTinyExport(), 'completions') : o.repository;
    triton = await startTriton({ ...o, repository, log: o.quiet ? undefined : (line) => process.stderr.write(`tritonserver: ${line}\n`) });
  } catch (e) {
    if (!(e instanceof EnvError)) throw e;
    say(e.message);
    return 1;
  }
  if (o.json) console.log(JSON.stringify({ url: triton.url, grpc: triton.grpcUrl, metrics: triton.metricsUrl, model: MODEL_NAME, repository: triton.repository, pid: triton.pid }));
  else console.log(`Triton ready: ${triton.url} (model ${MODEL_NAME}: POST ${triton.url}/v2/models/${MODEL_NAME}/generate)`);
  const r = await Promise.race([triton.exited.then((x) => ({ crashed: x })), signal.then(() => ({}))]);
  if (r.crashed) {
    say(`tritonserver exited on its own (${r.crashed.signal ?? `code ${r.crashed.code}`})`);
    await triton.stop();
    return 1;
  }
  await triton.stop();
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv.slice(2)).then((code) => process.exit(code));
}
