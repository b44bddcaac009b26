import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compile } from '@kiln/plan';
import { load } from '@kiln/spec';
import { describe, expect, it } from 'vitest';
import { checkCapacity, diffRuns } from '../src/plan-cmd.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const plan = (file: string) => compile(load(`${root}configs/${file}`).spec!);
const node = (name: string, product: string | undefined, gpus: number) => {
  const labels: Record<string, string> = product ? { 'nvidia.com/gpu.product': product } : {};
  const allocatable: Record<string, string> = gpus ? { cpu: '96', 'nvidia.com/gpu': String(gpus) } : { cpu: '96' };
  return { name, labels, allocatable };
};

describe('checkCapacity', () => {
  it('accepts a plan whose GPU pods fit the nodes', () => {
    expect(checkCapacity(plan('tiny.yaml'), [node('g0', 'NVIDIA-H100-80GB-HBM3', 8), node('c0', undefined, 0)])).toEqual([]);
  });
  it('says which stage asks for more GPUs per pod than the largest node of its type has', () => {
    const p = checkCapacity(plan('tiny.yaml'), [node('g0', 'NVIDIA-H100-80GB-HBM3', 1)]);
    expect(p.map((x) => x.message)).toEqual(['stage train asks for 2 × nvidia.com/gpu per pod, but the largest h100-80gb node has 1 (1 node: g0)']);
  });
  it('says when no node has the GPU model at all', () => {
    const p = checkCapacity(plan('replit-code-v1-3b.yaml'), [node('g0', 'NVIDIA-H100-80GB-HBM3', 8)]);
    expect(p.map((x) => x.what)).toEqual(['stage train', 'serving target completions']);
    expect(p[0]!.message).toContain('no node of the cluster has them');
  });
});

describe('kiln plan', () => {
  const kiln = (...args: string[]) => spawnSync(process.execPath, [bin, 'plan', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, KUBECONFIG: '' } });

  it('prints the stage graph and the estimate', () => {
    const r = kiln('configs/replit-code-v1-3b.yaml', '--offline');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/train\s+32 nodes × 8 GPUs/);
    expect(r.stdout).toMatch(/GPU-hours of a100-40gb at 40% MFU/);
  });
  it('gives machines the plan as JSON, with a stack overlay and another MFU', () => {
    const j = JSON.parse(kiln('configs/replit-code-v1-3b.yaml', '--offline', '--json', '--stack', 'dev', '--mfu', '0.5').stdout);
    expect(j.plan.stack).toBe('dev');
    expect(j.plan.estimate.mfu).toBe(0.5);
    expect(j.plan.stages.find((s: { name: string }) => s.name === 'train').parallelism).toEqual({ kind: 'nodes', nodes: 1, gpusPerNode: 8 });
    expect(j.cluster).toBeNull();
  });
  it('reports spec errors like validate does, with exit 1, and usage errors with exit 2', () => {
    const r = kiln(`${root}libs/spec/test/fixtures/invalid/heads-not-dividing.yaml`, '--offline');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('KL301');
    expect(kiln('configs/tiny.yaml', '--mfu', '2').status).toBe(2);
    expect(kiln().status).toBe(2);
  });
});

describe('diffRuns', () => {
  const p = plan('tiny.yaml');
  // A recorded run: its artifact paths carry its own run id.
  const asRun = (runId: string, created: string, stages = p.stages) => ({ runId, created, stages: JSON.parse(JSON.stringify(stages).split(p.runId).join(runId)) as typeof stages });

  it('knows when the planned run already exists', () => {
    expect(diffRuns(p, [asRun('r-000000000000', '2026-01-01T00:00:00Z'), asRun(p.runId, '2026-01-02T00:00:00Z')])).toMatchObject({ sameRun: true, stages: [] });
  });
  it('names the stages whose config changed against the newest run', () => {
    const changed = p.stages.map((s): typeof s => (s.kind === 'train' ? { ...s, config: { ...s.config, training: { ...s.config.training, seed: 7 } } } : s));
    const d = diffRuns(p, [asRun('r-111111111111', '2026-01-02T00:00:00Z', changed), asRun('r-000000000000', '2026-01-01T00:00:00Z', [])]);
    expect(d).toEqual({ existing: ['r-000000000000', 'r-111111111111'], sameRun: false, stages: [{ name: 'train', change: 'changed' }] });
  });
  it('does not count the run id inside artifact paths as a change', () => {
    const other = 'r-222222222222';
    const moved = JSON.parse(JSON.stringify(p.stages).split(p.runId).join(other)) as typeof p.stages;
    expect(diffRuns(p, [asRun(other, '2026-01-02T00:00:00Z', moved)]).stages).toEqual([]);
  });

  it('reports added and removed stages', () => {
    const d = diffRuns(p, [asRun('r-111111111111', '2026-01-02T00:00:00Z', [...p.stages.filter((s) => s.name !== 'export'), { ...p.stages[0]!, name: 'eval-old' }])]);
    expect(d.stages).toEqual([{ name: 'export', change: 'added' }, { name: 'eval-old', change: 'removed' }]);
  });
});
