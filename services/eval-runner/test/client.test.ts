import { afterEach, describe, expect, it } from 'vitest';
import {
  createClient,
  cutAtStop,
  EndpointError,
  OpenAICompletionsClient,
  parseRetryAfter,
  TritonGenerateClient,
  type CreateClientOptions,
  type GenerateRequest,
  type RequestEvent,
  type RetryEvent,
} from '../src/client.ts';
import { startFixtureServer, type FixtureServer, type FixtureServerOptions } from './support/fixture-server.ts';

const servers: FixtureServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(opts: FixtureServerOptions = {}): Promise<FixtureServer> {
  const s = await startFixtureServer(opts);
  servers.push(s);
  return s;
}

/** Fast retries for tests: 1-2 ms backoff, 2 s timeout unless a test says otherwise. */
const fast = { backoff: { initialMs: 1, maxMs: 5 }, timeoutMs: 2000 } as const;

function client(kind: 'openai' | 'triton', server: FixtureServer, extra: Partial<CreateClientOptions> = {}) {
  return createClient({ kind, url: server.url, model: 'kiln-test', ...fast, ...extra } as CreateClientOptions);
}

const req = (over: Partial<GenerateRequest> = {}): GenerateRequest => ({
  prompt: 'def add(a, b):\n',
  n: 1,
  temperature: 0.8,
  topP: 0.95,
  maxNewTokens: 128,
  stop: ['\ndef', '\nclass'],
  ...over,
});

const body = (server: FixtureServer, i = 0) => server.requests[i]!.body as Record<string, unknown>;

describe('cutAtStop', () => {
  it('cuts before the earliest stop sequence, not the first listed; ignores empty ones', () => {
    expect(cutAtStop('a\nclass B\ndef c', ['\ndef', '\nclass'])).toBe('a');
    expect(cutAtStop('abc', [])).toBe('abc');
    expect(cutAtStop('abc', [''])).toBe('abc');
    expect(cutAtStop('abc', ['c', 'x'])).toBe('ab');
    expect(cutAtStop('stop', ['stop'])).toBe('');
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds (fractional too), retry-after-ms, and HTTP dates', () => {
    expect(parseRetryAfter(new Headers({ 'retry-after': '2' }))).toBe(2000);
    expect(parseRetryAfter(new Headers({ 'retry-after': '0.25' }))).toBe(250);
    expect(parseRetryAfter(new Headers({ 'retry-after-ms': '40', 'retry-after': '9' }))).toBe(40);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(3000);
    expect(parseRetryAfter(new Headers({ 'retry-after': 'soon' }))).toBeNull();
    expect(parseRetryAfter(new Headers())).toBeNull();
  });
});

