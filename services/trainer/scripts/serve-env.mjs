#!/usr/bin/env node
// The serving environment: a real tritonserver (nvidia-pytriton's, server 2.51, python backend only) and the
// Python its python backend runs the model in. Made on first use, like the trainer's (scripts/pyenv.mjs: keyed,
// locked, offline from the wheel cache with requirements-serve.lock's hashes). Written for any Node >= 18,
// without dependencies.
//
//   node scripts/serve-env.mjs path              prints where the environment is (making it first when missing)
//   node scripts/serve-env.mjs info              prints what the launcher uses, as JSON (tritonserver, backends, ...)
//   node scripts/serve-env.mjs run -- CMD ...    runs a command with the environment's PATH and libraries
//
// Where: $KILN_SERVE_ENV, else <cache>/kiln/python/serve-<key>, key = sha256(requirements-serve.lock, the Python
// version, the trainer environment's folder). What it holds beyond the lock:
// - kiln-trainer-env.pth: appends the trainer environment's site-packages AFTER this one's, so torch, transformers
//   and tokenizers are shared (not installed twice) while this environment's numpy < 2 comes first.
// - kiln-triton/backends/python/: tritonserver's backend folder with the python backend stub of this Python.
// The Python must be the one whose libpython the stub loads (the dynamic loader's libpython3.X.so.1.0: the
// system's, /usr/bin/python3.11 on Debian 12) and of the trainer environment's minor version; found on PATH, or
// $KILN_SERVE_PYTHON.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensure as ensureTrainerEnv } from './env.mjs';
import { BIN, EnvError, cacheRoot, ensureEnv, pythonVersion, sayer } from './pyenv.mjs';

const project = fileURLToPath(new URL('..', import.meta.url));
const LOCK_FILE = join(project, 'requirements-serve.lock');
const PTH = 'kiln-trainer-env.pth';
const RUNTIME = 'kiln-triton';
const say = sayer('serve env');

const sitePackages = (py) => {
  const r = spawnSync(py, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], { encoding: 'utf8' });
  if (r.status !== 0) throw new EnvError(`cannot ask ${py} for its site-packages: ${r.stderr.trim()}`);
  return r.stdout.trim();
};

