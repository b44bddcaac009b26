import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyFile, post, start, type Harness } from './support/harness.ts';

const KEY = 'sk-test-completions-0123456789';

describe('/v1/completions in front of a fixture Triton', () => {
  let h: Harness;
  let auth: Record<string, string>;
  beforeAll(async () => {
    h = await start({ config: { api_keys_file: keyFile([KEY]), limits: { max_prompt_chars: 200, max_tokens: 64 } } });
    auth = { authorization: `Bearer ${KEY}` };
  });
  afterAll(() => h.close());

  it("answers OpenAI's completion shape, with usage from Triton's counts and the upstream in a header", async () => {
    const r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'def fib(n):', max_tokens: 10, temperature: 0 }, auth);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-kiln-upstream')).toBe('stable');
    expect(r.json.id).toMatch(/^cmpl-[A-Za-z0-9_-]{16}$/);
    expect(r.json).toMatchObject({ object: 'text_completion', model: 'completions', choices: [{ index: 0, text: ' [stable] ', finish_reason: 'length', logprobs: null }] });
    expect(r.json.usage).toEqual({ prompt_tokens: 11, completion_tokens: 10, total_tokens: 21 });
    expect(Math.abs(r.json.created - Date.now() / 1000)).toBeLessThan(5);
    // Greedy: top_k 1, no temperature, no seed.
    const sent = h.fixtures[0]!.requests.at(-1)!;
    expect(sent.path).toBe('/v2/models/ensemble/generate');
    expect(sent.body).toEqual({ text_input: 'def fib(n):', max_tokens: 10, top_k: 1, stop_words: '', bad_words: '' });
  });

  it('sends suffix, stop words and sampling settings to Triton, and maps its finish reasons', async () => {
    const r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'a', suffix: 'return x', max_tokens: 64, temperature: 0.5, top_p: 0.9, seed: 7, stop: ['STOP', '\n\n'] }, auth);
    expect(r.status).toBe(200);
    expect(r.json.choices[0]).toMatchObject({ text: ' [stable] seed=7 suffix=return x ', finish_reason: 'stop' });
    expect(h.fixtures[0]!.requests.at(-1)!.body).toEqual({ text_input: 'a', suffix: 'return x', max_tokens: 64, temperature: 0.5, top_p: 0.9, random_seed: 7, stop_words: ['STOP', '\n\n'], bad_words: '' });
    const one = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'a', stop: 'seed' }, auth);
    expect(h.fixtures[0]!.requests.at(-1)!.body.stop_words).toEqual(['seed']);
    expect(one.json.choices[0].finish_reason).toBe('stop');
    // No max_tokens: OpenAI's default 16.
    expect(h.fixtures[0]!.requests.at(-1)!.body.max_tokens).toBe(16);
  });

  it('makes n choices with seeds seed+i, one upstream call each', async () => {
    const before = h.fixtures[0]!.requests.length;
    const r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'x', n: 3, seed: 100, max_tokens: 20, temperature: 1 }, auth);
    expect(r.status).toBe(200);
    expect(r.json.choices.map((c: { index: number; text: string }) => [c.index, c.text])).toEqual([
      [0, ' [stable] seed=100 s'],
      [1, ' [stable] seed=101 s'],
      [2, ' [stable] seed=102 s'],
    ]);
    expect(h.fixtures[0]!.requests.length - before).toBe(3);
    expect(r.json.usage).toEqual({ prompt_tokens: 1, completion_tokens: 60, total_tokens: 61 });
  });

  it('streams server-sent events the official openai client reads, ending with [DONE]', async () => {
    const client = new OpenAI({ apiKey: KEY, baseURL: `${h.url}/v1` });
    const stream = await client.completions.create({ model: 'completions', prompt: 'def f():', max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: unknown;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.id).toMatch(/^cmpl-/);
      for (const c of chunk.choices) {
        text += c.text;
        finishes.push(c.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(' [stable] seed=greedy suffix=-');
    expect(chunks).toBeGreaterThan(5);
    expect(finishes.at(-1)).toBe('length');
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual({ prompt_tokens: 8, completion_tokens: 30, total_tokens: 38 });
    expect(h.fixtures[0]!.requests.at(-1)!.path).toBe('/v2/models/ensemble/generate_stream');
    expect(h.fixtures[0]!.requests.at(-1)!.body.stream).toBe(true);
  });

  it('ends the raw stream with data: [DONE]', async () => {
    const r = await fetch(`${h.url}/v1/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'completions', prompt: 'p', max_tokens: 8, stream: true, temperature: 0 }) });
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await r.text();
    expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = body.split('\n\n').filter(Boolean);
    expect(JSON.parse(events[0]!.slice(6))).toMatchObject({ object: 'text_completion', choices: [{ index: 0, finish_reason: null, logprobs: null }] });
  });

  it('answers bad input with 400s in OpenAI error shape that name the field', async () => {
    const cases: [unknown, number, string | null, string][] = [
      ['{"model": "completions", "prompt": ', 400, null, 'invalid_json'],
      [{ model: 'completions', prompt: 'x'.repeat(201) }, 400, 'prompt', 'prompt_too_long'],
      [{ model: 'completions', prompt: 'x', max_tokens: -1 }, 400, 'max_tokens', 'invalid_value'],
      [{ model: 'completions', prompt: 'x', max_tokens: 65 }, 400, 'max_tokens', 'invalid_value'],
      [{ model: 'gpt-4', prompt: 'x' }, 400, 'model', 'model_not_found'],
      [{ model: 'completions@nope', prompt: 'x' }, 400, 'model', 'model_not_found'],
      [{ model: 'completions', prompt: [1, 2, 3] }, 400, 'prompt', 'unsupported_value'],
      [{ model: 'completions', prompt: 'x', temperature: 3 }, 400, 'temperature', 'invalid_value'],
      [{ model: 'completions', prompt: 'x', stop: [1] }, 400, 'stop', 'invalid_value'],
      [{ model: 'completions', prompt: 'x', bogus: 1 }, 400, 'bogus', 'unknown_parameter'],
      [{ prompt: 'x' }, 400, 'model', 'missing_required_parameter'],
    ];
    for (const [body, status, param, code] of cases) {
      const r = await post(`${h.url}/v1/completions`, body, auth);
      expect([r.status, r.json?.error?.param, r.json?.error?.code], JSON.stringify(body)).toEqual([status, param, code]);
      expect(r.json.error.type).toBe('invalid_request_error');
      expect(r.json.error.message.length).toBeGreaterThan(10);
    }
    const big = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'x'.repeat(70_000) }, auth);
    expect([big.status, big.json.error.code]).toEqual([413, 'request_too_large']);
    const models = await post(`${h.url}/v1/completions`, { model: 'nope', prompt: 'x' }, auth);
    expect(models.json.error.message).toContain('`completions`, `completions@stable`');
  });

  it('maps upstream failures: an error answer to 502, a rejected request to 400, a hang to 504', async () => {
    const f = h.fixtures[0]!;
    f.failures.push({ status: 500, body: { error: 'CUDA out of memory' } });
    let r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'x' }, auth);
    expect([r.status, r.json.error.code, r.json.error.type]).toEqual([502, 'upstream_error', 'server_error']);
    f.failures.push({ status: 400, body: { error: 'max_tokens must be a non-negative integer' } });
    r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'x' }, auth);
    expect([r.status, r.json.error.code]).toEqual([400, 'upstream_rejected_request']);
    expect(r.json.error.message).toContain('max_tokens must be');
    // Triton's error with HTTP 200 (a decoupled model's /generate) is an error too.
    f.failures.push({ status: 200, body: { error: 'generate expects model to produce exactly 1 response' } });
    r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'x' }, auth);
    expect([r.status, r.json.error.code]).toEqual([502, 'upstream_error']);
  });

  it('lists the model and every pinned version', async () => {
    const r = await fetch(`${h.url}/v1/models`, { headers: auth });
    const j = (await r.json()) as { data: { id: string; object: string }[] };
    expect(j.data.map((m) => m.id)).toEqual(['completions', 'completions@stable']);
    expect(j.data[0]!.object).toBe('model');
  });

  it('logs one structured line per request with key_id, upstream, status, latency and tokens; never the key or the prompt', async () => {
    await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'SECRET-PROMPT-TEXT', max_tokens: 5, temperature: 0 }, auth);
    const line = h.logs.filter((l) => l.msg === 'request' && l.route === '/v1/completions').at(-1)!;
    expect(line).toMatchObject({ status: 200, upstream: 'stable', prompt_tokens: 18, completion_tokens: 5, key_id: expect.stringMatching(/^[0-9a-f]{12}$/) });
    expect(typeof line.latency_ms).toBe('number');
    expect(h.logText()).not.toContain(KEY);
    expect(h.logText()).not.toContain('SECRET-PROMPT-TEXT');
  });

  it('exposes Prometheus metrics: latency, time to first token, tokens, errors, upstream requests and readiness', async () => {
    const text = await (await fetch(`${h.url}/metrics`)).text();
    expect(text).toMatch(/kiln_gateway_request_duration_seconds_count\{route="\/v1\/completions",status="200"\} [1-9]/);
    expect(text).toMatch(/kiln_gateway_time_to_first_token_seconds_count\{upstream="stable"\} [1-9]/);
    expect(text).toMatch(/kiln_gateway_prompt_tokens_total\{upstream="stable"\} [1-9]/);
    expect(text).toMatch(/kiln_gateway_completion_tokens_total\{upstream="stable"\} [1-9]/);
    expect(text).toMatch(/kiln_gateway_errors_total\{code="model_not_found"\} [1-9]/);
    expect(text).toMatch(/kiln_gateway_upstream_requests_total\{upstream="stable",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/kiln_gateway_upstream_ready\{upstream="stable"\} 1/);
  });

  it('answers /healthz and /readyz', async () => {
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    const r = await fetch(`${h.url}/readyz`);
    expect([r.status, await r.json()]).toEqual([200, { status: 'ready', upstreams: { stable: true } }]);
  });

  it('answers /v1/feedback with 404 saying how to enable it when feedback is not configured', async () => {
    const r = await post(`${h.url}/v1/feedback`, { completion_id: 'cmpl-x', outcome: 'accepted' }, auth);
    expect([r.status, r.json.error.code]).toEqual([404, 'feedback_disabled']);
    expect(r.json.error.message).toContain('--feedback-dir');
  });
});

describe('request timeout and prompt logging', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start({ config: { limits: { request_timeout_ms: 300 }, log: { prompts: true } } });
  });
  afterAll(() => h.close());

  it('aborts an upstream call that takes too long and answers 504', async () => {
    h.fixtures[0]!.hang = true;
    const t0 = Date.now();
    const r = await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'x' });
    expect([r.status, r.json.error.code]).toEqual([504, 'timeout']);
    expect(Date.now() - t0).toBeLessThan(5000);
    h.fixtures[0]!.hang = false;
  });

  it('logs the prompt and completion only when log.prompts is on', async () => {
    await post(`${h.url}/v1/completions`, { model: 'completions', prompt: 'LOGGED-PROMPT', max_tokens: 4, temperature: 0 });
    const line = h.logs.filter((l) => l.msg === 'request' && l.route === '/v1/completions').at(-1)!;
    expect(line).toMatchObject({ prompt: 'LOGGED-PROMPT', completion: [' [st'], key_id: null });
  });
});

describe('a stream that runs out of time', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start({ fixtures: [{ name: 'stable', chunkDelayMs: 200 }], config: { limits: { request_timeout_ms: 500 } } });
  });
  afterAll(() => h.close());

  it('ends with an error event in OpenAI shape (no [DONE]) that the openai client raises', async () => {
    const client = new OpenAI({ apiKey: 'open', baseURL: `${h.url}/v1`, maxRetries: 0 });
    const stream = await client.completions.create({ model: 'completions', prompt: 'x', max_tokens: 60, temperature: 0, stream: true });
    let text = '';
    await expect(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
      })(),
    ).rejects.toThrow(/did not answer within 500 ms/);
    expect(text.length).toBeGreaterThan(0);
    expect(text.length).toBeLessThan(60);
  });
});
