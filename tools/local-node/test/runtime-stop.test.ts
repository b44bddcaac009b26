/** Runtime.stop(): SIGTERM to the process group, then SIGKILL to everything in the cgroups after the grace period. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupProcs, exited, fixture, type Fixture } from './runtime-fixture.ts';

let f: Fixture;
beforeAll(() => { f = fixture('stop'); });
afterAll(async () => { await f?.cleanup(); });

async function logHas(id: string, text: string): Promise<string> {
  for (;;) {
    const log = readFileSync(f.rt.logFile(id), 'utf8');
    if (log.includes(text)) return log;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Alive and not a zombie (a killed orphan may wait a moment for its reaper). */
const alive = (pid: number) => {
  try {
    return !/^[ZX]$/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? '');
  } catch {
    return false;
  }
};

describe('Runtime.stop', { timeout: 30_000 }, () => {
  it('lets a container with a TERM handler exit on its own (graceful: exit 0, Completed)', async () => {
    const spec = f.spec('graceful', ['sh', '-c', 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.1; done']);
    const rec = await f.rt.start(spec);
    await logHas(rec.id, 'ready');
    await f.rt.stop(rec.id, 60);
    const after = f.rt.get(rec.id);
    expect(after?.status).toMatchObject({ state: 'exited', exitCode: 0, reason: 'Completed' });
    expect(readFileSync(f.rt.logFile(rec.id), 'utf8')).toContain('got-term');
  });

  it('kills, after the grace period, a process that ignores TERM and its child in a session of its own', async () => {
    const childPidFile = join(f.base, 'child.pid');
    const spec = f.spec('stubborn', ['sh', '-c',
      `trap "" TERM; setsid sh -c 'echo $$ > ${childPidFile}; exec sleep 1000' & while [ ! -s ${childPidFile} ]; do sleep 0.05; done; echo ready; while :; do sleep 1; done`]);
    const rec = await f.rt.start(spec);
    await logHas(rec.id, 'ready');
    const child = Number(readFileSync(childPidFile, 'utf8'));
    const pgid = rec.status.state === 'running' ? rec.status.pid : -1;
    expect(alive(child)).toBe(true);
    // The child left the container's session and process group: only the cgroup still holds it.
    expect(readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]?.split(' ')[2]).not.toBe(String(pgid));
    await f.rt.stop(rec.id, 1);
    expect(f.rt.get(rec.id)?.status).toMatchObject({ state: 'exited', exitCode: 137, signal: 'SIGKILL', reason: 'Error' });
    expect(alive(child)).toBe(false);
    expect(cgroupProcs(f, 'pids', spec)).toEqual([]);
  });

  it('is a no-op on an exited container', async () => {
    const rec = await f.rt.start(f.spec('done', ['true']));
    await exited(f.rt, rec.id);
    await f.rt.stop(rec.id, 0);
    await f.rt.stop(rec.id, 0);
    expect(f.rt.get(rec.id)?.status).toMatchObject({ state: 'exited', exitCode: 0 });
  });
});
