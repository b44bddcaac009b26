import { describe, expect, it } from 'vitest';
import { k } from './helpers.ts';

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
});
