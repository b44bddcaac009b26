import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyFile, post, start, until, type Harness } from './support/harness.ts';

const body = { model: 'completions', prompt: 'x', max_tokens: 2, temperature: 0 };
const keys = Array.from({ length: 10_000 }, (_, i) => `sk-canary-${i.toString().padStart(5, '0')}-key`);

/** Sends one request per key (`concurrency` at a time); the upstream that answered each. */
async function route(url: string, ks: readonly string[], concurrency = 32): Promise<(string | null)[]> {
  const out: (string | null)[] = new Array(ks.length).fill(null);
  const pool = new Pool(url, { connections: concurrency });
  const payload = JSON.stringify(body);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ks.length) {
        const i = next++;
        const r = await pool.request({ method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${ks[i]}` }, body: payload });
        await r.body.dump();
        out[i] = r.statusCode === 200 ? String(r.headers['x-kiln-upstream']) : `HTTP ${r.statusCode}`;
      }
    }),
  );
  await pool.close();
  return out;
}

describe('canary routing', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start({ fixtures: [{ name: 'stable', weight: 9 }, { name: 'canary', weight: 1 }], config: { api_keys_file: keyFile(keys) } });
  });
  afterAll(() => h.close());

  // 10,000 HTTP requests on 2 loaded cores: up to a minute.
  it('splits 10,000 requests from 10,000 keys within 3 points of the weights (normalised: 9 and 1 → 90% / 10%)', { timeout: 120_000 }, async () => {
    const got = await route(h.url, keys);
    const canary = got.filter((u) => u === 'canary').length / got.length;
    const stable = got.filter((u) => u === 'stable').length / got.length;
    expect(canary + stable).toBe(1);
    expect(Math.abs(canary - 0.1)).toBeLessThan(0.03);
    expect(h.fixtures[1]!.requests.length).toBe(got.filter((u) => u === 'canary').length);
  });

  it('is sticky: the same key always lands on the same upstream', async () => {
    const sample = keys.slice(0, 200);
    const first = await route(h.url, sample);
    for (let round = 0; round < 3; round++) expect(await route(h.url, sample)).toEqual(first);
    expect(new Set(first)).toEqual(new Set(['stable', 'canary']));
  });

  it('pins a version with <model>@<name>', async () => {
    const r = await post(`${h.url}/v1/completions`, { ...body, model: 'completions@canary' }, { authorization: `Bearer ${keys[0]}` });
    expect([r.status, r.headers.get('x-kiln-upstream')]).toEqual([200, 'canary']);
  });

  it('sends no traffic to an upstream that stops, moving only its keys, and takes it back when it is ready again', async () => {
    const sample = keys.slice(0, 400);
    const before = await route(h.url, sample);
    const canary = h.fixtures[1]!;
    await canary.stop();
    await until(() => !h.gateway.router.isReady('canary'), 3000, 'the canary marked not ready');
    const counted = canary.requests.length;
    const during = await route(h.url, sample);
    expect(during.every((u) => u === 'stable')).toBe(true);
    expect(canary.requests.length).toBe(counted);
    // A pinned request to a down version: 503.
    const pinned = await post(`${h.url}/v1/completions`, { ...body, model: 'completions@canary' }, { authorization: `Bearer ${keys[0]}` });
    expect([pinned.status, pinned.json.error.code]).toEqual([503, 'model_unavailable']);
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/kiln_gateway_upstream_ready\{upstream="canary"\} 0/);
    await canary.restart();
    await until(() => h.gateway.router.isReady('canary'), 3000, 'the canary ready again');
    expect(await route(h.url, sample)).toEqual(before);
  });

  it('marks an upstream whose model is not ready as not ready, too', async () => {
    h.fixtures[1]!.modelReady = false;
    await until(() => !h.gateway.router.isReady('canary'), 3000, 'the canary model not ready');
    h.fixtures[1]!.modelReady = true;
    await until(() => h.gateway.router.isReady('canary'), 3000, 'the canary model ready');
  });

  it('fails over at once when a connection is refused, before the next readiness poll', async () => {
    const canary = h.fixtures[1]!;
    const upstreamOf = (k: string) => {
      const p = h.gateway.router.pick(k);
      return 'upstream' in p ? p.upstream.name : null;
    };
    const key = keys.find((k) => upstreamOf(k) === 'canary')!;
    await canary.stop();
    const r = await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${key}` });
    expect([r.status, r.headers.get('x-kiln-upstream')]).toEqual([200, 'stable']);
    await canary.restart();
    await until(() => h.gateway.router.isReady('canary'), 3000, 'the canary ready again');
  });

  it('answers 503 when every upstream is down, and /readyz says not ready', async () => {
    await Promise.all(h.fixtures.map((f) => f.stop()));
    await until(() => !h.gateway.router.anyReady, 3000, 'all down');
    const r = await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${keys[0]}` });
    expect([r.status, r.json.error.code]).toEqual([503, 'model_unavailable']);
    expect(r.headers.get('retry-after')).toBe('2');
    expect((await fetch(`${h.url}/readyz`)).status).toBe(503);
    await Promise.all(h.fixtures.map((f) => f.restart()));
  });
});
