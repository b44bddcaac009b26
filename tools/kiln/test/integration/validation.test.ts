import { describe, expect, it } from 'vitest';
import { createRun, preparePlatform, tinyPlan } from '@kiln/local-cluster';
import { k, uniq } from './helpers.ts';
import { runPath } from './run-helpers.ts';

describe('the API server validates what it is given (server-side)', () => {
  it('rejects an invalid object with 422 and the field at fault', async () => {
    const r = await k('POST', '/api/v1/namespaces', { metadata: { name: 'Not_A_Valid_Name' } });
    expect(r.status).toBe(422);
    const body = r.body as { reason: string; details: { causes: { field: string }[] } };
    expect(body.reason).toBe('Invalid');
    expect(body.details.causes[0]?.field).toBe('metadata.name');
  });

  it('rejects a Job with a negative parallelism', async () => {
    const job = { metadata: { name: 'bad' }, spec: { parallelism: -1, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x' }] } } } };
    const r = await k('POST', '/apis/batch/v1/namespaces/default/jobs?dryRun=All', job);
    expect(r.status).toBe(422);
    expect(JSON.stringify(r.body)).toContain('spec.parallelism');
  });

  it('rejects unknown fields under strict field validation', async () => {
    const r = await k('POST', '/api/v1/namespaces?dryRun=All&fieldValidation=Strict', { metadata: { name: 'ok-name' }, spec: { bogus: true } });
    expect(r.status).toBe(400);
    expect((r.body as { message: string }).message).toContain('unknown field "spec.bogus"');
  });

  it("keeps a training stage's progress fields in a ModelRun's status (the CRD declares them) and prunes an unknown one", async () => {
    // No controller watches this namespace: the status written here stays as the API server stores it.
    const plan = tinyPlan(uniq('kiln-it-progress'));
    await k('POST', '/api/v1/namespaces', { metadata: { name: plan.namespace } });
    try {
      await preparePlatform(plan);
      await createRun(plan);
      const run = (await k('GET', runPath(plan))).body as Record<string, unknown>;
      const progress = { done: 1.2e9, total: 2.9e9, unit: 'tokens', updatedAt: '2026-12-01T16:40:00+00:00', step: 4578, steps: 11062, loss: 2.31, lr: 0.0002, grad_norm: 0.8, tokens_per_s: 181234.5, eta_s: 7830, mfu: 0.52, note: 'n' };
      const stage = { name: 'train', kind: 'train', phase: 'Running', reason: 'Running', message: 'running', attempts: 1, maxAttempts: 5, manifest: 'm', progress: { ...progress, surprise: 1 } };
      const status = { phase: 'Running', message: 'm', currentStage: 'train', stages: [stage], conditions: [], artifacts: [], metrics: {}, gates: {} };
      const put = await k('PUT', `${runPath(plan)}/status`, { ...run, status });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const got = ((await k('GET', runPath(plan))).body as { status: { stages: { progress: unknown }[] } }).status.stages[0]!.progress;
      expect(got).toEqual(progress);
    } finally {
      await k('DELETE', `/api/v1/namespaces/${plan.namespace}`);
    }
  });
});