describe('OpenAICompletionsClient', () => {
  it('sends exactly the completions fields and returns n completions in index order', async () => {
    const server = await serve({ complete: (_p, { index }) => `    return a + b  # ${index}\n`, shuffleChoices: true });
    const c = client('openai', server);
    expect(c).toBeInstanceOf(OpenAICompletionsClient);
    const out = await c.generate(req({ n: 3 }));
    expect(out).toEqual(['    return a + b  # 0\n', '    return a + b  # 1\n', '    return a + b  # 2\n']);
    expect(server.requests).toHaveLength(1);
    const r = server.requests[0]!;
    expect(r.method).toBe('POST');
    expect(r.path).toBe('/v1/completions');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers.authorization).toBeUndefined();
    expect(r.body).toStrictEqual({
      model: 'kiln-test',
      prompt: 'def add(a, b):\n',
      n: 3,
      temperature: 0.8,
      top_p: 0.95,
      max_tokens: 128,
      stop: ['\ndef', '\nclass'],
    });
  });

  it('leaves `stop` out when there are none, and does not double /v1 when the URL has it', async () => {
    const server = await serve();
    const c = createClient({ kind: 'openai', url: `${server.url}/v1/`, model: 'm', ...fast });
    await c.generate(req({ stop: [] }));
    expect(server.requests[0]!.path).toBe('/v1/completions');
    expect(body(server)).not.toHaveProperty('stop');
  });

  it('cuts at stop sequences client-side when the server ignores them', async () => {
    const server = await serve({ complete: () => '    return a + b\n\ndef sub(a, b):\n    return a - b\n' });
    const out = await client('openai', server).generate(req({ n: 2 }));
    expect(out).toEqual(['    return a + b\n', '    return a + b\n']);
  });

  it('sends only the first 4 of more than 4 stop sequences and cuts at all of them', async () => {
    const server = await serve({ complete: () => '    x = 1\n    print(x)\n# done\n' });
    const stop = ['\ndef', '\nclass', '\nif', '\n#', '\n    print'];
    const out = await client('openai', server).generate(req({ stop }));
    expect(body(server)['stop']).toEqual(['\ndef', '\nclass', '\nif', '\n#']);
    // '\n    print' (the 5th, not sent) comes first in the text: cut there.
    expect(out).toEqual(['    x = 1']);
  });

  it('agrees with a server that honours stops itself', async () => {
    const server = await serve({ complete: () => '    return 1\ndef g(): pass', serverStops: true });
    expect(await client('openai', server).generate(req())).toEqual(['    return 1']);
  });

  it('greedy with n > 1 sends n = 1 once and replicates the text', async () => {
    const server = await serve({ complete: () => '    return 0\n' });
    const out = await client('openai', server).generate(req({ n: 4, temperature: 0 }));
    expect(out).toEqual(Array(4).fill('    return 0\n'));
    expect(server.requests).toHaveLength(1);
    expect(body(server)).toMatchObject({ n: 1, temperature: 0 });
  });

  it('splits a large n into requests of at most maxNPerRequest', async () => {
    const server = await serve({ complete: (_p, { index }) => `${index}` });
    const c = createClient({ kind: 'openai', url: server.url, model: 'm', ...fast, maxNPerRequest: 4 });
    const out = await c.generate(req({ n: 10 }));
    expect(out).toHaveLength(10);
    expect(server.requests.map((r) => (r.body as { n: number }).n).sort()).toEqual([2, 4, 4]);
  });

  it('n = 0 sends nothing', async () => {
    const server = await serve();
    expect(await client('openai', server).generate(req({ n: 0 }))).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });

  it('fails a response with the wrong number of choices at once (malformed, not retried)', async () => {
    const server = await serve({ faults: [{ kind: 'wrong-shape' }] });
    const err = await client('openai', server).generate(req()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EndpointError);
    expect(err).toMatchObject({ code: 'malformed', retryable: false, status: 200 });
    expect((err as Error).message).toMatch(/no `choices` array/);
    expect(server.requests).toHaveLength(1);
  });
});

