/**
 * Test support, not part of the package's API (other projects' tests import it as
 * `@kiln/eval-runner/test-support`): a local model server that speaks an OpenAI-style `POST /v1/completions`
 * and Triton's generate extension `POST /v2/models/{model}[/versions/{v}]/generate` (TensorRT-LLM ensemble
 * conventions), records every request, counts requests in flight, and injects failures on demand.
 *
 *     const server = await startFixtureServer({ complete: (prompt, { index }) => `    return ${index}\n`, failFirst: { count: 2, status: 503 } });
 *     // … point a client at server.url …
 *     server.requests;     // what was sent, in arrival order
 *     server.maxInFlight;  // most requests open at once
 *     await server.close();
 *
 * Plain node:http, no dependencies. Listens on 127.0.0.1, port 0 (any free port) unless told otherwise.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FixtureApi = 'openai' | 'triton';

/** What a completion function is told besides the prompt. */
export interface CompletionContext {
  readonly api: FixtureApi;
  /**
   * OpenAI: the choice's index within the request (0…n-1). Triton: how many earlier requests had the same
   * prompt (0, 1, 2…), so that successive samples differ.
   */
  readonly index: number;
  /** Triton's `random_seed`, when sent. */
  readonly seed: number | undefined;
  readonly temperature: number | undefined;
  readonly request: RecordedRequest;
}

/** prompt → the model's continuation (without the prompt). */
export type CompleteFn = (prompt: string, ctx: CompletionContext) => string | Promise<string>;

/** One injected misbehaviour, applied to one request instead of a normal answer. */
export type Fault =
  /** Answer `status` with a JSON error body (`{"error": body}`) and, if given, a `Retry-After` header. */
  | { readonly kind: 'status'; readonly status: number; readonly retryAfter?: string | number; readonly body?: string }
  /** Read the request and never answer (the connection stays open until the client gives up or close()). */
  | { readonly kind: 'hang' }
  /** Send 200 headers and the first part of a body, then stall. */
  | { readonly kind: 'stall-body' }
  /** 200 with a truncated, unparseable JSON body. */
  | { readonly kind: 'malformed' }
  /** 200 with valid JSON that is not the API's response shape. */
  | { readonly kind: 'wrong-shape' };

export interface FixtureServerOptions {
  /** The model. Default: `` `    pass  # sample ${index}\n` ``. */
  readonly complete?: CompleteFn;
  /** The first `count` requests get HTTP `status` (default 503), with `Retry-After: retryAfter` if given. */
  readonly failFirst?: { readonly count: number; readonly status?: number; readonly retryAfter?: string | number; readonly body?: string };
  /** The next this-many requests (after failFirst's) hang. */
  readonly hangFirst?: number;
  /** The next this-many requests (after hangFirst's) get a malformed 200 body. */
  readonly malformedFirst?: number;
  /**
   * Faults for the requests after those of failFirst, hangFirst and malformedFirst, one per request in arrival
   * order; null or undefined entries are answered normally.
   */
  readonly faults?: readonly (Fault | null | undefined)[];
  /** Delay before every answer (normal or injected status), in ms, or per request. Default 0. */
  readonly latencyMs?: number | ((req: RecordedRequest) => number);
  /** Triton: put the prompt before the completion in `text_output` (TensorRT-LLM's default). Default true. */
  readonly echoPrompt?: boolean;
  /**
   * Cut completions at the request's stop sequences, as real servers do (OpenAI: before the stop; Triton:
   * after it, TensorRT-LLM keeps the stop word). Default false: the server ignores stops, so the client must cut.
   */
  readonly serverStops?: boolean;
  /** OpenAI: list choices in reverse index order (clients must place them by `index`). Default false. */
  readonly shuffleChoices?: boolean;
  /** Require `Authorization: Bearer <apiKey>`; anything else is answered 401. */
  readonly apiKey?: string;
  /** Put the received Authorization header in the 401's message (as some servers do). Default false. */
  readonly echoAuthInErrors?: boolean;
  /** Model names served (others get 404). Default: any. */
  readonly models?: readonly string[];
  readonly host?: string;
  readonly port?: number;
}

export interface RecordedRequest {
  /** 0-based, in arrival order. */
  readonly index: number;
  readonly method: string;
  /** Path and query, as received. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body, or the raw text when it is not JSON ('' when empty). */
  readonly body: unknown;
  /** Which API the route belongs to; null for unknown routes. */
  readonly api: FixtureApi | null;
  /** The injected fault's kind, if one was applied. */
  fault: Fault['kind'] | null;
  /** The status answered; null while unanswered (or never, for a hang). */
  status: number | null;
  readonly receivedAt: number;
}

export interface FixtureServer {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Requests received and not yet answered (or dropped) now. */
  readonly inFlight: number;
  /** The most requests in flight at once so far. */
  readonly maxInFlight: number;
  /** Stops listening and drops every open connection, hung ones included. */
  close(): Promise<void>;
}

