import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolchains } from '../src/executors.ts';
import { findExecutable, Sandbox, SandboxError, type IsolationMode, type RunResult } from '../src/sandbox.ts';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const isRoot = process.getuid?.() === 0;
const sys = [process.env.PATH ?? '', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
const unshare = findExecutable('unshare', sys);
const setpriv = findExecutable('setpriv', sys);
const works = (cmd: string | undefined, args: string[]) => !!cmd && spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
/** The mode this machine should give: what the sandbox's probe must find. */
const expectedMode: IsolationMode = isRoot
  ? works(unshare, ['--net', '--mount', '--pid', '--fork', '--mount-proc', 'true'])
    ? 'full'
    : 'uid'
  : works(unshare, ['--user', '--map-root-user', '--net', '--mount', '--pid', '--fork', 'true'])
    ? 'userns'
    : 'none';
const namespaced = expectedMode === 'full' || expectedMode === 'userns';

/** Every process whose command line contains `needle` (the test's own view of the machine, not the sandbox's). */
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) found.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return found;
}

const tc = await toolchains();
const hasPython = tc.python.available;
const python = tc.python.commands?.python;
let sb: Sandbox;

beforeAll(async () => {
  sb = await Sandbox.create({ concurrency: 2 });
  if (hasPython) expect(await sb.expose(tc.python.roots ?? [])).toEqual([]);
}, 60_000);

afterAll(async () => {
  await sb?.close();
});

const sh = (script: string, extra: Partial<Parameters<Sandbox['run']>[0]> = {}) => sb.run({ argv: ['/bin/sh', '-c', script], files: {}, ...extra });
const py = (code: string, limits: Parameters<Sandbox['run']>[0]['limits'] = {}) =>
  sb.run({ argv: [python!, '-E', '-s', '-S', 'main.py'], files: { 'main.py': code }, limits });

async function stillWorks(): Promise<void> {
  // The test process is alive (we are running) and later samples still run normally, two at a time.
  const [a, b] = await Promise.all([sh('echo ok'), sh('echo ok')]);
  expect(a).toMatchObject({ exitCode: 0, stdout: 'ok\n', timedOut: false });
  expect(b).toMatchObject({ exitCode: 0, stdout: 'ok\n', timedOut: false });
  expect(sb.leftovers()).toEqual([]);
}

describe('sandbox: isolation detection', () => {
  it(`finds the strongest mode this machine allows (${expectedMode}) and describes it`, () => {
    const d = sb.describe();
    expect(d.mode).toBe(expectedMode);
    expect(d.concurrency).toBe(2);
    expect(d.network).toBe(namespaced ? 'namespace' : 'none');
    expect(d.pid).toBe(namespaced ? 'namespace' : 'process group');
    expect(d.filesystem).toBe(namespaced ? 'private /tmp' : 'none');
    expect(d.user).toBe(expectedMode === 'full' || expectedMode === 'uid' ? 'per-slot uid' : 'same uid');
    if (namespaced) expect(d.readOnly).toContain('/');
    expect(d.limits).toEqual(expect.arrayContaining(['RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_CORE=0']));
    if (expectedMode !== 'full') expect(d.warnings.length).toBeGreaterThan(1);
    expect(existsSync(d.baseDir)).toBe(true);
  });
});

