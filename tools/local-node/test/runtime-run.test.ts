/**
 * Runtime: what a container sees (exact env, workingDir, mounts in a private namespace, tmpfs, read-only root,
 * user drop, netns) and what it leaves (exit code and reason, termination message).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, run, type Fixture } from './runtime-fixture.ts';

let f: Fixture;
const netns = `kiln-rt-test-${process.pid}`;
beforeAll(() => { f = fixture('run'); });
afterAll(async () => {
  await f?.cleanup();
  try { execFileSync('ip', ['netns', 'delete', netns], { stdio: 'ignore' }); } catch { /* never made */ }
});

describe('Runtime: a container', { timeout: 30_000 }, () => {
  it('gets exactly spec.env (nothing of the agent) and runs in workingDir', async () => {
    const env = { PATH: '/usr/bin:/bin', QUOTED: `it's "x" $HOME \`id\` \\n`, EMPTY: '' };
    const { rec, log } = await run(f, f.spec('env', ['env'], { env, workingDir: '/usr' }));
    expect(rec.status.exitCode).toBe(0);
    expect(log.trimEnd().split('\n').sort()).toEqual(Object.entries(env).map(([k, v]) => `${k}=${v}`).sort());
    const pwd = await run(f, f.spec('pwd', ['pwd'], { workingDir: '/usr/share' }));
    expect(pwd.log).toBe('/usr/share\n');
  });

  it('passes argv through unchanged (quotes, $, empty arguments)', async () => {
    const args = ["a'b", '$HOME', '', '"q" `x` \\', 'two\nlines; exit 9'];
    const { log } = await run(f, f.spec('argv', ['printf', '[%s]', ...args]));
    expect(log).toBe(args.map((a) => `[${a}]`).join(''));
  });

  it('start() is idempotent by id: the same spec again returns the same run', async () => {
    const spec = f.spec('twice', ['sleep', '30']);
    const [a, b] = await Promise.all([f.rt.start(spec), f.rt.start(spec)]);
    const c = await f.rt.start(spec);
    expect(a.status.state).toBe('running');
    const pid = a.status.state === 'running' ? a.status.pid : -1;
    for (const r of [b, c]) expect(r.status).toMatchObject({ state: 'running', pid });
    await f.rt.stop(a.id, 0);
  });

  it('reads a bind-mounted config at /etc/kiln/stage.json that the host does not see there', async () => {
    const src = join(f.base, 'stage.json');
    writeFileSync(src, '{"stage":"data-prep"}');
    const { rec, log } = await run(f, f.spec('cfg', ['cat', '/etc/kiln/stage.json'], {
      mounts: [{ kind: 'bind', hostPath: src, containerPath: '/etc/kiln/stage.json', readOnly: true }],
    }));
    expect(rec.status.reason).toBe('Completed');
    expect(log).toBe('{"stage":"data-prep"}');
    // Only the empty mount point may exist on the host.
    const host = '/etc/kiln/stage.json';
    expect(!existsSync(host) || readFileSync(host, 'utf8') === '').toBe(true);
  });

  it('mounts a tmpfs of the given size, and a read-only bind refuses writes', async () => {
    const dir = join(f.base, 'ro-src');
    mkdirSync(dir);
    const at = join(f.base, 'mnt');
    const { log } = await run(f, f.spec('tmpfs', ['sh', '-c', `grep ' ${at}/scratch ' /proc/self/mounts; echo hi > ${at}/ro/x || echo ro-refused`], {
      mounts: [
        { kind: 'tmpfs', containerPath: `${at}/scratch`, readOnly: false, sizeBytes: 4 * 1024 * 1024 },
        { kind: 'bind', hostPath: dir, containerPath: `${at}/ro`, readOnly: true },
      ],
    }));
    expect(log).toMatch(new RegExp(`^tmpfs ${at}/scratch tmpfs rw,.*size=4096k`, 'm'));
    expect(log).toContain('ro-refused');
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  it('binds a source that an earlier mount covers (a checkout under /tmp, a pod with an emptyDir at /tmp)', async () => {
    const src = join(f.base, 'covered', 'hosts');
    mkdirSync(join(f.base, 'covered'));
    writeFileSync(src, '10.1.2.3 svc\n');
    const at = join(f.base, 'mnt2');
    // The tmpfs goes over the folder that holds the source; the source is still what the container sees after.
    const { rec, log } = await run(f, f.spec('covered', ['sh', '-c', `cat ${at}/hosts; [ -e ${src} ] && echo visible || echo hidden`], {
      mounts: [
        { kind: 'tmpfs', containerPath: f.base, readOnly: false },
        { kind: 'bind', hostPath: src, containerPath: `${at}/hosts`, readOnly: true },
      ],
    }));
    expect(rec.status).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(log).toContain('10.1.2.3 svc');
    // Inside, the covered folder is the fresh tmpfs: the source is not visible at its own path.
    expect(log.trim().split('\n').at(-1)).toBe('hidden');
    expect(readdirSync('/run/kiln-runtime', { withFileTypes: true }).filter((d) => d.isDirectory() && readdirSync(join('/run/kiln-runtime', d.name)).length > 0)).toEqual([]);
  });

  it('records the exit code: 0 is Completed, anything else Error', async () => {
    const ok = await run(f, f.spec('ok', ['true']));
    expect(ok.rec.status).toMatchObject({ exitCode: 0, reason: 'Completed' });
    const bad = await run(f, f.spec('bad', ['sh', '-c', 'exit 3']));
    expect(bad.rec.status).toMatchObject({ exitCode: 3, reason: 'Error' });
    const killed = await run(f, f.spec('killed', ['sh', '-c', 'kill -TERM $$']));
    expect(killed.rec.status).toMatchObject({ exitCode: 143, signal: 'SIGTERM', reason: 'Error' });
  });

  it('reads the termination message the container wrote at terminationMessagePath', async () => {
    const at = join(f.base, 'msg', 'termination-log');
    const { rec } = await run(f, f.spec('msg', ['sh', '-c', `printf "bad config: x" > ${at}; exit 2`], { terminationMessagePath: at }));
    expect(rec.status.message).toBe('bad config: x');
    expect(f.rt.readTerminationMessage(rec.id)).toBe('bad config: x');
    const big = await run(f, f.spec('msg-big', ['sh', '-c', 'head -c 10000 /dev/zero | tr "\\0" a > /dev/termination-log']));
    expect(f.rt.readTerminationMessage(big.rec.id)).toBe('a'.repeat(4096));
  });

  it('with readOnlyRoot cannot write / but can write a read-write bind', async () => {
    const dir = join(f.base, 'rw-src');
    mkdirSync(dir);
    const at = join(f.base, 'rw-mnt');
    const { log } = await run(f, f.spec('ro-root', ['sh', '-c', `echo x > /kiln-ro-root-test && echo wrote-root; echo ok > ${at}/file && echo wrote-rw; echo x > ${f.base}/beside || echo tmp-refused`], {
      readOnlyRoot: true,
      mounts: [{ kind: 'bind', hostPath: dir, containerPath: at, readOnly: false }],
    }));
    expect(log).not.toContain('wrote-root');
    expect(log).toContain('wrote-rw');
    expect(log).toContain('tmp-refused');
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('ok\n');
    expect(existsSync('/kiln-ro-root-test')).toBe(false);
  });

  it('drops to the given user and no supplementary groups', async () => {
    const { rec, log } = await run(f, f.spec('user', ['sh', '-c', 'id -u; id -g; id -G; echo m > /dev/termination-log'], { user: { uid: 65534, gid: 65534 } }));
    expect(log).toBe('65534\n65534\n65534\n');
    expect(rec.status.message).toBe('m\n');
  });

  it('joins the given network namespace', async () => {
    execFileSync('ip', ['netns', 'add', netns]);
    const path = `/run/netns/${netns}`;
    const { log } = await run(f, f.spec('netns', ['readlink', '/proc/self/ns/net'], { netns: path }));
    expect(log).toBe(`net:[${statSync(path).ino}]\n`);
  });

  it('refuses a bind whose source does not exist, saying which', async () => {
    await expect(f.rt.start(f.spec('nosrc', ['true'], { mounts: [{ kind: 'bind', hostPath: '/nonexistent/kiln', containerPath: '/x', readOnly: true }] })))
      .rejects.toThrow('hostPath /nonexistent/kiln does not exist');
  });

  it('reports a start failure (missing workingDir) as exit 128 with the reason as message', async () => {
    const { rec } = await run(f, f.spec('nowd', ['true'], { workingDir: '/nonexistent/wd' }));
    expect(rec.status).toMatchObject({ exitCode: 128, reason: 'Error', message: 'the working directory /nonexistent/wd does not exist in the container' });
  });
});