describe('TritonGenerateClient', () => {
  it('sends the TensorRT-LLM ensemble inputs at the top level, one request per sample, each with its own seed', async () => {
    const server = await serve({ complete: (_p, { index }) => `    return a + b  # ${index}\n` });
    const c = createClient({ kind: 'triton', url: server.url, model: 'ensemble', ...fast, seed: 100 });
    expect(c).toBeInstanceOf(TritonGenerateClient);
    const out = await c.generate(req({ n: 3 }));
    expect([...out].sort()).toEqual(['    return a + b  # 0\n', '    return a + b  # 1\n', '    return a + b  # 2\n']);
    expect(server.requests).toHaveLength(3);
    for (const r of server.requests) expect(r.path).toBe('/v2/models/ensemble/generate');
    const bodies = server.requests.map((r) => r.body as Record<string, unknown>).sort((a, b) => (a['random_seed'] as number) - (b['random_seed'] as number));
    expect(bodies[0]).toStrictEqual({
      text_input: 'def add(a, b):\n',
      max_tokens: 128,
      temperature: 0.8,
      top_p: 0.95,
      random_seed: 100,
      stop_words: ['\ndef', '\nclass'],
      bad_words: '',
    });
    expect(bodies.map((b) => b['random_seed'])).toEqual([100, 101, 102]);
  });

  it('without a seed option, samples still get distinct seeds', async () => {
    const server = await serve();
    await client('triton', server).generate(req({ n: 5 }));
    const seeds = new Set(server.requests.map((r) => (r.body as { random_seed: unknown }).random_seed));
    expect(seeds.size).toBe(5);
    for (const s of seeds) expect(Number.isSafeInteger(s)).toBe(true);
  });

  it('strips a leading copy of the prompt, then cuts at the stop (prompt stops do not count)', async () => {
    // The prompt itself contains '\ndef'; only the continuation is cut.
    const prompt = 'import math\ndef add(a, b):\n';
    const server = await serve({ echoPrompt: true, complete: () => '    return a + b\n\ndef other():\n' });
    const out = await client('triton', server).generate(req({ prompt, n: 2 }));
    expect(out).toEqual(['    return a + b\n', '    return a + b\n']);
    expect((server.requests[0]!.body as { text_input: string }).text_input).toBe(prompt);
  });

  it('leaves output without the prompt alone, and cuts the stop word TensorRT-LLM keeps', async () => {
    const server = await serve({ echoPrompt: false, serverStops: true, complete: () => '    return 1\ndef g(): pass' });
    expect(await client('triton', server).generate(req())).toEqual(['    return 1']);
  });

  it('greedy sends one request with top_k 1 (no temperature, no seed) and replicates; model version and no-stop form', async () => {
    const server = await serve({ echoPrompt: false, complete: () => 'x' });
    const c = createClient({ kind: 'triton', url: server.url, model: 'my model', modelVersion: '2', ...fast });
    expect(await c.generate(req({ n: 3, temperature: 0, stop: [] }))).toEqual(['x', 'x', 'x']);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.path).toBe('/v2/models/my%20model/versions/2/generate');
    expect(body(server)).toStrictEqual({ text_input: 'def add(a, b):\n', max_tokens: 128, top_k: 1, stop_words: '', bad_words: '' });
  });

  it('sends all stop words (no limit of 4)', async () => {
    const server = await serve();
    const stop = ['\ndef', '\nclass', '\nif', '\n#', '\nprint'];
    await client('triton', server).generate(req({ stop }));
    expect(body(server)['stop_words']).toEqual(stop);
  });

  it('surfaces an unknown model (404) at once', async () => {
    const server = await serve({ models: ['ensemble'] });
    const err = await client('triton', server).generate(req()).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'EndpointError', status: 404, retryable: false, code: 'http' });
    expect((err as Error).message).toContain("Request for unknown model: 'kiln-test' is not found");
    expect(server.requests).toHaveLength(1);
  });
});

