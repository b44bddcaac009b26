import { writeFileSync } from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../src/keys.ts';
import { keyFile, post, start, until, type Harness } from './support/harness.ts';

const A = 'sk-alpha-0000000000000000';
const B = 'sk-bravo-1111111111111111';
const C = 'sk-charlie-22222222222222';
const body = { model: 'completions', prompt: 'x', max_tokens: 4, temperature: 0 };

describe('API keys', () => {
  let h: Harness;
  let file: string;
  beforeAll(async () => {
    file = keyFile(['# team keys', A, '', `sha256:${sha256(B).toString('hex')}`]);
    h = await start({ config: { api_keys_file: file }, keyPollMs: 100 });
  });
  afterAll(() => h.close());

  it('accepts a listed key and a key listed by its sha256', async () => {
    for (const k of [A, B]) expect((await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${k}` })).status).toBe(200);
  });

  it("answers a missing, malformed or wrong key with 401 in OpenAI's shape", async () => {
    for (const headers of [{}, { authorization: A }, { authorization: 'Bearer sk-wrong' }, { authorization: `Basic ${A}` }] as Record<string, string>[]) {
      const r = await post(`${h.url}/v1/completions`, body, headers);
      expect([r.status, r.json.error.code, r.json.error.type], JSON.stringify(headers)).toEqual([401, 'invalid_api_key', 'invalid_request_error']);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect((await fetch(`${h.url}/v1/models`)).status).toBe(401);
  });

  it('is what the openai client sees as an AuthenticationError', async () => {
    const client = new OpenAI({ apiKey: 'sk-nope', baseURL: `${h.url}/v1`, maxRetries: 0 });
    await expect(client.completions.create(body)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('revokes a key removed from the file within a few seconds, and takes a new one', async () => {
    writeFileSync(file, `${B}\n${C}\n`);
    const t0 = Date.now();
    await until(async () => (await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${A}` })).status === 401, 5000, 'A revoked');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${C}` })).status).toBe(200);
    expect((await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${B}` })).status).toBe(200);
  });

  it('logs the key_id (12 hex digits of its sha256), never the key', async () => {
    await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${C}` });
    const id = sha256(C).toString('hex').slice(0, 12);
    expect(h.logs.some((l) => l.msg === 'request' && l.key_id === id)).toBe(true);
    for (const k of [A, B, C]) expect(h.logText()).not.toContain(k);
  });
});

describe('rate limits', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start({ config: { api_keys_file: keyFile([A, B]), limits: { requests_per_minute: 3, tokens_per_minute: 1000 } } });
  });
  afterAll(() => h.close());

  it('answers 429 with Retry-After and rate_limit_exceeded past the requests per minute, per key', async () => {
    const auth = { authorization: `Bearer ${A}` };
    for (let i = 0; i < 3; i++) expect((await post(`${h.url}/v1/completions`, body, auth)).status).toBe(200);
    const r = await post(`${h.url}/v1/completions`, body, auth);
    expect([r.status, r.json.error.code, r.json.error.type]).toEqual([429, 'rate_limit_exceeded', 'requests']);
    const after = Number(r.headers.get('retry-after'));
    expect(after).toBeGreaterThanOrEqual(1);
    expect(after).toBeLessThanOrEqual(20);
    // Another key has its own budget.
    expect((await post(`${h.url}/v1/completions`, body, { authorization: `Bearer ${B}` })).status).toBe(200);
  });

  it('reserves prompt + max_tokens against the tokens per minute, and refuses a request larger than the whole minute', async () => {
    const auth = { authorization: `Bearer ${B}` };
    const r = await post(`${h.url}/v1/completions`, { ...body, max_tokens: 900, prompt: 'y'.repeat(600) }, auth);
    expect([r.status, r.json.error.code, r.json.error.type]).toEqual([429, 'rate_limit_exceeded', 'tokens']);
    expect(r.json.error.message).toContain('lower max_tokens');
    expect(r.headers.get('retry-after')).toBeNull();
  });
});