describe('sandbox: toolchains in covered directories', () => {
  it.runIf(namespaced)('binds back, read-only, a toolchain that lives under /tmp (a checkout cloned there), and survives its removal', async () => {
    const dir = mkdtempSync('/tmp/kiln-toolchain-');
    const own = await Sandbox.create({ concurrency: 1 });
    const run = (script: string) => own.run({ argv: ['/bin/sh', '-c', script], files: {} });
    try {
      chmodSync(dir, 0o755);
      writeFileSync(path.join(dir, 'tool.sh'), 'echo tool ran\n', { mode: 0o755 });
      // /tmp inside is a private tmpfs: the file is not there until exposed.
      expect((await run(`/bin/sh ${dir}/tool.sh`)).exitCode).not.toBe(0);
      expect(await own.expose([dir])).toEqual([]);
      const after = await run(`/bin/sh ${dir}/tool.sh; echo x > ${dir}/written || echo refused`);
      expect(after.stdout).toBe('tool ran\nrefused\n');
      expect(existsSync(path.join(dir, 'written'))).toBe(false);
      // The directory goes away: later runs still work.
      rmSync(dir, { recursive: true, force: true });
      expect(await run('echo still fine')).toMatchObject({ exitCode: 0, stdout: 'still fine\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await own.close();
    }
  });
});

describe('sandbox: running programs', () => {
  it('runs argv in its own dir with its files, stdin and env (and none of the runner\'s env), then removes the dir', async () => {
    process.env.KILN_TEST_SECRET = 'do-not-leak';
    try {
      const r = await sh('pwd; cat in/a.txt; echo "$FOO"; cat; echo; id -u; env | grep -c KILN_TEST_SECRET; echo oops >&2; exit 4', {
        files: { 'in/a.txt': 'file-content\n' },
        env: { FOO: '{work}/foo' },
        stdin: 'from-stdin',
      });
      const [cwd, content, foo, stdin, uid, secrets] = r.stdout.trim().split('\n');
      expect(r).toMatchObject({ exitCode: 4, signal: null, timedOut: false, stderr: 'oops\n', outputTruncated: false });
      expect(content).toBe('file-content');
      expect(foo).toBe(`${cwd}/foo`);
      expect(stdin).toBe('from-stdin');
      expect(secrets).toBe('0');
      if (expectedMode === 'full' || expectedMode === 'uid') expect(Number(uid)).not.toBe(0);
      expect(cwd!.startsWith(sb.describe().baseDir)).toBe(true);
      expect(existsSync(cwd!)).toBe(false);
    } finally {
      delete process.env.KILN_TEST_SECRET;
    }
  });

  it.runIf(expectedMode === 'full' || expectedMode === 'uid')('two sandboxes on one machine never share slot uids', async () => {
    const other = await Sandbox.create({ concurrency: 2 });
    try {
      const ids = async (s: Sandbox) => new Set((await Promise.all([0, 1].map(() => s.run({ argv: ['/bin/sh', '-c', 'sleep 0.2; id -u'], files: {} })))).map((r) => r.stdout.trim()));
      const [mine, theirs] = await Promise.all([ids(sb), ids(other)]);
      expect(mine.size + theirs.size).toBe(4);
      expect([...mine].filter((u) => theirs.has(u))).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('rejects file names that leave the work dir', async () => {
    await expect(sb.run({ argv: ['/bin/true'], files: { '../x': '' } })).rejects.toThrow(SandboxError);
    await expect(sb.run({ argv: ['/bin/true'], files: { '/etc/x': '' } })).rejects.toThrow(SandboxError);
  });

  it('runs `concurrency` programs at once and queues the rest (one uid per slot in root modes)', async () => {
    const started = performance.now();
    const rs = await Promise.all(Array.from({ length: 4 }, () => sh('sleep 0.4; id -u')));
    const took = performance.now() - started;
    expect(rs.every((r) => r.exitCode === 0)).toBe(true);
    expect(took).toBeGreaterThanOrEqual(780);
    expect(took).toBeLessThan(4000);
    const uids = new Set(rs.map((r) => r.stdout.trim()));
    if (expectedMode === 'full' || expectedMode === 'uid') expect(uids.size).toBe(2);
  }, 20_000);
});

describe('sandbox: hostile programs are contained', () => {
  it('infinite loop: killed at the wall-clock timeout, its dir removed', async () => {
    const r = await sh('pwd; exec 1>&-; while :; do :; done', { limits: { timeoutMs: 500 } });
    expect(r).toMatchObject({ timedOut: true, killedFor: 'timeout', exitCode: null, signal: 'SIGKILL' });
    expect(r.durationMs).toBeGreaterThanOrEqual(450);
    expect(r.durationMs).toBeLessThan(3000);
    expect(existsSync(r.stdout.trim())).toBe(false);
    await stillWorks();
  }, 20_000);

  it('CPU time: RLIMIT_CPU stops a busy program before a long wall-clock timeout', async () => {
    const r = await sh('while :; do :; done', { limits: { timeoutMs: 20_000, cpuSeconds: 1 } });
    expect(r).toMatchObject({ timedOut: false, killedFor: 'cpu', signal: 'SIGXCPU' });
    expect(r.durationMs).toBeLessThan(10_000);
  }, 30_000);

  it.runIf(hasPython)('memory bomb: stops at the memory limit (MemoryError), the machine is fine', async () => {
    const r = await py('a = []\nwhile True:\n    a.append(bytearray(10**7))\n', { memoryBytes: 256 * 1024 * 1024 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('MemoryError');
    expect(r.timedOut).toBe(false);
    await stillWorks();
  }, 20_000);

  it.runIf(hasPython)('fork bomb (python while True: os.fork()): capped by RLIMIT_NPROC, everything killed', async () => {
    const r = await py('import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n', { timeoutMs: 1500 });
    expect(r.timedOut).toBe(true);
    expect(sb.leftovers()).toEqual([]);
    await stillWorks();
  }, 30_000);

  it('fork bomb (shell :(){ :|:& };:): contained, nothing left behind', async () => {
    const bash = findExecutable('bash', sys);
    const r = bash ? await sb.run({ argv: [bash, '-c', ':(){ :|:& };:; sleep 5'], files: {}, limits: { timeoutMs: 1500 } }) : await sh('f() { f | f & }; f; sleep 5', { limits: { timeoutMs: 1500 } });
    expect(r.exitCode === 0 || r.timedOut).toBe(true);
    expect(sb.leftovers()).toEqual([]);
    await stillWorks();
  }, 30_000);

  it('huge output: killed after the output cap, only a few KiB kept', async () => {
    const r = await sh('echo to stderr >&2; yes "kiln sandbox output line"');
    expect(r).toMatchObject({ killedFor: 'output', outputTruncated: true, timedOut: false, signal: 'SIGKILL' });
    expect(r.stdout.length).toBeLessThan(9 * 1024);
    expect(r.stderr).toMatch(/^to stderr\n[^]*killed after more than 1048576 bytes of output/);
    expect(r.stdout).toContain('bytes omitted');
    const e = await sh('yes "kiln sandbox error line" >&2');
    expect(e).toMatchObject({ killedFor: 'output', outputTruncated: true, stdout: '' });
    expect(e.stderr.length).toBeLessThan(9 * 1024);
    // The first and the last lines are both kept.
    expect(r.stdout.startsWith('kiln sandbox output line\n')).toBe(true);
    expect(r.stdout.slice(-2000)).toContain('kiln sandbox output line\n');
    await stillWorks();
  }, 20_000);

  it('file size: RLIMIT_FSIZE stops a program writing a large file', async () => {
    const r = await sh('exec head -c 5000000 /dev/zero > big', { limits: { fileSizeBytes: 1_000_000 } });
    expect(r).toMatchObject({ killedFor: 'file-size', signal: 'SIGXFSZ', exitCode: null });
  });

  it.runIf(hasPython)('writing outside its dir (repository, $HOME, /tmp, /var/tmp, /dev/shm, the base dir) leaves nothing on the host', async () => {
    const tag = randomBytes(6).toString('hex');
    const targets = [
      path.join(PKG, `kiln-escape-${tag}`),
      path.join(os.homedir(), `kiln-escape-${tag}`),
      `/tmp/kiln-escape-${tag}`,
      `/var/tmp/kiln-escape-${tag}`,
      `/dev/shm/kiln-escape-${tag}`,
      path.join(sb.describe().baseDir, `kiln-escape-${tag}`),
    ];
    const code = `import json\nres = {}\nfor p in ${JSON.stringify(targets)}:\n    try:\n        open(p, 'w').write('x')\n        res[p] = 'written'\n    except OSError as e:\n        res[p] = type(e).__name__\nopen('mine.txt', 'w').write('mine')\nprint(json.dumps(res))\nprint(open('mine.txt').read())\n`;
    const r = await py(code);
    try {
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain('mine'); // its own dir is writable
      const seen = JSON.parse(r.stdout.split('\n')[0]!) as Record<string, string>;
      const leaked = targets.filter((t) => existsSync(t));
      if (namespaced) {
        expect(leaked).toEqual([]);
        // Not even in the sandbox's own view, except its private tmpfs.
        expect(seen[targets[0]!]).not.toBe('written');
        expect(seen[targets[1]!]).not.toBe('written');
      } else if (expectedMode === 'uid') {
        // Weaker mode: root-owned places are safe, the world-writable /tmp is not.
        expect(leaked).not.toContain(targets[0]);
        expect(leaked).not.toContain(targets[1]);
      }
    } finally {
      for (const t of targets) rmSync(t, { force: true });
    }
  });

  it.runIf(hasPython && namespaced)('namespace modes: the runner\'s closed directories are hidden, toolchains exposed read-only', async () => {
    const closedHome = (os.homedir() !== '/' && (readdirSync(os.homedir()).length > 0)) ? os.homedir() : undefined;
    const r = await py(`import os\ntry:\n    print(sorted(os.listdir(${JSON.stringify(closedHome ?? '/nonexistent')})))\nexcept OSError as e:\n    print(type(e).__name__)\ntry:\n    open(${JSON.stringify(path.join(path.dirname(path.dirname(python!)), 'kiln-escape'))}, 'w')\n    print('toolchain writable')\nexcept OSError as e:\n    print(type(e).__name__)\n`);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain('toolchain writable');
    const hidden = sb.describe().hidden;
    if (closedHome && hidden.includes(closedHome)) {
      // Only the exposed toolchain's path is there; the rest of the home is gone.
      const listed = r.stdout.split('\n')[0]!;
      const real = readdirSync(closedHome);
      expect(real.filter((e) => listed.includes(`'${e}'`)).length).toBeLessThan(real.length);
    }
  });

  it.runIf(hasPython && expectedMode !== 'none')('killing its parent (os.kill(os.getppid(), 9)) or its process group: only itself goes', async () => {
    const a = await py('import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(0.2)\nprint("after kill")\n');
    expect(a.timedOut).toBe(false);
    const b = await py('import os\nos.killpg(0, 9)\nprint("after killpg")\n');
    expect(b.timedOut).toBe(false);
    // kill -1 reaches everything the program may signal but itself: in a namespace, nothing outside it.
    const c = await sh('sleep 5 & kill -9 -1; echo survived; kill -9 0; echo not reached');
    expect(c).toMatchObject({ timedOut: false, signal: 'SIGKILL', stdout: 'survived\n' });
    expect(process.kill(process.pid, 0)).toBe(true);
    await stillWorks();
  }, 20_000);

  it.runIf(hasPython)('network: a connection to a server on 127.0.0.1 never arrives (namespace modes)', async () => {
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await py(`import socket\ntry:\n    socket.create_connection(('127.0.0.1', ${port}), timeout=1).close()\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n`);
      await new Promise((res) => setTimeout(res, 100));
      if (namespaced) {
        expect(r.stdout).toContain('refused');
        expect(connections).toBe(0);
      } else {
        // Weaker mode (documented): the network is open.
        expect(connections).toBe(1);
      }
    } finally {
      server.close();
    }
  }, 20_000);

  it.runIf(hasPython)('escaping the process group (setsid) and leaving background processes: nothing survives the run', async () => {
    const needle = `30.${Date.now() % 100000}`;
    const r = await py(
      `import subprocess\nsubprocess.Popen(['sleep', '${needle}'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nsubprocess.Popen(['sh', '-c', 'setsid sleep ${needle} >/dev/null 2>&1 &'])\nprint('spawned')\n`,
    );
    expect(r).toMatchObject({ exitCode: 0, stdout: 'spawned\n' });
    await new Promise((res) => setTimeout(res, 200));
    expect(sb.leftovers()).toEqual([]);
    expect(processesWith(needle)).toEqual([]);
    await stillWorks();
  }, 20_000);
});

describe.runIf(isRoot && !!setpriv)('sandbox: the non-root modes, run for real as an unprivileged user', () => {
  const probe = fileURLToPath(new URL('./sandbox-probe.ts', import.meta.url));
  const runProbe = async (isolation: 'auto' | 'none') => {
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const escape = `/tmp/kiln-escape-${randomBytes(6).toString('hex')}`;
    try {
      const child = spawn(setpriv!, ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, probe, isolation, String(port), escape], {
        env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c));
      child.stderr.on('data', (c: Buffer) => (err += c));
      const code = await new Promise<number | null>((r) => child.on('close', r));
      expect(err).toBe('');
      expect(code).toBe(0);
      type Brief = Pick<RunResult, 'exitCode' | 'signal' | 'timedOut' | 'stdout' | 'stderr'> & { killedFor: string | null };
      const res = JSON.parse(out) as { describe: ReturnType<Sandbox['describe']>; loop: Brief; output: Brief & { stdoutLength: number }; bomb: Brief; afterBomb: number[]; net: Brief; write: Brief; setsid: Brief; leftovers: number[]; ok: Brief; pid: number };
      const written = [`${escape}-tmp`, `/var/tmp/kiln-escape-${res.pid}`].filter((p) => existsSync(p));
      return { res, connections, written };
    } finally {
      server.close();
      rmSync(`${escape}-tmp`, { force: true });
    }
  };
  const common = (res: Awaited<ReturnType<typeof runProbe>>['res']) => {
    expect(res.loop).toMatchObject({ timedOut: true, killedFor: 'timeout' });
    expect(res.output).toMatchObject({ killedFor: 'output' });
    expect(res.output.stdoutLength).toBeLessThan(9 * 1024);
    expect(res.afterBomb).toEqual([]);
    expect(res.leftovers).toEqual([]);
    expect(res.ok).toMatchObject({ exitCode: 3, stdout: 'hi' });
  };

  it('auto: user namespaces when the kernel allows them (network, /tmp and the filesystem contained), else plain process groups', async () => {
    const userns = works(setpriv, ['--reuid=65534', '--regid=65534', '--clear-groups', unshare ?? 'unshare', '--user', '--map-root-user', '--net', '--mount', '--pid', '--fork', 'true']);
    const { res, connections, written } = await runProbe('auto');
    common(res);
    expect(res.describe.mode).toBe(userns ? 'userns' : 'none');
    if (userns) {
      expect(res.describe).toMatchObject({ network: 'namespace', pid: 'namespace', user: 'same uid', filesystem: 'private /tmp' });
      expect(connections).toBe(0);
      expect(written).toEqual([]);
    }
  }, 30_000);

  it('none (a Kubernetes pod without user namespaces): limits and process groups hold, the network and /tmp are open and say so', async () => {
    const { res, connections, written } = await runProbe('none');
    try {
      common(res);
      expect(res.describe).toMatchObject({ mode: 'none', network: 'none', pid: 'process group', user: 'same uid', filesystem: 'none' });
      expect(res.describe.warnings.join('\n')).toMatch(/network/);
      expect(connections).toBe(1);
      expect(written.length).toBe(2);
    } finally {
      for (const w of written) rmSync(w, { force: true });
    }
  }, 30_000);
});

describe.runIf(isRoot && !!setpriv)('sandbox: uid mode (root without namespaces)', () => {
  it('runs as the slot uid, kills what escapes its process group, times out', async () => {
    const u = await Sandbox.create({ concurrency: 1, isolation: 'uid' });
    try {
      expect(u.describe()).toMatchObject({ mode: 'uid', user: 'per-slot uid', network: 'none' });
      const id = await u.run({ argv: ['/bin/sh', '-c', 'id -u'], files: {} });
      expect(Number(id.stdout.trim())).toBeGreaterThan(0);
      const needle = `31.${Date.now() % 100000}`;
      const esc = await u.run({ argv: ['/bin/sh', '-c', `setsid sleep ${needle} >/dev/null 2>&1 & echo ok`], files: {} });
      expect(esc.exitCode).toBe(0);
      expect(u.leftovers()).toEqual([]);
      expect(processesWith(needle)).toEqual([]);
      const t = await u.run({ argv: ['/bin/sh', '-c', 'while :; do :; done'], files: {}, limits: { timeoutMs: 300 } });
      expect(t.timedOut).toBe(true);
    } finally {
      await u.close();
    }
  }, 20_000);
});

describe.runIf(namespaced)('sandbox: the runner itself dies (SIGKILL) in the middle of a run', () => {
  it('the sample is killed by the watchdog, and the next sandbox removes the dead runner\'s base dir', async () => {
    const needle = `60.${Date.now() % 100000}`;
    const child = spawn(process.execPath, [fileURLToPath(new URL('./sandbox-probe.ts', import.meta.url)), 'crash', needle], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    const signal = await new Promise((r) => child.on('exit', (_code, sig) => r(sig)));
    expect(signal).toBe('SIGKILL');
    const { baseDir } = JSON.parse(out) as { baseDir: string };
    let left = processesWith(needle);
    for (let i = 0; i < 40 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = processesWith(needle);
    }
    expect(left).toEqual([]);
    expect(existsSync(baseDir)).toBe(true);
    const next = await Sandbox.create({ concurrency: 1, baseDir: path.dirname(baseDir) });
    await next.close();
    expect(existsSync(baseDir)).toBe(false);
  }, 20_000);
});

describe('sandbox: close', () => {
  it('removes its base dir and refuses further runs', async () => {
    const s = await Sandbox.create({ concurrency: 1 });
    const dir = s.describe().baseDir;
    expect(existsSync(dir)).toBe(true);
    await s.close();
    expect(existsSync(dir)).toBe(false);
    await expect(s.run({ argv: ['/bin/true'], files: {} })).rejects.toThrow(SandboxError);
  });
});
