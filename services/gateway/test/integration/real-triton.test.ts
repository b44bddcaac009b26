/**
 * The gateway in front of the real Triton: tritonserver 2.51 (python backend) started by the triton branch's
 * services/trainer/scripts/serve.mjs, serving the echo repository and the tiny trained model's export. Needs the
 * serving Python environment and the tiny export (both made and cached on first use, minutes); fails, saying
 * why, when they cannot be made.
 */
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import { Gateway } from '../../src/gateway.ts';
import { keyFile, post, until } from '../support/harness.ts';

interface Triton {
  readonly url: string;
  stop(): Promise<void>;
}
// The trainer is a Python project: its launcher is a plain script, loaded by path.
const serve = (await import(new URL('../../../trainer/scripts/serve.mjs', import.meta.url).href)) as {
  startTriton(o: { repository: string; log?: (l: string) => void }): Promise<Triton>;
  ensureTinyExport(): Promise<string>;
  ECHO_REPOSITORY: string;
};

const KEY = 'sk-integration-real-triton-01';

async function gatewayFor(upstreams: { name: string; url: string; weight?: number }[]): Promise<{ g: Gateway; url: string }> {
  const g = await Gateway.create(parseConfig({ model: 'completions', upstreams, api_keys_file: keyFile([KEY]), health: { interval_ms: 500, timeout_ms: 2000 }, log: { level: 'warn' } }));
  return { g, url: await g.listen('127.0.0.1', 0) };
}

describe('the gateway in front of tritonserver (echo model)', () => {
  let triton: Triton;
  let gw: { g: Gateway; url: string };
  let client: OpenAI;
  beforeAll(async () => {
    triton = await serve.startTriton({ repository: serve.ECHO_REPOSITORY });
    gw = await gatewayFor([{ name: 'echo', url: triton.url }]);
    client = new OpenAI({ apiKey: KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.g.close();
    await triton?.stop();
  });

  it('completes through the openai client, with usage from Triton', async () => {
    const r = await client.completions.create({ model: 'completions', prompt: 'def add(a, b): return a + b', max_tokens: 32, temperature: 0 });
    expect(r.choices[0]!.text).toBe('def add(a, b): return a + b');
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage).toEqual({ prompt_tokens: 7, completion_tokens: 7, total_tokens: 14 });
  });

  it('streams through the openai client: the pieces make the whole, the last one has the finish reason', async () => {
    const stream = await client.completions.create({ model: 'completions', prompt: 'one two three four five', max_tokens: 3, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const pieces: string[] = [];
    let finish: string | null = null;
    let usage: unknown;
    for await (const c of stream) {
      for (const ch of c.choices) {
        if (ch.text) pieces.push(ch.text);
        if (ch.finish_reason) finish = ch.finish_reason;
      }
      if (c.usage) usage = c.usage;
    }
    expect(pieces.join('')).toBe('one two three');
    expect(pieces.length).toBe(3);
    expect(finish).toBe('length');
    expect(usage).toEqual({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
  });

  it('stops sending traffic to a Triton that stops, and answers 503 with none left', async () => {
    await triton.stop();
    await until(() => !gw.g.router.isReady('echo'), 10_000, 'tritonserver marked not ready');
    const r = await post(`${gw.url}/v1/completions`, { model: 'completions', prompt: 'x' }, { authorization: `Bearer ${KEY}` });
    expect([r.status, r.json.error.code]).toEqual([503, 'model_unavailable']);
    expect((await fetch(`${gw.url}/readyz`)).status).toBe(503);
  });
});

describe('the gateway in front of tritonserver serving the tiny trained model', () => {
  let triton: Triton;
  let gw: { g: Gateway; url: string };
  let client: OpenAI;
  const direct = async (body: Record<string, unknown>) => {
    const r = await fetch(`${triton.url}/v2/models/ensemble/generate`, { method: 'POST', body: JSON.stringify({ bad_words: '', stop_words: '', ...body }) });
    return (await r.json()) as { text_output: string; finish_reason: string; prompt_tokens: number; completion_tokens: number };
  };
  beforeAll(async () => {
    const dir = await serve.ensureTinyExport();
    triton = await serve.startTriton({ repository: join(dir, 'completions') });
    gw = await gatewayFor([{ name: 'tiny', url: triton.url }]);
    client = new OpenAI({ apiKey: KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.g.close();
    await triton?.stop();
  });

  it("answers a greedy completion exactly as Triton does, with Triton's token counts", async () => {
    const want = await direct({ text_input: 'def fib(n):', max_tokens: 12, top_k: 1 });
    const r = await client.completions.create({ model: 'completions', prompt: 'def fib(n):', max_tokens: 12, temperature: 0 });
    expect(r.choices[0]!.text).toBe(want.text_output);
    expect(r.usage).toEqual({ prompt_tokens: want.prompt_tokens, completion_tokens: want.completion_tokens, total_tokens: want.prompt_tokens + want.completion_tokens });
    expect(r.choices[0]!.finish_reason).toBe(want.finish_reason === 'length' ? 'length' : 'stop');
  });

  it('streams the same text through the openai client', async () => {
    const whole = await client.completions.create({ model: 'completions', prompt: 'def add(a, b):', max_tokens: 16, temperature: 0 });
    const stream = await client.completions.create({ model: 'completions', prompt: 'def add(a, b):', max_tokens: 16, temperature: 0, stream: true });
    let text = '';
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      text += c.choices[0]?.text ?? '';
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(chunks).toBeGreaterThan(2);
  });

  it('fills in the middle with suffix, as Triton does', async () => {
    const want = await direct({ text_input: 'def f(x):\n    ', suffix: '\n    return y\n', max_tokens: 10, top_k: 1 });
    const r = await client.completions.create({ model: 'completions', prompt: 'def f(x):\n    ', suffix: '\n    return y\n', max_tokens: 10, temperature: 0 });
    expect(r.choices[0]!.text).toBe(want.text_output);
    expect(r.usage!.prompt_tokens).toBe(want.prompt_tokens);
  });

  it('stops before a stop sequence taken from the greedy completion', async () => {
    const full = (await client.completions.create({ model: 'completions', prompt: 'import os\n', max_tokens: 24, temperature: 0 })).choices[0]!.text;
    // A stop of two characters from the middle of the text: the completion ends just before its first occurrence.
    const at = Math.max(1, Math.floor(full.length / 2));
    const stop = full.slice(at, at + 2);
    expect(stop.length).toBe(2);
    const r = await client.completions.create({ model: 'completions', prompt: 'import os\n', max_tokens: 24, temperature: 0, stop: [stop] });
    expect(r.choices[0]!.text).toBe(full.slice(0, full.indexOf(stop)));
    expect(r.choices[0]!.finish_reason).toBe('stop');
  });

  it('gives n sampled choices with seeds seed+i: the same seed gives the same choices again', async () => {
    const a = await client.completions.create({ model: 'completions', prompt: 'x = ', max_tokens: 8, temperature: 1, n: 2, seed: 42 });
    const b = await client.completions.create({ model: 'completions', prompt: 'x = ', max_tokens: 8, temperature: 1, n: 2, seed: 42 });
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
    const one = await client.completions.create({ model: 'completions', prompt: 'x = ', max_tokens: 8, temperature: 1, seed: 43 });
    expect(one.choices[0]!.text).toBe(a.choices[1]!.text);
  });
});
