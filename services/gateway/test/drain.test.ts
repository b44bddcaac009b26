/** A rolling update's edges: the gateway draining on its way out, and an upstream closing connections on its way out. */
import { afterEach, describe, expect, it } from 'vitest';
import { keyFile, post, start, type Harness } from './support/harness.ts';

const KEY = 'sk-drain-test-key-0001';
const body = { model: 'completions', prompt: 'x', max_tokens: 2, temperature: 0 };
const auth = { authorization: `Bearer ${KEY}` };
let h: Harness | undefined;
afterEach(async () => {
  await h?.close().catch(() => undefined);
  h = undefined;
});

describe('drain', () => {
  it('answers every request while it drains, closing each connection, says 503 on /readyz, then stops listening', async () => {
    h = await start({ config: { api_keys_file: keyFile([KEY]) } });
    const done = h.gateway.drain(600);
    const ready = await fetch(`${h.url}/readyz`);
    expect([ready.status, ((await ready.json()) as { status: string }).status]).toEqual([503, 'draining']);
    const r = await post(`${h.url}/v1/completions`, body, auth);
    expect(r.status).toBe(200);
    expect(r.headers.get('connection')).toBe('close');
    await done;
    await expect(fetch(`${h.url}/healthz`)).rejects.toThrow();
  });
});

describe('an upstream that closes connections without answering', () => {
  it('is failed over to the other upstream (no error to the client) and taken out of the rotation', async () => {
    h = await start({ fixtures: [{ name: 'stable', weight: 1 }, { name: 'canary', weight: 1 }], config: { api_keys_file: keyFile(Array.from({ length: 40 }, (_, i) => `sk-drain-${i.toString().padStart(4, '0')}-key`)) } });
    h.fixtures[1]!.cut = true;
    const answers: string[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await post(`${h.url}/v1/completions`, body, { authorization: `Bearer sk-drain-${i.toString().padStart(4, '0')}-key` });
      answers.push(r.status === 200 ? String(r.headers.get('x-kiln-upstream')) : `HTTP ${r.status}`);
    }
    expect(new Set(answers)).toEqual(new Set(['stable']));
    // Some keys were the canary's (sticky routing at 50%): those requests reached it and were failed over.
    expect(h.fixtures[1]!.requests.length).toBeGreaterThan(0);
  });
});
