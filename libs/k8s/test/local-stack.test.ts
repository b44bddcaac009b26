/**
 * The `local` stack of configs/tiny.yaml as Kubernetes objects: every pod of it on the local node (its pool's
 * selector and toleration), none asking for a GPU, and requests below limits as infra.stage_resources says.
 */
import { fileURLToPath } from 'node:url';
import type { V1PodSpec } from '@kubernetes/client-node';
import { compileFile, type Plan } from '@kiln/plan';
import { describe, expect, it } from 'vitest';
import { evalModelObjects, gatewayObjects, servingObjects, stageObjects } from '../src/index.ts';
import { served } from './served.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
const plan = (stack: string): Plan => {
  const r = compileFile(configs + 'tiny.yaml', { stack });
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.plan;
};

/** Every pod spec the plan makes: stage Jobs, Triton serving, the eval model server, the gateway. */
function pods(p: Plan): [string, V1PodSpec][] {
  const out: [string, V1PodSpec][] = p.stages.map((s) => [s.name, stageObjects(p, s).job.spec!.template.spec!]);
  for (const t of p.serving) {
    out.push([`serving ${t.name}`, servingObjects(p, t, served(p, t)).deployment.spec!.template.spec!]);
    out.push([`gateway ${t.name}`, gatewayObjects(p, t, { canary: false }).deployment.spec!.template.spec!]);
  }
  out.push(['eval model', evalModelObjects(p).deployment.spec!.template.spec!]);
  return out;
}

describe('the local stack of configs/tiny.yaml', () => {
  const local = plan('local');

  it('GIVEN the local stack WHEN its pods are built THEN every one selects kiln.dev/pool=local and tolerates the local taint, and none asks for a GPU', () => {
    const all = pods(local);
    expect(all.length).toBe(local.stages.length + 3);
    for (const [name, pod] of all) {
      expect({ name, sel: pod.nodeSelector }).toEqual({ name, sel: { 'kiln.dev/pool': 'local' } });
      expect({ name, tol: pod.tolerations }).toEqual({ name, tol: [{ key: 'kiln.dev/local', operator: 'Exists', effect: 'NoSchedule' }] });
      const r = pod.containers[0]!.resources!;
      expect({ name, gpu: Object.keys({ ...r.limits, ...r.requests }).filter((k) => k.includes('gpu')) }).toEqual({ name, gpu: [] });
    }
  });

  it('GIVEN stage_resources WHEN pods are built THEN requests and limits differ as written, for stages, Triton and the gateway', () => {
    const res = Object.fromEntries(pods(local).map(([n, p]) => [n, p.containers[0]!.resources]));
    expect(res['train']).toEqual({ requests: { cpu: '500m', memory: '2Gi' }, limits: { cpu: '2', memory: '6Gi' } });
    expect(res['data-prep']).toEqual({ requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '1', memory: '3Gi' } });
    expect(res['serving completions']).toEqual({ requests: { cpu: '100m', memory: '512Mi' }, limits: { cpu: '2', memory: '3Gi' } });
    expect(res['eval model']).toEqual(res['serving completions']);
    expect(res['gateway completions']).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } });
  });

  it('GIVEN CPU training WHEN the train Job is built THEN the launcher starts one process per pod', () => {
    const train = local.stages.find((s) => s.kind === 'train')!;
    const cmd = stageObjects(local, train).job.spec!.template.spec!.containers[0]!.command!;
    expect(cmd).toContain('--nproc-per-node=1');
    expect(train.resources.gpu).toBeUndefined();
  });

  it('GIVEN the dev stack (GPUs) WHEN built THEN Triton and training still ask for GPUs with requests equal to limits', () => {
    const dev = plan('dev');
    const serving = servingObjects(dev, dev.serving[0]!, served(dev, dev.serving[0]!)).deployment.spec!.template.spec!;
    expect(serving.containers[0]!.resources).toEqual({ requests: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '1' }, limits: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '1' } });
    expect(serving.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' });
    const train = stageObjects(dev, dev.stages.find((s) => s.kind === 'train')!).job.spec!.template.spec!;
    expect(train.containers[0]!.resources!.limits!['nvidia.com/gpu']).toBe('2');
    expect(train.containers[0]!.command).toContain('--nproc-per-node=2');
  });
});
