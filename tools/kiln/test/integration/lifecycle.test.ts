import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, COMPONENTS, down, paths, readState, runningPid, status, up } from '@kiln/local-cluster';
import { ROOT } from './helpers.ts';

const second = mkdtempSync(join(tmpdir(), 'kiln-second-cluster-'));
afterAll(async () => {
  await down(second, () => {});
  rmSync(second, { recursive: true, force: true });
});

describe('cluster lifecycle', () => {
  it('reports every component healthy', async () => {
    const s = await status(ROOT);
    expect(s.components.map((c) => [c.component, c.healthy])).toEqual(COMPONENTS.map((c) => [c, true]));
  });

  it('is idempotent: up on a running cluster starts nothing', async () => {
    const r = await up({ root: ROOT, gpuNodes: 4, gpusPerNode: 8, gpuType: 'h100-80gb', cpuNodes: 2, jobDurationMs: 2000 }, () => {});
    expect(r.started).toEqual([]);
    expect(r.reused).toEqual([...COMPONENTS]);
  });

  it('runs a second cluster beside the first on other ports, and down stops exactly its processes', async () => {
    const r = await up({ root: second, gpuNodes: 1, gpusPerNode: 4, gpuType: 'a100-80gb', cpuNodes: 0, jobDurationMs: 100 }, () => {});
    expect(r.started).toEqual([...COMPONENTS]);
    const ports = (root: string) => Object.values(readState(paths(root))!.ports);
    const shared = ports(ROOT).filter((p) => ports(second).includes(p));
    expect(shared).toEqual([]);
    const s = await status(second);
    // Its simulated GPU node, and its own local execution node (no GPUs on this machine unless nvidia-smi lists some).
    expect(s.nodes.filter((n) => n.name !== 'kiln-local-0').map((n) => [n.name, n.gpus])).toEqual([['kiln-gpu-0', '4']]);
    expect(s.nodes.filter((n) => n.name === 'kiln-local-0').map((n) => n.ready)).toEqual([true]);
    // A component that dies is reported with the tail of its log, and the next `up` restarts only it.
    const scheduler = runningPid(paths(second), 'kube-scheduler')!;
    process.kill(scheduler, 'SIGKILL');
    while (alive(scheduler)) await new Promise((res) => setTimeout(res, 50));
    const degraded = await status(second);
    const dead = degraded.components.find((c) => c.component === 'kube-scheduler')!;
    expect([degraded.healthy, dead.running]).toEqual([false, false]);
    expect(dead.logTail?.length).toBeGreaterThan(0);
    const again = await up({ root: second, gpuNodes: 1, gpusPerNode: 4, gpuType: 'a100-80gb', cpuNodes: 0, jobDurationMs: 100 }, () => {});
    expect(again.started).toEqual(['kube-scheduler']);
    const pids = COMPONENTS.map((c) => runningPid(paths(second), c)!);
    const firstPids = COMPONENTS.map((c) => runningPid(paths(ROOT), c)!);
    expect(await down(second, () => {})).toEqual([...COMPONENTS].reverse());
    expect(pids.filter(alive)).toEqual([]);
    expect(firstPids.every(alive)).toBe(true);
    expect((await status(second)).exists).toBe(false);
  });
});
