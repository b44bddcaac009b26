import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, toolchains } from '../src/executors.ts';
import { DEFAULT_LIMITS, findExecutable, Sandbox, SandboxError, type Limits, type RunResult } from '../src/sandbox.ts';
import { sampleMounts } from '../src/sandbox/mounts.ts';
import { stepRlimits } from '../src/sandbox/spawn.ts';

// The Python zygote (src/sandbox/zygote.ts, zygote.py): what a hostile sample does must stay inside its own
// fork, with the isolation a fresh interpreter gets in `full` mode, and must not touch later samples.
const PKG = fileURLToPath(new URL('..', import.meta.url));
const isRoot = process.getuid?.() === 0;
const unshare = findExecutable('unshare', [process.env.PATH ?? '', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'));
const fullMode = isRoot && !!unshare && spawnSync(unshare, ['--net', '--mount', '--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' }).status === 0;
const tc = await toolchains();
const python = tc.python.commands?.python;
const ZYGOTE_NEEDLE = 'The warm Python of a sandbox slot';

/** Host processes whose command line contains `needle` (the test's own look at /proc, not the sandbox's). */
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) found.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return found;
}

describe.runIf(fullMode && !!python)('sandbox: the Python zygote (full mode)', () => {
  let sb: Sandbox;
  let one: Sandbox;

  beforeAll(async () => {
    sb = await Sandbox.create({ concurrency: 2 });
    one = await Sandbox.create({ concurrency: 1, zygotePreload: ['random', 'decimal'] });
    for (const s of [sb, one]) expect(await s.expose(tc.python.roots ?? [])).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    await sb?.close();
    await one?.close();
  });

  /** A Python step the sandbox may fork from its zygote (the argv is the spawn path's equivalent). */
  const step = (code: string, limits: Partial<Limits> = {}, stdin?: string) => ({
    argv: [python!, '-E', '-s', '-S', '-c', "import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_path('main.py', run_name='__main__')", 'main.py'],
    python: { executable: python!, main: 'main.py' },
    files: { 'main.py': code },
    limits,
    ...(stdin !== undefined ? { stdin } : {}),
  });
  /** Runs through the zygote, and fails the test when the step went another way. */
  const pyz = async (s: Sandbox, code: string, limits: Partial<Limits> = {}, stdin?: string): Promise<RunResult> => {
    const before = s.pythonStats().zygoteSteps;
    const r = await s.run(step(code, limits, stdin));
    expect(s.pythonStats().zygoteSteps).toBe(before + 1);
    return r;
  };
  /** Later samples still run normally through the same zygotes, and nothing of the slots' uids is left. */
  const stillWorks = async (s: Sandbox, starts = s.pythonStats().zygoteStarts) => {
    const steps = s.pythonStats().zygoteSteps;
    const rs = await Promise.all(Array.from({ length: s.concurrency }, () => s.run(step('print(6 * 7)\n'))));
    for (const r of rs) expect(r).toMatchObject({ exitCode: 0, stdout: '42\n', timedOut: false });
    expect(s.pythonStats().zygoteSteps).toBe(steps + s.concurrency);
    expect(s.pythonStats().zygoteStarts).toBe(starts);
    expect(s.leftovers()).toEqual([]);
  };

  it('describe() says zygote in full mode, spawn when it is turned off (and then Python steps spawn)', async () => {
    expect(sb.describe()).toMatchObject({ mode: 'full', pythonSteps: 'zygote' });
    const off = await Sandbox.create({ concurrency: 1, zygote: false });
    try {
      await off.expose(tc.python.roots ?? []);
      expect(off.describe().pythonSteps).toBe('spawn');
      const r = await off.run(step('print("spawned")\n'));
      expect(r).toMatchObject({ exitCode: 0, stdout: 'spawned\n' });
      expect(off.pythonStats()).toEqual({ zygoteStarts: 0, zygoteSteps: 0, spawnSteps: 1 });
    } finally {
      await off.close();
    }
  }, 30_000);

  it('a sample sees what a fresh interpreter sees: __main__, argv, cwd, environment, sys.path, no site', async () => {
    const probe = `import json, os, sys\nprint(json.dumps({'name': __name__, 'argv': sys.argv, 'cwd': os.path.basename(os.getcwd()), 'env': sorted(os.environ), 'path0': sys.path[0], 'nosite': sys.flags.no_site, 'site': 'site' in sys.modules, 'file': __file__, 'uidIsRoot': os.getuid() == 0}))\n`;
    const z = await pyz(sb, probe);
    const off = await Sandbox.create({ concurrency: 1, zygote: false });
    let fresh: RunResult;
    try {
      await off.expose(tc.python.roots ?? []);
      fresh = await off.run(step(probe));
    } finally {
      await off.close();
    }
    expect(z.exitCode).toBe(0);
    const a = JSON.parse(z.stdout) as Record<string, unknown>;
    const b = JSON.parse(fresh.stdout) as Record<string, unknown>;
    expect(a).toEqual({ ...b, cwd: a.cwd });
    expect(a).toMatchObject({ name: '__main__', argv: ['main.py'], nosite: 1, site: false, uidIsRoot: false });
    expect(String(a.cwd)).toMatch(/^run-\d+$/);
  }, 30_000);

  it('each sample: the slot uid, no capabilities in any set, no_new_privs, and the rlimits it asked for', async () => {
    const r = await pyz(
      sb,
      `import os, resource\nst = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\nprint(os.getuid(), os.getgid(), os.getgroups(), *(st[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')))\nfor n in ('CPU', 'AS', 'FSIZE', 'NPROC', 'NOFILE', 'CORE'):\n    print(n, *resource.getrlimit(getattr(resource, 'RLIMIT_' + n)))\n`,
      { timeoutMs: 4000, memoryBytes: 512 * 1024 * 1024, fileSizeBytes: 1 << 20, processes: 33, openFiles: 77 },
    );
    const [ids, ...lim] = r.stdout.trim().split('\n');
    const [uid, gid, groups, ...caps] = ids!.split(' ');
    expect(Number(uid)).toBeGreaterThanOrEqual(60000);
    expect(gid).toBe(uid);
    expect(groups).toBe('[]');
    expect(caps).toEqual(['0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000', '1']);
    expect(lim).toEqual(['CPU 5 6', `AS ${512 * 1024 * 1024} ${512 * 1024 * 1024}`, 'FSIZE 1048576 1048576', 'NPROC 33 33', 'NOFILE 77 77', 'CORE 0 0']);
  }, 20_000);

  it('each sample gets its own network, PID, mount, IPC and UTS namespaces (none shared with the last sample)', async () => {
    const probe = `import os, socket\nprint(os.getpid(), os.getppid(), *(os.readlink('/proc/self/ns/' + n) for n in ('net', 'pid', 'mnt', 'ipc', 'uts')), [i[1] for i in socket.if_nameindex()])\n`;
    const a = (await pyz(one, probe)).stdout.trim().split(' ');
    const b = (await pyz(one, probe)).stdout.trim().split(' ');
    // PID 1 is the sample's init; the program is the first process after it, in a PID namespace of its own.
    expect(a.slice(0, 2)).toEqual(['2', '1']);
    expect(b.slice(0, 2)).toEqual(['2', '1']);
    for (let i = 2; i < 7; i++) expect(a[i]).not.toBe(b[i]);
    const mine = ['net', 'pid', 'mnt', 'ipc', 'uts'].map((n) => readlinkSync(`/proc/self/ns/${n}`));
    for (let i = 2; i < 7; i++) expect(a[i]).not.toBe(mine[i - 2]);
    expect(a.slice(7).join(' ')).toBe("['lo']");
  }, 20_000);

  it("nothing is shared between samples: /tmp, /dev/shm, /var/tmp and the last sample's work dir are gone", async () => {
    const a = await pyz(one, `import os\nfor d in ('/tmp', '/dev/shm', '/var/tmp'):\n    open(os.path.join(d, 'kiln-left'), 'w').write('x')\nopen('left', 'w').write('x')\nprint(os.getcwd())\n`);
    expect(a.exitCode).toBe(0);
    const b = await pyz(one, `import os\nprint([p for p in ('/tmp/kiln-left', '/dev/shm/kiln-left', '/var/tmp/kiln-left', ${JSON.stringify(path.join(a.stdout.trim(), 'left'))}) if os.path.exists(p)])\n`);
    expect(b.stdout.trim()).toBe('[]');
    // And on the host: the sample's /tmp was its own tmpfs.
    expect(existsSync('/tmp/kiln-left')).toBe(false);
  }, 20_000);

  it("reading another sample's files (the other slot, running at the same time) fails", async () => {
    const steps = sb.pythonStats().zygoteSteps;
    const writer = sb.run(step( `import os, time\nopen('secret', 'w').write('s3cret')\nos.chmod('secret', 0o644)\ntime.sleep(1.5)\nprint(os.path.join(os.getcwd(), 'secret'))\n`, { timeoutMs: 5000 }));
    await new Promise((r) => setTimeout(r, 400));
    const reader = sb.run(
      step(
      `import glob, os, time\nbase = os.path.dirname(os.path.dirname(os.getcwd()))\nfound = []\nfor i in range(10):\n    for p in glob.glob(base + '/slot-*/run-*/secret') + [base + '/slot-%d/run-%d/secret' % (s, n) for s in range(2) for n in range(1, 200)]:\n        try:\n            found.append(open(p).read())\n        except OSError:\n            pass\n    time.sleep(0.05)\nprint(found)\n`,
      { timeoutMs: 5000 },
      ),
    );
    const [w, r] = await Promise.all([writer, reader]);
    expect(sb.pythonStats().zygoteSteps).toBe(steps + 2);
    expect(w.exitCode).toBe(0);
    expect(w.stdout).toContain('/secret');
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe('[]');
  }, 20_000);

  it('a fork bomb stops at RLIMIT_NPROC, is killed with its sample, and the zygote lives on', async () => {
    const starts = sb.pythonStats().zygoteStarts;
    const r = await pyz(sb, 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n', { timeoutMs: 1500 });
    expect(r.timedOut).toBe(true);
    await stillWorks(sb, starts);
  }, 30_000);

  it('a memory bomb gets MemoryError at RLIMIT_AS, and the zygote lives on', async () => {
    const starts = sb.pythonStats().zygoteStarts;
    const r = await pyz(sb, 'x = []\nwhile True:\n    x.append(bytearray(64 * 1024 * 1024))\n', { memoryBytes: 512 * 1024 * 1024 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('MemoryError');
    await stillWorks(sb, starts);
  }, 20_000);

  it('an infinite loop is killed at the wall-clock limit with all its processes; one at the CPU limit is reported as cpu', async () => {
    const starts = sb.pythonStats().zygoteStarts;
    const needle = `31.${Date.now() % 100000}`;
    const t0 = performance.now();
    const r = await pyz(sb, `import subprocess\nsubprocess.Popen(['sleep', '${needle}'], start_new_session=True)\nwhile True:\n    pass\n`, { timeoutMs: 1000 });
    expect(r).toMatchObject({ timedOut: true, killedFor: 'timeout', signal: 'SIGKILL' });
    expect(performance.now() - t0).toBeLessThan(4000);
    expect(processesWith(needle)).toEqual([]);
    const c = await pyz(sb, 'while True:\n    pass\n', { timeoutMs: 8000, cpuSeconds: 1 });
    expect(c).toMatchObject({ killedFor: 'cpu', timedOut: false });
    await stillWorks(sb, starts);
  }, 30_000);

  it('writing outside its work dir (/, /usr, the base dir, the repository) fails and leaves nothing on the host', async () => {
    const tag = Math.random().toString(36).slice(2);
    const targets = ['/', '/usr', path.dirname(python!), sb.describe().baseDir, PKG].map((d) => path.join(d, `kiln-escape-${tag}`));
    const r = await pyz(sb, `ok = []\nfor p in ${JSON.stringify(targets)}:\n    try:\n        open(p, 'w').write('x')\n        ok.append(p)\n    except OSError:\n        pass\nprint(ok)\n`);
    expect(r.stdout.trim()).toBe('[]');
    for (const t of targets) expect(existsSync(t)).toBe(false);
  }, 20_000);

  it('killing its parent, PID 1, its process group or every process it may signal: only the sample goes', async () => {
    const starts = sb.pythonStats().zygoteStarts;
    const a = await pyz(sb, 'import os, time\nfor p in (os.getppid(), 1):\n    try:\n        os.kill(p, 9)\n    except OSError as e:\n        print(type(e).__name__)\ntime.sleep(0.2)\nprint("after")\n');
    expect(a).toMatchObject({ exitCode: 0, timedOut: false });
    expect(a.stdout).toContain('after');
    // kill(-1) reaches every process the sample may signal but itself: in its namespace, its own child only.
    const b = await pyz(sb, 'import os, subprocess\nchild = subprocess.Popen(["sleep", "5"])\nos.kill(-1, 9)\nprint("survived", child.wait())\n');
    expect(b).toMatchObject({ exitCode: 0, stdout: 'survived -9\n' });
    const c = await pyz(sb, 'import os\nos.killpg(0, 9)\n');
    expect(c.signal).toBe('SIGKILL');
    expect(process.kill(process.pid, 0)).toBe(true);
    await stillWorks(sb, starts);
  }, 20_000);

  it('os._exit, closed fds and signals end the sample only: exit codes and signals come back as from a fresh interpreter', async () => {
    const starts = sb.pythonStats().zygoteStarts;
    expect(await pyz(sb, 'import os, sys\nprint("before", flush=True)\nos._exit(0)\nprint("after")\n')).toMatchObject({ exitCode: 0, stdout: 'before\n' });
    expect(await pyz(sb, 'import os\nos._exit(7)\n')).toMatchObject({ exitCode: 7 });
    expect(await pyz(sb, 'import sys\nsys.exit("bye")\n')).toMatchObject({ exitCode: 1, stderr: 'bye\n' });
    // Closing its stdout and stderr and then lingering: the wall-clock limit still ends it.
    const closed = await pyz(sb, 'import os, time\nos.closerange(0, 1024)\ntime.sleep(30)\n', { timeoutMs: 1000 });
    expect(closed).toMatchObject({ timedOut: true });
    expect(await pyz(sb, 'import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n')).toMatchObject({ exitCode: null, signal: 'SIGSEGV' });
    // A handler that ignores SIGTERM changes nothing: the kill is SIGKILL.
    const ignoring = await pyz(sb, 'import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\ntime.sleep(30)\n', { timeoutMs: 800 });
    expect(ignoring).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    await stillWorks(sb, starts);
  }, 30_000);

  it('output beyond the limit kills the sample; stdin is passed; the zygote lives on', async () => {
    const starts = sb.pythonStats().zygoteStarts;
    const r = await pyz(sb, 'while True:\n    print("x" * 1000)\n', { outputBytes: 64 * 1024, timeoutMs: 5000 });
    expect(r).toMatchObject({ killedFor: 'output', outputTruncated: true, timedOut: false });
    const s = await pyz(sb, 'import sys\nprint(sys.stdin.read().upper())\n', {}, 'hello');
    expect(s.stdout).toBe('HELLO\n');
    await stillWorks(sb, starts);
  }, 20_000);

  it('a zygote killed from outside is replaced for the next sample', async () => {
    await pyz(one, 'pass\n');
    const starts = one.pythonStats().zygoteStarts;
    const before = processesWith(ZYGOTE_NEEDLE);
    expect(before.length).toBeGreaterThan(0);
    for (const pid of before) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone with an earlier one of its group (the zygote's command line is also its parents') */
      }
    }
    const r = await pyz(one, 'print("again")\n');
    expect(r).toMatchObject({ exitCode: 0, stdout: 'again\n' });
    expect(one.pythonStats().zygoteStarts).toBe(starts + 1);
  }, 30_000);

  it('zygotePreload: the modules are loaded before the first sample, random is reseeded per sample, a bad name is refused', async () => {
    const probe = "import sys\nprint('decimal' in sys.modules, sys.modules['random'].random())\n";
    const a = (await pyz(one, probe)).stdout.trim().split(' ');
    const b = (await pyz(one, probe)).stdout.trim().split(' ');
    expect(a[0]).toBe('True');
    expect(a[1]).not.toBe(b[1]);
    expect((await pyz(sb, "import sys\nprint('decimal' in sys.modules)\n")).stdout).toBe('False\n');
    await expect(Sandbox.create({ zygotePreload: ['os; import evil'] })).rejects.toThrow(SandboxError);
  }, 20_000);

  it("the slot's mounts changing (a newly exposed directory) replaces its zygote", async () => {
    await pyz(one, 'pass\n');
    const starts = one.pythonStats().zygoteStarts;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-zygote-expose-'));
    try {
      await one.expose([dir]);
      const r = await pyz(one, `import os\nprint(os.path.isdir(${JSON.stringify(dir)}))\n`);
      expect(r.stdout).toBe('True\n');
      expect(one.pythonStats().zygoteStarts).toBe(starts + 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);

  it('HumanEval through execute(): a canonical solution passes and a wrong one fails, through the zygote', async () => {
    const before = sb.pythonStats().zygoteSteps;
    const ok = await execute(sb, 'python', 'def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n');
    const bad = await execute(sb, 'python', 'def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5\n');
    expect(ok.status).toBe('passed');
    expect(bad).toMatchObject({ status: 'failed', reason: 'AssertionError' });
    expect(sb.pythonStats().zygoteSteps).toBe(before + 2);
  }, 20_000);
});

describe('sandbox: what a zygote sample mounts (sampleMounts, pure)', () => {
  const input = {
    slotDir: '/tmp/kiln-sandbox-x/slot-0',
    cacheDir: '/tmp/kiln-sandbox-x/slot-0/cache',
    tmpBytes: 1024,
    exposed: ['/opt/py', '/tmp/checkout/.venv'],
    covers: [
      { path: '/var/tmp', mode: '1777', size: 2048 },
      { path: '/tmp', mode: '1777', size: 2048 },
      { path: '/tmp/inner', mode: '1777', size: 2048 },
      { path: '/root', mode: '0755', size: 64 },
    ],
    seeds: [['go-build', '/root/.cache/go-build']] as const,
    writableCache: false,
  };

  it('gives each sample fresh tmpfs over the world-writable covers, binds back what lives under them, and /dev/shm last', () => {
    expect(sampleMounts(input)).toEqual([
      { kind: 'tmpfs', target: '/tmp', size: 2048, mode: '1777' },
      { kind: 'tmpfs', target: '/var/tmp', size: 2048, mode: '1777' },
      { kind: 'bind', source: '/dev/shm/.kiln/slot', target: '/tmp/kiln-sandbox-x/slot-0', readOnly: false },
      { kind: 'bind', source: '/dev/shm/.kiln/e1', target: '/tmp/checkout/.venv', readOnly: true, optional: true },
      { kind: 'bind', source: '/dev/shm/.kiln/slot/cache', target: '/tmp/kiln-sandbox-x/slot-0/cache', readOnly: true },
      { kind: 'tmpfs', target: '/dev/shm', size: 1024, mode: '1777' },
    ]);
  });

  it('binds nothing back when the slot dir lies outside every cover (a base dir on a volume)', () => {
    const ops = sampleMounts({ ...input, slotDir: '/data/kiln/slot-0', cacheDir: '/data/kiln/slot-0/cache', exposed: [] });
    expect(ops.filter((o) => o.kind === 'bind')).toEqual([]);
    expect(ops.at(-1)).toEqual({ kind: 'tmpfs', target: '/dev/shm', size: 1024, mode: '1777' });
  });

  it('gives a sample the rlimits the spawn path passes to prlimit', () => {
    const limits = { ...DEFAULT_LIMITS, timeoutMs: 2500, memoryBytes: 1 << 30 };
    const flags = Object.entries(stepRlimits(limits, 0)).map(([k, [s, h]]) => `--${k}=${s}:${h}`);
    expect(flags).toEqual(['--cpu=4:5', `--fsize=${16 << 20}:${16 << 20}`, '--nproc=64:64', '--nofile=256:256', '--core=0:0', `--as=${1 << 30}:${1 << 30}`]);
    expect(stepRlimits({ ...limits, memoryRlimit: 'none' }, 10)).toMatchObject({ nproc: [74, 74] });
    expect(stepRlimits({ ...limits, memoryRlimit: 'none' }, 0)).not.toHaveProperty('as');
  });
});
