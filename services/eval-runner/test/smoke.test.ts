/** The canary smoke check against a fixture model server (the protocol), with real HumanEval and the real sandbox. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executorFor } from '../src/executors.ts';
import { Sandbox } from '../src/sandbox.ts';
import { percentile, smokeCheck } from '../src/smoke.ts';
import { startFixtureServer, type FixtureServer } from './support/fixture-server.ts';

const HUMANEVAL = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
const rows = gunzipSync(readFileSync(HUMANEVAL))
  .toString('utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as { prompt: string; canonical_solution: string });
/** The reference solution of a HumanEval prompt: a model that passes every problem. */
const solve = (prompt: string) => rows.find((r) => r.prompt === prompt)?.canonical_solution ?? '    pass\n';

let sandbox: Sandbox;
const servers: FixtureServer[] = [];
const serve = async (opts: Parameters<typeof startFixtureServer>[0]) => {
  const s = await startFixtureServer(opts);
  servers.push(s);
  return s;
};
beforeAll(async () => {
  sandbox = await Sandbox.create({ concurrency: 2 });
});
afterAll(async () => {
  await sandbox?.close();
  for (const s of servers) await s.close();
});

const base = { model: 'completions@canary', apiKey: 'k-test', benchmark: HUMANEVAL, problems: 3 };

describe('smokeCheck', () => {
  it('passes a model that answers every request in time, sending the pinned model name and the key', async () => {
    const server = await serve({ complete: (p) => solve(p) });
    const r = await smokeCheck({ ...base, endpoint: `${server.url}/v1`, minPassed: 3, objectives: { p50Ms: 5000, p99Ms: 10000 }, execute: executorFor(sandbox) });
    expect(r).toMatchObject({ passed: true, problems: 3, passedProblems: 3, failedRequests: 0, reasons: [] });
    expect(server.requests).toHaveLength(3);
    expect(server.requests.every((q) => (q.body as { model?: string }).model === 'completions@canary')).toBe(true);
    expect(server.requests[0]!.headers['authorization']).toBe('Bearer k-test');
  });

  it('fails on latency over the objectives, with the measured numbers', async () => {
    const server = await serve({ complete: async (p) => (await new Promise((r) => setTimeout(r, 150)), solve(p)) });
    const r = await smokeCheck({ ...base, endpoint: `${server.url}/v1`, objectives: { p50Ms: 50, p99Ms: 100 }, execute: executorFor(sandbox) });
    expect(r.passed).toBe(false);
    expect(r.p50Ms).toBeGreaterThanOrEqual(150);
    expect(r.reasons.join('\n')).toMatch(/p50 latency \d+ ms is over the objective of 50 ms[\s\S]*p99 latency \d+ ms is over the objective of 100 ms/);
  });

  it('fails on a failed request (never retried) and on too few passing problems', async () => {
    const server = await serve({ complete: () => '    pass\n', faults: [{ kind: 'status', status: 500 }] });
    const r = await smokeCheck({ ...base, endpoint: `${server.url}/v1`, minPassed: 1, objectives: { p50Ms: 5000, p99Ms: 10000 }, execute: executorFor(sandbox) });
    expect(r).toMatchObject({ passed: false, failedRequests: 1 });
    expect(r.reasons[0]).toMatch(/^1 request\(s\) failed/);
    expect(server.requests).toHaveLength(1);
    const weak = await serve({ complete: () => '    pass\n' });
    const w = await smokeCheck({ ...base, endpoint: `${weak.url}/v1`, minPassed: 1, objectives: { p50Ms: 5000, p99Ms: 10000 }, execute: executorFor(sandbox) });
    expect(w).toMatchObject({ passed: false, passedProblems: 0, failedRequests: 0, reasons: ['0 of 3 problems passed; the check needs 1'] });
  });

  it('reads percentiles by nearest rank', () => {
    expect(percentile([], 50)).toBe(0);
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 100], 99)).toBe(100);
  });
});