/** The libpython3.X.so.1.0 the dynamic loader finds (LD_LIBRARY_PATH first, then ldconfig's cache). */
function loaderLibpython(minor) {
  const name = `libpython3.${minor}.so.1.0`;
  for (const d of (process.env.LD_LIBRARY_PATH ?? '').split(delimiter).filter(Boolean)) {
    if (existsSync(join(d, name))) return join(d, name);
  }
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const hit = (r.stdout ?? '').split('\n').find((l) => l.trim().startsWith(`${name} `));
  if (hit) return hit.split('=>').pop().trim();
  // ldconfig not on PATH (a user's shell without /sbin): the usual system folders.
  for (const d of ['/lib', '/usr/lib', '/lib64', '/usr/lib64', '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu']) {
    if (existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

/** The version that the shared library `lib` reports (Py_GetVersion), loaded by `py` through ctypes. */
function libVersion(py, lib) {
  const code = 'import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).Py_GetVersion; f.restype = ctypes.c_char_p; print(f().decode().split()[0])';
  const r = spawnSync(py, ['-c', code, lib], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** A Python 3.<minor> whose own libpython is the one the loader gives the stub. */
function findServePython(minor) {
  const lib = loaderLibpython(minor);
  if (!lib) {
    throw new EnvError(`no libpython3.${minor}.so.1.0 for the python backend's stub to load; install the system's Python 3.${minor} (Debian: apt-get install python3.${minor} libpython3.${minor} python3.${minor}-venv)`);
  }
  const candidates = process.env.KILN_SERVE_PYTHON
    ? [process.env.KILN_SERVE_PYTHON]
    : [...new Set((process.env.PATH ?? '').split(delimiter).filter(Boolean).flatMap((d) => [`python3.${minor}`, 'python3'].map((n) => join(d, n))))].filter((p) => existsSync(p));
  const seen = [];
  for (const cmd of candidates) {
    const version = pythonVersion(cmd);
    if (!version) continue;
    if (version.split('.')[1] !== String(minor)) {
      seen.push(`${cmd} ${version}`);
      continue;
    }
    const own = libVersion(cmd, lib);
    if (own === version) return { cmd, version };
    seen.push(`${cmd} ${version} (but ${lib} is ${own ?? 'unloadable'})`);
  }
  throw new EnvError(
    `needs the Python 3.${minor} of ${lib} (the python backend stub loads that library, so the environment must come from the same Python); found ${seen.length ? seen.join(', ') : 'none'}; set KILN_SERVE_PYTHON to it`,
  );
}

/** This environment's extra set-up: the .pth to the trainer environment and Triton's backend folder. */
function finish(trainerSite, minor) {
  return (dir, py) => {
    const site = sitePackages(py);
    writeFileSync(join(site, PTH), `${trainerSite}\n`);
    const pkg = join(site, 'pytriton', 'tritonserver');
    const stub = join(pkg, 'python_backend_stubs', `3.${minor}`, 'triton_python_backend_stub');
    if (!existsSync(stub)) throw new EnvError(`nvidia-pytriton has no python backend stub for Python 3.${minor} (${stub})`);
    const backend = join(dir, RUNTIME, 'backends', 'python');
    mkdirSync(backend, { recursive: true });
    for (const f of readdirSync(join(pkg, 'backends', 'python'))) {
      if (statSync(join(pkg, 'backends', 'python', f)).isFile()) copyFileSync(join(pkg, 'backends', 'python', f), join(backend, f));
    }
    copyFileSync(stub, join(backend, 'triton_python_backend_stub'));
    chmodSync(join(backend, 'triton_python_backend_stub'), 0o755);
    // The backend's model imports these: numpy from here (< 2), the rest through the .pth.
    const check = 'import numpy, torch, transformers, tokenizers; assert numpy.__version__ < "2", numpy.__version__; t = torch.from_numpy(numpy.arange(3.0)); assert t.sum().item() == 3.0; print(numpy.__version__, torch.__version__, transformers.__version__)';
    const r = spawnSync(py, ['-c', check], { encoding: 'utf8' });
    if (r.status !== 0) throw new EnvError(`the serving environment cannot import the model's packages:\n${r.stderr.trim().split('\n').slice(-8).join('\n')}`);
    say(`numpy ${r.stdout.trim().split(' ')[0]} with the trainer's torch ${r.stdout.trim().split(' ')[1]}, transformers ${r.stdout.trim().split(' ')[2]}`);
  };
}

/**
 * The serving environment, made first when missing: { dir, python, site, tritonserver, backends, libs, env }, where
 * `env` is what tritonserver needs on top of process.env (PATH with the environment's bin first, LD_LIBRARY_PATH
 * with nvidia_pytriton.libs). Throws EnvError.
 */
export function ensureServeEnv() {
  const trainer = ensureTrainerEnv();
  const trainerPy = join(trainer, BIN, 'python');
  const minor = Number(pythonVersion(trainerPy)?.split('.')[1]);
  if (!minor) throw new EnvError(`the trainer environment's Python does not run (${trainerPy}); remove ${trainer} and make it again`);
  const trainerSite = sitePackages(trainerPy);
  const python = findServePython(minor);
  const dir = ensureEnv({
    lockFile: LOCK_FILE,
    lockName: 'requirements-serve.lock',
    python,
    keyParts: [trainer],
    dirFor: (key) => process.env.KILN_SERVE_ENV || join(cacheRoot(), 'kiln', 'python', `serve-${key}`),
    say,
    title: 'serving environment',
    envVar: 'KILN_SERVE_ENV',
    finish: finish(trainerSite, minor),
  });
  const site = sitePackages(join(dir, BIN, 'python'));
  const libs = join(site, 'nvidia_pytriton.libs');
  return {
    dir,
    python: join(dir, BIN, 'python'),
    site,
    trainer,
    tritonserver: join(site, 'pytriton', 'tritonserver', 'bin', 'tritonserver'),
    backends: join(dir, RUNTIME, 'backends'),
    libs,
    env: {
      VIRTUAL_ENV: dir,
      PATH: [join(dir, BIN), process.env.PATH].filter(Boolean).join(delimiter),
      LD_LIBRARY_PATH: [libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(delimiter),
      PYTHONNOUSERSITE: '1',
    },
  };
}

const main = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (main) {
  const [command, ...rest] = process.argv.slice(2);
  let info;
  try {
    if (['path', 'info', 'run'].includes(command)) info = ensureServeEnv();
  } catch (e) {
    if (!(e instanceof EnvError)) throw e;
    say(e.message);
    process.exit(1);
  }
  if (command === 'path') {
    console.log(info.dir);
  } else if (command === 'info') {
    console.log(JSON.stringify(info, null, 2));
  } else if (command === 'run') {
    const argv = rest[0] === '--' ? rest.slice(1) : rest;
    if (!argv.length) {
      say('usage: node scripts/serve-env.mjs run -- <command> [args...]');
      process.exit(2);
    }
    const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...info.env } });
    for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => child.kill(s));
    child.on('error', (e) => {
      say(`cannot run ${argv[0]}: ${e.message}`);
      process.exit(1);
    });
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  } else {
    console.error('usage: node scripts/serve-env.mjs <path | info | run -- command [args...]>');
    process.exit(2);
  }
}