describe('retries, timeouts, errors (both APIs)', () => {
  for (const kind of ['openai', 'triton'] as const) {
    describe(kind, () => {
      it('retries 503 then succeeds, reporting each request and retry', async () => {
        const server = await serve({ failFirst: { count: 2, status: 503 } });
        const requests: RequestEvent[] = [];
        const retries: RetryEvent[] = [];
        const c = client(kind, server, { onRequest: (e) => requests.push(e), onRetry: (e) => retries.push(e) });
        expect(await c.generate(req())).toHaveLength(1);
        expect(server.requests.map((r) => r.status)).toEqual([503, 503, 200]);
        expect(requests.map((e) => e.attempt)).toEqual([1, 2, 3]);
        expect(retries.map((e) => [e.attempt, e.error.status, e.error.retryable])).toEqual([
          [1, 503, true],
          [2, 503, true],
        ]);
        expect(retries[0]!.delayMs).toBeLessThanOrEqual(5);
        expect(retries[0]!.url).toBe(requests[0]!.url);
      });

      it('retries 429 and 500 too, and an unparseable 200 body', async () => {
        const server = await serve({ faults: [{ kind: 'status', status: 429 }, { kind: 'status', status: 500 }, { kind: 'malformed' }] });
        expect(await client(kind, server).generate(req())).toHaveLength(1);
        expect(server.requests).toHaveLength(4);
      });

      it('honours Retry-After over its own (tiny) backoff', async () => {
        const server = await serve({ failFirst: { count: 1, status: 429, retryAfter: '0.3' } });
        const retries: RetryEvent[] = [];
        const t0 = Date.now();
        await client(kind, server, { onRetry: (e) => retries.push(e) }).generate(req());
        const gap = server.requests[1]!.receivedAt - server.requests[0]!.receivedAt;
        expect(retries[0]!.delayMs).toBe(300);
        expect(gap).toBeGreaterThanOrEqual(280);
        expect(Date.now() - t0).toBeLessThan(2000);
      });

      it('caps Retry-After at maxRetryAfterMs', async () => {
        const server = await serve({ failFirst: { count: 1, status: 503, retryAfter: 120 } });
        const retries: RetryEvent[] = [];
        await client(kind, server, { maxRetryAfterMs: 20, onRetry: (e) => retries.push(e) }).generate(req());
        expect(retries[0]!.delayMs).toBe(20);
      });

      it('does not retry a 400, and says why with the status and the server text', async () => {
        const server = await serve({ failFirst: { count: 1, status: 400, body: 'prompt is too long: 9000 tokens > 8192' } });
        const retries: RetryEvent[] = [];
        const err = await client(kind, server, { onRetry: (e) => retries.push(e) })
          .generate(req())
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(EndpointError);
        expect(err).toMatchObject({ status: 400, retryable: false, code: 'http', attempts: 1 });
        expect((err as Error).message).toMatch(/HTTP 400/);
        expect((err as Error).message).toContain('prompt is too long: 9000 tokens > 8192');
        expect(retries).toHaveLength(0);
        expect(server.requests).toHaveLength(1);
      });

      it('truncates a long server error text', async () => {
        const server = await serve({ failFirst: { count: 1, status: 422, body: 'x'.repeat(5000) } });
        const err = (await client(kind, server).generate(req()).catch((e: unknown) => e)) as Error;
        expect(err.message.length).toBeLessThan(800);
        expect(err.message).toMatch(/more chars/);
      });

      it('a hanging response times out, is retried, and fails after the retry budget', async () => {
        const server = await serve({ hangFirst: 10 });
        const retries: RetryEvent[] = [];
        const t0 = Date.now();
        const err = await client(kind, server, { timeoutMs: 100, maxRetries: 2, onRetry: (e) => retries.push(e) })
          .generate(req())
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(EndpointError);
        expect(err).toMatchObject({ code: 'timeout', retryable: true, status: null, attempts: 3 });
        expect((err as Error).message).toMatch(/no complete response within 100 ms .*gave up after 3 attempts/);
        expect(retries.map((e) => e.error.code)).toEqual(['timeout', 'timeout']);
        expect(server.requests).toHaveLength(3);
        expect(Date.now() - t0).toBeLessThan(2000);
        // The client dropped each hung connection.
        await expect.poll(() => server.inFlight).toBe(0);
      });

      it('a timeout then success recovers', async () => {
        const server = await serve({ hangFirst: 1 });
        expect(await client(kind, server, { timeoutMs: 100 }).generate(req())).toHaveLength(1);
        expect(server.requests).toHaveLength(2);
      });

      it('the timeout covers a body that stalls after the headers', async () => {
        const server = await serve({ faults: [{ kind: 'stall-body' }] });
        const retries: RetryEvent[] = [];
        expect(await client(kind, server, { timeoutMs: 100, onRetry: (e) => retries.push(e) }).generate(req())).toHaveLength(1);
        expect(retries.map((e) => e.error.code)).toEqual(['timeout']);
      });

      it('a refused connection is a retryable network error', async () => {
        const server = await serve();
        const url = server.url;
        await server.close();
        const err = await createClient({ kind, url, model: 'm', ...fast, maxRetries: 1 } as CreateClientOptions)
          .generate(req())
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'network', retryable: true, status: null, attempts: 2 });
        expect((err as Error).message).toMatch(/ECONNREFUSED/);
      });

      it('bounds requests in flight across concurrent calls', async () => {
        const server = await serve({ latencyMs: 30 });
        const c = client(kind, server, { maxConcurrency: 3 });
        // OpenAI: 12 separate calls; Triton: 3 calls of n = 4 (12 requests).
        const calls =
          kind === 'openai'
            ? Array.from({ length: 12 }, (_, i) => c.generate(req({ prompt: `p${i}` })))
            : Array.from({ length: 3 }, (_, i) => c.generate(req({ prompt: `p${i}`, n: 4 })));
        await Promise.all(calls);
        expect(server.requests).toHaveLength(12);
        expect(server.maxInFlight).toBe(3);
      });

      it('an aborted call stops at once and is not retried', async () => {
        const server = await serve({ hangFirst: 5 });
        const ctl = new AbortController();
        const p = client(kind, server, { timeoutMs: 5000 }).generate(req({ signal: ctl.signal }));
        await expect.poll(() => server.requests.length).toBe(1);
        ctl.abort(new Error('user pressed ^C'));
        const err = await p.catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'aborted', retryable: false });
        expect((err as Error).message).toContain('user pressed ^C');
        expect(server.requests).toHaveLength(1);
      });

      it('sends the API key as a bearer token and never puts it in an error', async () => {
        const key = 'sk-kiln-test-0123456789abcdef';
        const server = await serve({ apiKey: key });
        const env = { KILN_TEST_KEY: key };
        const c = client(kind, server, { apiKeyEnv: 'KILN_TEST_KEY', env });
        await c.generate(req());
        expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${key}`);
        expect(JSON.stringify(c)).not.toContain(key);

        // A server that rejects the key and echoes the Authorization header back in its error.
        const strict = await serve({ apiKey: 'sk-something-else', echoAuthInErrors: true });
        const err = (await client(kind, strict, { apiKeyEnv: 'KILN_TEST_KEY', env })
          .generate(req())
          .catch((e: unknown) => e)) as EndpointError;
        expect(err).toMatchObject({ status: 401, retryable: false });
        expect(err.message).toContain('Incorrect API key provided: Bearer [REDACTED]');
        expect(err.message).not.toContain(key);
        expect(String(err.stack)).not.toContain(key);

        // And through retries to the final error.
        const flaky = await serve({ faults: Array(5).fill({ kind: 'status', status: 503, body: `upstream said Bearer ${key}` }) });
        const err2 = (await client(kind, flaky, { apiKeyEnv: 'KILN_TEST_KEY', env, maxRetries: 1 })
          .generate(req())
          .catch((e: unknown) => e)) as EndpointError;
        expect(err2.message).toMatch(/gave up after 2 attempts/);
        expect(err2.message).not.toContain(key);
      });
    });
  }

  it('a missing API key variable fails at construction, naming the variable', () => {
    expect(() => createClient({ kind: 'openai', url: 'http://127.0.0.1:1', model: 'm', apiKeyEnv: 'KILN_NOPE', env: {} })).toThrow(
      /API key environment variable KILN_NOPE is not set/,
    );
  });

  it('rejects credentials in the URL and unknown kinds', () => {
    expect(() => createClient({ kind: 'openai', url: 'http://u:secret@127.0.0.1:1', model: 'm' })).toThrow(/not in the URL/);
    expect(() => createClient({ kind: 'tgi', url: 'http://127.0.0.1:1', model: 'm' } as unknown as CreateClientOptions)).toThrow(/unknown endpoint kind "tgi"/);
  });

  it('one failing sample of a Triton call aborts its siblings and fails the call', async () => {
    const server = await serve({ latencyMs: (r) => (r.index === 0 ? 0 : 500), failFirst: { count: 1, status: 400, body: 'bad' } });
    const t0 = Date.now();
    const err = await client('triton', server).generate(req({ n: 4 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400 });
    expect(Date.now() - t0).toBeLessThan(400);
  });
});
