/** Runtime: cgroup v1 limits (memory with OOMKilled, CPU quota, pids.max) and their cgroup dirs' lifecycle. */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, fixture, run, type Fixture } from './runtime-fixture.ts';

let f: Fixture;
beforeAll(() => { f = fixture('limits'); });
afterAll(async () => { await f?.cleanup(); });

const cg = (controller: string, container: string, file: string) =>
  `/sys/fs/cgroup/${controller}/${f.cgroupName}/${f.spec(container, []).podUid}/${container}/${file}`;

describe('Runtime: limits', { timeout: 30_000 }, () => {
  it('kills a container over its memory limit and reports OOMKilled', async () => {
    const { rec } = await run(f, f.spec('oom', [process.execPath, '-e', 'const b = Buffer.alloc(200 * 1024 * 1024, 1); console.log(b.length)'], {
      limits: { memoryBytes: 64 * 1024 * 1024 },
    }));
    expect(rec.status).toMatchObject({ exitCode: 137, signal: 'SIGKILL', reason: 'OOMKilled' });
  });

  it('a SIGKILL without an OOM is an Error, not OOMKilled', async () => {
    const { rec } = await run(f, f.spec('kill9', ['sh', '-c', 'kill -KILL $$'], { limits: { memoryBytes: 64 * 1024 * 1024 } }));
    expect(rec.status).toMatchObject({ exitCode: 137, reason: 'Error' });
  });

  it('writes CPU quota, memory and pids limits into the container cgroups, and the container is in them', async () => {
    const spec = f.spec('caps', ['sleep', '30'], { limits: { memoryBytes: 128 * 1024 * 1024, cpuMillis: 250, pids: 20 } });
    const started = await f.rt.start(spec);
    expect(started.status.state).toBe('running');
    const pid = started.status.state === 'running' ? started.status.pid : -1;
    expect(readFileSync(cg('cpu', 'caps', 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('25000');
    expect(readFileSync(cg('cpu', 'caps', 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
    expect(readFileSync(cg('memory', 'caps', 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(128 * 1024 * 1024));
    expect(readFileSync(cg('pids', 'caps', 'pids.max'), 'utf8').trim()).toBe('20');
    for (const c of ['memory', 'cpu', 'pids', 'freezer']) expect(readFileSync(cg(c, 'caps', 'cgroup.procs'), 'utf8').split('\n')).toContain(String(pid));
    await f.rt.stop(started.id, 0);
    f.rt.remove(started.id);
    expect(existsSync(cg('memory', 'caps', ''))).toBe(false);
    expect(f.rt.get(started.id)).toBeUndefined();
  });

  it('enforces pids.max: forks beyond it fail', async () => {
    const { log } = await run(f, f.spec('pids', ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; echo started; kill $(jobs -p) 2>/dev/null; wait'], { limits: { pids: 4 } }));
    expect(log).toMatch(/fork|Resource temporarily unavailable|Cannot/i);
  });

  it('runs a restarted container (restartCount 1) in fresh cgroup counters', async () => {
    const first = await run(f, f.spec('again', [process.execPath, '-e', 'Buffer.alloc(200 * 1024 * 1024, 1)'], { limits: { memoryBytes: 64 * 1024 * 1024 } }));
    expect(first.rec.status.reason).toBe('OOMKilled');
    const second = await f.rt.start(f.spec('again', ['sh', '-c', 'kill -KILL $$'], { restartCount: 1, limits: { memoryBytes: 64 * 1024 * 1024 } }));
    expect((await exited(f.rt, second.id)).status).toMatchObject({ exitCode: 137, reason: 'Error' });
  });
});
