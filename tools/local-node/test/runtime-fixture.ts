/**
 * Shared set-up of the runtime tests: a Runtime over a fresh state dir and a unique cgroup name, a spec builder,
 * waiting for an exit, and a cleanup that stops and removes everything the test started.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Runtime, containerId, type ContainerRecord, type ContainerSpec } from '../src/runtime/index.ts';

/** Fails (never skips) when the machine cannot run containers: CI runs these tests as root with cgroup v1. */
export function requireRootAndCgroups(): void {
  if (process.getuid?.() !== 0) throw new Error('runtime tests need root (cgroups, mount namespaces): run vitest as root');
  for (const c of ['memory', 'cpu', 'pids', 'freezer']) {
    if (!existsSync(`/sys/fs/cgroup/${c}/cgroup.procs`)) throw new Error(`runtime tests need the cgroup v1 ${c} hierarchy mounted rw at /sys/fs/cgroup/${c}`);
  }
}

export interface Fixture {
  readonly rt: Runtime;
  readonly base: string;        // a scratch dir for the test (state dir inside)
  readonly stateDir: string;
  readonly cgroupName: string;
  spec(container: string, argv: string[], more?: Partial<ContainerSpec>): ContainerSpec;
  cleanup(): Promise<void>;
}

export function fixture(name: string): Fixture {
  requireRootAndCgroups();
  const base = mkdtempSync(`/tmp/kiln-rt-${name}-`);
  const stateDir = join(base, 'state');
  const cgroupTop = `kiln-test-${randomBytes(4).toString('hex')}`;
  const cgroupName = `${cgroupTop}/node`;
  const rt = new Runtime({ stateDir, cgroupName });
  const podUid = `pod-${randomBytes(3).toString('hex')}`;
  return {
    rt, base, stateDir, cgroupName,
    spec: (container, argv, more = {}) => ({
      podUid, podKey: `default/${name}`, container, restartCount: 0, argv,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, workingDir: '/', mounts: [], limits: {},
      terminationMessagePath: '/dev/termination-log', ...more,
    }),
    async cleanup() {
      for (const r of rt.list()) {
        await rt.stop(r.id, 0);
        rt.remove(r.id);
      }
      for (const c of ['memory', 'cpu', 'pids', 'freezer']) {
        for (const d of [`/sys/fs/cgroup/${c}/${cgroupName}`, `/sys/fs/cgroup/${c}/${cgroupTop}`]) {
          try { rmdirSync(d); } catch { /* absent */ }
        }
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Polls the record until the container has exited (the test's own timeout bounds it). */
export async function exited(rt: Runtime, id: string): Promise<ContainerRecord & { status: { state: 'exited' } }> {
  for (;;) {
    const r = rt.get(id);
    if (r?.status.state === 'exited') return r as ContainerRecord & { status: { state: 'exited' } };
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Starts a container and waits for its exit; returns the record and its log. */
export async function run(f: Fixture, spec: ContainerSpec): Promise<{ rec: ContainerRecord & { status: { state: 'exited' } }; log: string }> {
  const started = await f.rt.start(spec);
  expect(started.id).toBe(containerId(spec.podUid, spec.container, spec.restartCount));
  const rec = await exited(f.rt, started.id);
  return { rec, log: readFileSync(f.rt.logFile(rec.id), 'utf8') };
}

/** Pids of a cgroup (to check what a stop left behind). */
export function cgroupProcs(f: Fixture, controller: string, spec: ContainerSpec): number[] {
  const p = `/sys/fs/cgroup/${controller}/${f.cgroupName}/${spec.podUid}/${spec.container}/cgroup.procs`;
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter(Boolean).map(Number) : [];
}

export const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