const defaultComplete: CompleteFn = (_prompt, { index }) => `    pass  # sample ${index}\n`;

export async function startFixtureServer(opts: FixtureServerOptions = {}): Promise<FixtureServer> {
  const queue: (Fault | null | undefined)[] = [];
  if (opts.failFirst) {
    const f = opts.failFirst;
    for (let i = 0; i < f.count; i++) {
      queue.push({ kind: 'status', status: f.status ?? 503, ...(f.retryAfter === undefined ? {} : { retryAfter: f.retryAfter }), ...(f.body === undefined ? {} : { body: f.body }) });
    }
  }
  for (let i = 0; i < (opts.hangFirst ?? 0); i++) queue.push({ kind: 'hang' });
  for (let i = 0; i < (opts.malformedFirst ?? 0); i++) queue.push({ kind: 'malformed' });
  queue.push(...(opts.faults ?? []));

  const complete = opts.complete ?? defaultComplete;
  const echoPrompt = opts.echoPrompt ?? true;
  const requests: RecordedRequest[] = [];
  const tritonSeen = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;

  const server = createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let done = false;
    res.on('close', () => {
      if (!done) {
        done = true;
        inFlight--;
      }
    });
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) send(res, 500, { error: `fixture server: ${(e as Error).message}` });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = raw;
    try {
      body = raw === '' ? '' : (JSON.parse(raw) as unknown);
    } catch {
      // recorded as text
    }
    const path = req.url ?? '/';
    const pathname = path.split('?')[0]!;
    const tritonMatch = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/generate$/.exec(pathname);
    const api: FixtureApi | null = pathname === '/v1/completions' ? 'openai' : tritonMatch ? 'triton' : null;
    const rec: RecordedRequest = {
      index: requests.length,
      method: req.method ?? 'GET',
      path,
      headers: req.headers,
      body,
      api,
      fault: null,
      status: null,
      receivedAt: Date.now(),
    };
    requests.push(rec);
    const fault = queue.length > 0 ? queue.shift() : undefined;

    if (fault?.kind === 'hang') {
      rec.fault = 'hang';
      return;
    }
    const latency = typeof opts.latencyMs === 'function' ? opts.latencyMs(rec) : (opts.latencyMs ?? 0);
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    if (res.destroyed) return;
    const reply = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      send(res, status, json, headers);
    };

    if (fault) {
      rec.fault = fault.kind;
      switch (fault.kind) {
        case 'status':
          reply(fault.status, { error: fault.body ?? `injected failure (HTTP ${fault.status})` }, fault.retryAfter === undefined ? {} : { 'retry-after': String(fault.retryAfter) });
          return;
        case 'stall-body':
          rec.status = 200;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"choices": [{"text": "');
          return;
        case 'malformed':
          rec.status = 200;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"choices": [{"text": "trunc');
          return;
        case 'wrong-shape':
          reply(200, { unexpected: true });
          return;
      }
    }

    // Health and listing routes, for CLIs that probe before they generate.
    if (req.method === 'GET' && (pathname === '/v2/health/ready' || pathname === '/health')) return reply(200, {});
    if (req.method === 'GET' && pathname === '/v1/models') {
      return reply(200, { object: 'list', data: (opts.models ?? ['fixture']).map((id) => ({ id, object: 'model', owned_by: 'kiln-fixture' })) });
    }
    if (api === null) return reply(404, { error: `no route for ${req.method} ${pathname}` });
    if (req.method !== 'POST') return reply(405, { error: `${req.method} not allowed on ${pathname}` });

    if (opts.apiKey !== undefined) {
      const auth = req.headers.authorization;
      if (auth !== `Bearer ${opts.apiKey}`) {
        const message = opts.echoAuthInErrors ? `Incorrect API key provided: ${auth ?? '(none)'}` : 'Incorrect API key provided';
        return reply(401, { error: { message, type: 'invalid_request_error', code: 'invalid_api_key' } });
      }
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply(400, { error: 'request body must be a JSON object' });
    const b = body as Record<string, unknown>;

    if (api === 'openai') {
      const err = checkOpenAI(b, opts.models);
      if (err) return reply(err.status, { error: { message: err.message, type: 'invalid_request_error' } });
      const n = (b['n'] as number | undefined) ?? 1;
      const stops = b['stop'] === undefined || b['stop'] === null ? [] : typeof b['stop'] === 'string' ? [b['stop']] : (b['stop'] as string[]);
      const prompt = b['prompt'] as string;
      const choices = [];
      for (let i = 0; i < n; i++) {
        let text = await complete(prompt, { api, index: i, seed: undefined, temperature: b['temperature'] as number | undefined, request: rec });
        let finish = 'length';
        if (opts.serverStops) {
          const at = firstStop(text, stops);
          if (at) {
            text = text.slice(0, at.index);
            finish = 'stop';
          }
        }
        choices.push({ text, index: i, logprobs: null, finish_reason: finish });
      }
      if (opts.shuffleChoices) choices.reverse();
      return reply(200, {
        id: `cmpl-fixture-${rec.index}`,
        object: 'text_completion',
        created: Math.floor(Date.now() / 1000),
        model: b['model'],
        choices,
        usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      });
    }

    // Triton generate
    const model = decodeURIComponent(tritonMatch![1]!);
    if (opts.models && !opts.models.includes(model)) return reply(404, { error: `Request for unknown model: '${model}' is not found` });
    const err = checkTriton(b);
    if (err) return reply(400, { error: err });
    const prompt = b['text_input'] as string;
    const index = tritonSeen.get(prompt) ?? 0;
    tritonSeen.set(prompt, index + 1);
    const seed = typeof b['random_seed'] === 'number' ? b['random_seed'] : undefined;
    let text = await complete(prompt, { api: 'triton', index, seed, temperature: b['temperature'] as number | undefined, request: rec });
    if (opts.serverStops) {
      const stops = typeof b['stop_words'] === 'string' ? (b['stop_words'] === '' ? [] : [b['stop_words']]) : ((b['stop_words'] as string[] | undefined) ?? []);
      const at = firstStop(text, stops);
      if (at) text = text.slice(0, at.index + at.stop.length);
    }
    return reply(200, {
      model_name: model,
      model_version: tritonMatch![2] ?? '1',
      sequence_id: 0,
      sequence_start: false,
      sequence_end: false,
      text_output: echoPrompt ? prompt + text : text,
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  return {
    url: `http://${host}:${addr.port}`,
    requests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function send(res: ServerResponse, status: number, json: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const text = JSON.stringify(json);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function firstStop(text: string, stops: readonly string[]): { index: number; stop: string } | null {
  let best: { index: number; stop: string } | null = null;
  for (const s of stops) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i !== -1 && (best === null || i < best.index)) best = { index: i, stop: s };
  }
  return best;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** OpenAI's checks that matter here, with its wording where it has one. */
function checkOpenAI(b: Record<string, unknown>, models: readonly string[] | undefined): { status: number; message: string } | null {
  if (typeof b['model'] !== 'string') return { status: 400, message: 'you must provide a model parameter' };
  if (models && !models.includes(b['model'])) return { status: 404, message: `The model \`${b['model']}\` does not exist` };
  if (typeof b['prompt'] !== 'string') return { status: 400, message: "'prompt' must be a string" };
  if (b['n'] !== undefined && (!isInt(b['n']) || b['n'] < 1 || b['n'] > 128)) return { status: 400, message: "'n' must be an integer in [1, 128]" };
  if (b['max_tokens'] !== undefined && (!isInt(b['max_tokens']) || b['max_tokens'] < 1)) return { status: 400, message: "'max_tokens' must be a positive integer" };
  if (b['temperature'] !== undefined && (!isNum(b['temperature']) || b['temperature'] < 0 || b['temperature'] > 2)) {
    return { status: 400, message: "'temperature' must be in [0, 2]" };
  }
  if (b['top_p'] !== undefined && (!isNum(b['top_p']) || b['top_p'] < 0 || b['top_p'] > 1)) return { status: 400, message: "'top_p' must be in [0, 1]" };
  const stop = b['stop'];
  if (stop !== undefined && stop !== null && typeof stop !== 'string') {
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string')) return { status: 400, message: "'stop' must be a string or an array of strings" };
    if (stop.length > 4) return { status: 400, message: `[${stop.map((s) => JSON.stringify(s)).join(', ')}] is too long - 'stop'` };
  }
  return null;
}

/** Triton generate: `text_input` required; `parameters` values scalar (the extension's rule); TRT-LLM inputs typed. */
function checkTriton(b: Record<string, unknown>): string | null {
  if (typeof b['text_input'] !== 'string') return "missing or non-string 'text_input'";
  const params = b['parameters'];
  if (params !== undefined) {
    if (typeof params !== 'object' || params === null || Array.isArray(params)) return "'parameters' must be an object";
    for (const [k, v] of Object.entries(params)) {
      if (!['string', 'number', 'boolean'].includes(typeof v)) return `parameter '${k}' must be a string, number or boolean`;
    }
  }
  if (!isInt(b['max_tokens']) || b['max_tokens'] < 1) return "input 'max_tokens' is required (a positive integer)";
  for (const k of ['stop_words', 'bad_words']) {
    const v = b[k];
    if (v !== undefined && typeof v !== 'string' && !(Array.isArray(v) && v.every((s) => typeof s === 'string'))) {
      return `input '${k}' must be a string or an array of strings`;
    }
  }
  for (const k of ['temperature', 'top_p', 'top_k', 'random_seed']) {
    if (b[k] !== undefined && !isNum(b[k])) return `input '${k}' must be a number`;
  }
  return null;
}
