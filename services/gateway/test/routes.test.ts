import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLAYGROUND_CSP } from '../src/gateway.ts';
import { keyFile, post, start, tempDir, type Harness } from './support/harness.ts';

const KEY = 'sk-routes-abcdefabcdef';
const auth = { authorization: `Bearer ${KEY}` };

describe('the playground route and /v1/feedback', () => {
  let h: Harness;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    h = await start({ config: { api_keys_file: keyFile([KEY]), feedback: { dir } } });
  });
  afterAll(() => h.close());

  it('serves the playground at / and /playground/* with a strict Content-Security-Policy (no inline script)', async () => {
    const page = await fetch(`${h.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toBe(PLAYGROUND_CSP);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const files = readdirSync(new URL('../src/playground/', import.meta.url));
    const js = files.find((f) => f.endsWith('.js'))!;
    const r = await fetch(`${h.url}/playground/${js}`);
    expect([r.status, r.headers.get('content-type'), r.headers.get('content-security-policy')]).toEqual([200, 'text/javascript; charset=utf-8', PLAYGROUND_CSP]);
    expect(await r.text()).toBe(readFileSync(new URL(`../src/playground/${js}`, import.meta.url), 'utf8'));
    expect((await fetch(`${h.url}/playground/`)).status).toBe(200);
    // The static files need no key: the page asks for it.
    expect((await fetch(`${h.url}/playground/missing.js`)).status).toBe(404);
    expect((await fetch(`${h.url}/playground/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${h.url}/playground/%2e%2e/gateway.ts`)).status).toBe(404);
  });

  it('records feedback on a completion after fsync, once per completion id', async () => {
    const c = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'def f():', suffix: 'return 1', max_tokens: 6, temperature: 0 }, auth);
    expect(c.status).toBe(200);
    const first = await post(`${h.url}/v1/feedback`, { completion_id: c.json.id, outcome: 'accepted' }, auth);
    expect([first.status, first.json]).toEqual([200, { status: 'recorded' }]);
    const again = await post(`${h.url}/v1/feedback`, { completion_id: c.json.id, outcome: 'accepted' }, auth);
    expect([again.status, again.json]).toEqual([200, { status: 'duplicate' }]);
    const file = readdirSync(dir).find((f) => f.endsWith('.jsonl'))!;
    const rec = JSON.parse(readFileSync(join(dir, file), 'utf8').trim().split('\n')[0]!);
    expect(rec).toMatchObject({ v: 1, completion_id: c.json.id, outcome: 'accepted', model: 'completions', version: 'stable', context: { prompt: 'def f():', suffix: 'return 1', completion: c.json.choices[0].text } });
    expect(rec.key_id).toMatch(/^[0-9a-f]{12}$/);
  });

  it("answers bad feedback with a 400 naming the field, and no key with 401", async () => {
    const bad = await post(`${h.url}/v1/feedback`, { completion_id: 'cmpl-x', outcome: 'maybe' }, auth);
    expect([bad.status, bad.json.error.param, bad.json.error.code]).toEqual([400, 'outcome', 'invalid_feedback']);
    expect((await post(`${h.url}/v1/feedback`, { completion_id: 'cmpl-x', outcome: 'accepted' })).status).toBe(401);
  });

  it("answers unknown paths with 404 in OpenAI's shape", async () => {
    const r = await fetch(`${h.url}/v2/anything`);
    const j = (await r.json()) as { error: { code: string } };
    expect([r.status, j.error.code]).toEqual([404, 'not_found']);
  });
});
