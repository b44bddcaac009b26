import { afterAll, describe, expect, it } from 'vitest';
import { eventually, k, uniq } from './helpers.ts';

const ns = uniq('kiln-it-sched');

describe('the local cluster schedules against real GPU capacity', () => {
  afterAll(async () => {
    await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('has 4 GPU nodes with 8 GPUs and a GPU product label, and 2 CPU nodes, all Ready', async () => {
    const r = await k('GET', '/api/v1/nodes');
    const nodes = (r.body as { items: { metadata: { name: string; labels: Record<string, string> }; status: { allocatable: Record<string, string>; conditions: { type: string; status: string }[] } }[] }).items;
    const gpu = nodes.filter((n) => n.metadata.labels['kiln.dev/pool'] === 'gpu');
    const cpu = nodes.filter((n) => n.metadata.labels['kiln.dev/pool'] === 'cpu');
    expect(gpu.map((n) => n.status.allocatable['nvidia.com/gpu'])).toEqual(['8', '8', '8', '8']);
    expect(new Set(gpu.map((n) => n.metadata.labels['nvidia.com/gpu.product']))).toEqual(new Set(['NVIDIA-H100-80GB-HBM3']));
    expect(cpu).toHaveLength(2);
    for (const n of nodes) expect(n.status.conditions.find((c) => c.type === 'Ready')?.status, n.metadata.name).toBe('True');
  });

  it('leaves a pod asking for more GPUs than any node has Pending, with the scheduler saying why', async () => {
    expect((await k('POST', '/api/v1/namespaces', { metadata: { name: ns } })).status).toBe(201);
    const pod = {
      metadata: { name: 'too-big' },
      spec: { containers: [{ name: 'c', image: 'kiln/trainer:test', resources: { limits: { 'nvidia.com/gpu': '16' } } }] },
    };
    expect((await eventually('the default service account', async () => ((await k('GET', `/api/v1/namespaces/${ns}/serviceaccounts/default`)).status === 200 ? true : undefined)))).toBe(true);
    expect((await k('POST', `/api/v1/namespaces/${ns}/pods`, pod)).status).toBe(201);
    const cond = await eventually('the scheduler to give up on the pod', async () => {
      const p = (await k('GET', `/api/v1/namespaces/${ns}/pods/too-big`)).body as { status: { phase: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] } };
      return p.status.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    });
    expect(cond.reason).toBe('Unschedulable');
    expect(cond.message).toMatch(/Insufficient nvidia\.com\/gpu/);
    const again = (await k('GET', `/api/v1/namespaces/${ns}/pods/too-big`)).body as { status: { phase: string }; spec: { nodeName?: string } };
    expect(again.status.phase).toBe('Pending');
    expect(again.spec.nodeName).toBeUndefined();
  });

  it('runs a pod of a Job on a GPU node and marks the Job Complete', async () => {
    const job = {
      metadata: { name: 'fits' },
      spec: { backoffLimit: 0, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'kiln/trainer:test', resources: { limits: { 'nvidia.com/gpu': '8' } } }] } } },
    };
    expect((await k('POST', `/apis/batch/v1/namespaces/${ns}/jobs`, job)).status).toBe(201);
    const done = await eventually('the Job to complete', async () => {
      const j = (await k('GET', `/apis/batch/v1/namespaces/${ns}/jobs/fits`)).body as { status?: { succeeded?: number; conditions?: { type: string; status: string }[] } };
      return j.status?.conditions?.find((c) => c.type === 'Complete' && c.status === 'True') ? j : undefined;
    });
    expect(done.status?.succeeded).toBe(1);
    const pods = (await k('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=job-name%3Dfits`)).body as { items: { spec: { nodeName: string }; status: { phase: string } }[] };
    expect(pods.items[0]?.spec.nodeName).toMatch(/^kiln-gpu-/);
    expect(pods.items[0]?.status.phase).toBe('Succeeded');
  });
});
