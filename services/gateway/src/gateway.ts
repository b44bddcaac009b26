/**
 * The gateway (contract §4): an OpenAI-compatible completions API in front of Triton upstreams, with API keys,
 * per-key limits, sticky weighted canary routing over the ready upstreams, the feedback log, Prometheus metrics,
 * one structured log line per request, and the playground's static files.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ConfigError, type GatewayConfig } from './config.ts';
import { FeedbackError, FeedbackLog, parseFeedback } from './feedback.ts';
import { KeyStore } from './keys.ts';
import { estimateTokens, isRefusal, RateLimiter, type Reservation } from './limits.ts';
import { Metrics } from './metrics.ts';
import { ApiError, parseCompletionRequest, type CompletionRequest } from './openai.ts';
import { Router } from './router.ts';
import { TritonUpstream, UpstreamError, type TritonInputs, type TritonOutput } from './upstream.ts';

export interface GatewayOptions {
  /** Where log lines go (pino's JSON lines). Default standard output. */
  readonly logStream?: Writable;
  /** The playground's folder. Default src/playground/ beside this file. */
  readonly playgroundDir?: string;
  /** How often the key file is stat'ed (ms). Default 1000. */
  readonly keyPollMs?: number;
}

/** What the request's log line and metrics need, filled in as the request goes. */
interface RequestState {
  keyId: string | null;
  upstream: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  prompt?: string;
  completion?: string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    kiln: RequestState;
  }
}

/** The Content-Security-Policy of the playground: its own files only, no inline script or style. */
export const PLAYGROUND_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export class Gateway {
  readonly app: FastifyInstance;
  readonly config: GatewayConfig;
  readonly router: Router;
  readonly metrics: Metrics;
  readonly keys: KeyStore | null;
  readonly limiter: RateLimiter;
  readonly feedback: FeedbackLog | null;
  private readonly started = Math.floor(Date.now() / 1000);
  private readonly playgroundDir: string;
  private readonly logDest: ReturnType<typeof pino.destination> | undefined;

  private constructor(config: GatewayConfig, o: GatewayOptions, keys: KeyStore | null, feedback: FeedbackLog | null, metrics: Metrics) {
    this.config = config;
    this.metrics = metrics;
    this.keys = keys;
    this.feedback = feedback;
    this.playgroundDir = o.playgroundDir ?? fileURLToPath(new URL('./playground/', import.meta.url));
    this.limiter = new RateLimiter({ requestsPerMinute: config.limits.requestsPerMinute, tokensPerMinute: config.limits.tokensPerMinute });
    // Standard output through a buffer flushed every 4 KiB and at least once a second (and at close): one write
    // syscall per request line was a tenth of the gateway's CPU per request.
    const dest = o.logStream ? undefined : pino.destination({ dest: 1, sync: false, minLength: 4096 });
    this.logDest = dest;
    this.app = Fastify({
      logger: { level: config.log.level, stream: o.logStream ?? dest! },
      // One line per request, written by the onResponse hook below, instead of fastify's two.
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit: config.limits.maxBodyBytes,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      keepAliveTimeout: 65_000,
    });
    const log = this.app.log;
    this.router = new Router(
      config.upstreams.map((u) => new TritonUpstream(u)),
      {
        intervalMs: config.health.intervalMs,
        timeoutMs: config.health.timeoutMs,
        onChange: (name, ready) => {
          metrics.upstreamReady.set({ upstream: name }, ready ? 1 : 0);
          log[ready ? 'info' : 'warn']({ upstream: name, ready }, `upstream ${name} is ${ready ? 'ready' : 'not ready'}`);
        },
      },
    );
    for (const u of config.upstreams) metrics.upstreamReady.set({ upstream: u.name }, 0);
    this.routes();
  }

  /** Opens the key file and the feedback log, builds the server and polls the upstreams once. Call `listen` next. */
  static async create(config: GatewayConfig, o: GatewayOptions = {}): Promise<Gateway> {
    const metrics = new Metrics();
    // The key store logs through the gateway's logger, which exists only once the gateway does.
    let logKeys: (level: 'info' | 'warn', message: string) => void = () => undefined;
    const keys = config.apiKeysFile
      ? KeyStore.open({
          file: config.apiKeysFile,
          ...(o.keyPollMs !== undefined ? { pollMs: o.keyPollMs, rereadMs: Math.max(o.keyPollMs, 1000) } : {}),
          log: (level, message) => {
            if (level === 'info') metrics.keyReloads.inc();
            logKeys(level, message);
          },
        })
      : null;
    let feedback: FeedbackLog | null = null;
    try {
      feedback = config.feedback ? await FeedbackLog.open({ dir: config.feedback.dir, maxFileBytes: config.feedback.maxFileBytes }) : null;
    } catch (e) {
      keys?.close();
      throw new ConfigError((e as Error).message);
    }
    const g = new Gateway(config, o, keys, feedback, metrics);
    logKeys = (level, message) => g.app.log[level](message);
    if (keys) metrics.keyReloads.inc();
    await g.router.start();
    return g;
  }

  /** Starts serving; resolves to the base URL (with the real port when `port` is 0). */
  async listen(host: string, port: number): Promise<string> {
    await this.app.listen({ host, port });
    const addr = this.app.server.address();
    const real = typeof addr === 'object' && addr ? addr.port : port;
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `http://${shown}:${real}`;
  }

  /** Stops taking requests, lets those in flight end, and closes the upstream pools, the key watch and the feedback log. */
  async close(): Promise<void> {
    await this.app.close();
  }

  /** True once `drain` began: /readyz says 503 and every answer closes its connection. */
  draining = false;

  /**
   * A rolling update's way out (SIGTERM): for `ms` the gateway still answers every request, but /readyz says 503
   * (so it leaves its Service's endpoints) and each answer carries `Connection: close` (so no client reuses a
   * connection this pod is about to close); then it closes.
   */
  async drain(ms: number): Promise<void> {
    this.draining = true;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    await this.close();
  }

  private routes(): void {
    const app = this.app;
    const c = this.config;
    app.decorateRequest('kiln', null as unknown as RequestState);

    app.addHook('onRequest', async (req) => {
      req.kiln = { keyId: null, upstream: null, promptTokens: null, completionTokens: null };
      if (req.url.startsWith('/v1/')) this.authenticate(req);
    });

    app.addHook('onSend', async (_req, reply, payload) => {
      reply.header('x-content-type-options', 'nosniff');
      if (this.draining) reply.header('connection', 'close');
      return payload;
    });

    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      const seconds = reply.elapsedTime / 1000;
      this.metrics.requestDuration.observe({ route, status: String(reply.statusCode) }, seconds);
      if (route === '/metrics' || route === '/healthz' || route === '/readyz') return;
      const s = req.kiln;
      req.log.info(
        {
          method: req.method,
          route,
          status: reply.statusCode,
          latency_ms: Math.round(reply.elapsedTime * 100) / 100,
          key_id: s.keyId,
          upstream: s.upstream,
          prompt_tokens: s.promptTokens,
          completion_tokens: s.completionTokens,
          ...(c.log.prompts && s.prompt !== undefined ? { prompt: s.prompt, completion: s.completion } : {}),
        },
        'request',
      );
    });

    app.setErrorHandler(async (err: Error & { code?: string; statusCode?: number }, req, reply) => {
      let e: ApiError;
      if (err instanceof ApiError) e = err;
      else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new ApiError(413, `The request body is larger than this gateway's limit of ${c.limits.maxBodyBytes} bytes.`, { code: 'request_too_large' });
      else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') e = new ApiError(415, 'The request body must be JSON, sent with Content-Type: application/json.', { code: 'unsupported_media_type' });
      else if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') e = new ApiError(400, 'The request body is empty; send a JSON object.', { code: 'invalid_json' });
      else if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        e = new ApiError(400, `We could not parse the JSON body of your request: ${err.message.replace(/^Unexpected/, 'unexpected')}. Send a valid JSON object.`, { code: 'invalid_json' });
      } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) e = new ApiError(err.statusCode, err.message, { code: err.code ?? null });
      else {
        req.log.error({ err: { type: err.name, message: err.message, stack: err.stack } }, 'internal error');
        e = new ApiError(500, 'The gateway failed to handle the request; the error is in its log.', { code: 'internal_error' });
      }
      return this.sendError(reply, e);
    });

    app.setNotFoundHandler(async (req, reply) => this.sendError(reply, new ApiError(404, `There is no ${req.method} ${req.url.split('?')[0]} on this gateway; see /v1/completions, /v1/models and /v1/feedback.`, { code: 'not_found' })));

    app.post('/v1/completions', (req, reply) => this.completions(req, reply));

    app.get('/v1/models', async () => ({ object: 'list', data: this.modelIds().map((id) => this.modelObject(id)) }));
    app.get('/v1/models/:model', async (req) => {
      const id = (req.params as { model: string }).model;
      if (!this.modelIds().includes(id)) throw this.unknownModel(id);
      return this.modelObject(id);
    });

    app.post('/v1/feedback', async (req) => {
      if (!this.feedback) {
        throw new ApiError(404, 'Feedback is not enabled on this gateway: set "feedback": {"dir": …} in its config (kiln gateway --feedback-dir DIR).', { code: 'feedback_disabled' });
      }
      let input;
      try {
        input = parseFeedback(req.body);
      } catch (e) {
        if (e instanceof FeedbackError) throw new ApiError(400, e.message, { param: e.param, code: 'invalid_feedback' });
        throw e;
      }
      const { duplicate } = await this.feedback.append(input, req.kiln.keyId);
      this.metrics.feedback.inc({ outcome: input.outcome, duplicate: String(duplicate) });
      return { status: duplicate ? 'duplicate' : 'recorded' };
    });

    app.get('/metrics', async (_req, reply) => {
      reply.header('content-type', this.metrics.registry.contentType);
      return this.metrics.registry.metrics();
    });
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (_req, reply) => {
      const upstreams = Object.fromEntries(this.router.upstreams.map((u) => [u.name, this.router.isReady(u.name)]));
      if (this.draining || !this.router.anyReady) reply.code(503);
      return { status: this.draining ? 'draining' : this.router.anyReady ? 'ready' : 'not ready', upstreams };
    });

    app.get('/', (_req, reply) => this.playground('index.html', reply));
    app.get('/playground', async (_req, reply) => reply.redirect('/playground/', 308));
    app.get('/playground/*', (req, reply) => this.playground((req.params as { '*': string })['*'] || 'index.html', reply));

    if (this.logDest) {
      const flush = setInterval(() => this.logDest?.flush(), 1000);
      flush.unref();
      app.addHook('onClose', async () => {
        clearInterval(flush);
        this.logDest?.flushSync();
      });
    }
    app.addHook('onClose', async () => {
      this.keys?.close();
      this.limiter.close();
      await this.router.close();
      await this.feedback?.close();
    });
  }

  private sendError(reply: FastifyReply, e: ApiError): FastifyReply {
    this.metrics.errors.inc({ code: e.code ?? e.type });
    for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
    if (e.status === 401) reply.header('www-authenticate', 'Bearer');
    return reply.code(e.status).type('application/json; charset=utf-8').send(e.body());
  }

  /** Sets the request's key_id; a 401 when keys are checked and the request has no valid one. */
  private authenticate(req: FastifyRequest): void {
    if (!this.keys) return;
    const h = req.headers.authorization;
    const m = h === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m) {
      throw new ApiError(401, h === undefined ? "You didn't provide an API key. Send it in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY)." : 'The Authorization header must be "Bearer YOUR_KEY".', { code: 'invalid_api_key' });
    }
    const id = this.keys.verify(m[1]!);
    if (id === null) throw new ApiError(401, 'Incorrect API key provided (it is not, or no longer, one of this gateway\'s keys).', { code: 'invalid_api_key' });
    req.kiln.keyId = id;
  }

  private modelIds(): string[] {
    return [this.config.model, ...this.config.upstreams.map((u) => `${this.config.model}@${u.name}`)];
  }

  private modelObject(id: string) {
    return { id, object: 'model', created: this.started, owned_by: 'kiln' };
  }

  private unknownModel(model: string): ApiError {
    return new ApiError(400, `The model \`${model}\` does not exist on this gateway. It serves ${this.modelIds().map((m) => `\`${m}\``).join(', ')} (GET /v1/models lists them).`, { param: 'model', code: 'model_not_found' });
  }

  /** The upstream name a request's model pins, undefined for the canary-routed model; an ApiError for any other. */
  private pinnedOf(model: string): string | undefined {
    if (model === this.config.model) return undefined;
    const at = model.lastIndexOf('@');
    if (at > 0 && model.slice(0, at) === this.config.model && this.config.upstreams.some((u) => u.name === model.slice(at + 1))) return model.slice(at + 1);
    throw this.unknownModel(model);
  }

  private async completions(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const limits = this.config.limits;
    const r = parseCompletionRequest(req.body, limits);
    const pinned = this.pinnedOf(r.model);
    const state = req.kiln;
    if (this.config.log.prompts) state.prompt = r.prompt;
    const limitKey = state.keyId ?? `ip:${req.ip}`;
    const reserved = estimateTokens(r.prompt.length + (r.suffix?.length ?? 0)) + r.maxTokens * r.n;
    const taken = this.limiter.take(limitKey, reserved);
    if (isRefusal(taken)) {
      throw new ApiError(429, taken.message, { type: taken.limit === 'requests' ? 'requests' : 'tokens', code: 'rate_limit_exceeded', headers: taken.retryAfterS === null ? {} : { 'retry-after': String(taken.retryAfterS) } });
    }
    const stickyKey = state.keyId ?? `ip:${req.ip}`;
    let picked = this.router.pick(stickyKey, pinned);
    if ('error' in picked) {
      taken.settle(0);
      throw this.unavailable(picked.error, picked.message, pinned);
    }

    // The client going away, or the request's time running out, aborts the upstream calls.
    const controller = new AbortController();
    const signal = controller.signal;
    const timer = setTimeout(() => controller.abort(new DOMException('the request timed out', 'TimeoutError')), limits.requestTimeoutMs);
    let clientGone = false;
    reply.raw.on('close', () => {
      clearTimeout(timer);
      if (!reply.raw.writableFinished) {
        clientGone = true;
        controller.abort();
      }
    });
    const id = `cmpl-${completionIdSuffix()}`;
    const created = Math.floor(Date.now() / 1000);
    const calls = this.inputsOf(r);

    if (!r.stream) {
      let outputs: TritonOutput[];
      for (;;) {
        const u = picked.upstream;
        state.upstream = u.name;
        try {
          outputs = await Promise.all(calls.map((inputs) => u.generate(inputs, signal)));
          this.metrics.upstreamRequests.inc({ upstream: u.name, outcome: 'ok' });
          break;
        } catch (e) {
          const next = this.failover(e, u, stickyKey, pinned, taken);
          if (!next) throw this.upstreamError(e, taken);
          picked = next;
        }
      }
      const upstream = picked.upstream.name;
      const texts = outputs.map((o) => cutAtStop(o.text, r.stop));
      const choices = Array.from({ length: r.n }, (_, i) => {
        const o = outputs[calls.length === 1 ? 0 : i]!;
        const t = texts[calls.length === 1 ? 0 : i]!;
        return { index: i, text: (r.echo ? r.prompt : '') + t.text, logprobs: null, finish_reason: t.cut ? 'stop' : finishReason(o.finishReason) };
      });
      const usage = this.usageOf(r, outputs, calls.length === 1);
      this.account(state, upstream, usage, taken, choices.map((ch) => ch.text));
      this.feedback?.remember(id, { model: this.config.model, version: upstream, prompt: r.prompt, ...(r.suffix !== undefined ? { suffix: r.suffix } : {}), choices: choices.map((ch) => ch.text), created });
      reply.header('x-kiln-upstream', upstream);
      return reply.send({ id, object: 'text_completion', created, model: r.model, choices, usage });
    }

    // Streaming: the first event of every call is awaited before the 200 goes out, so an upstream that cannot be
    // reached or refuses the request still gets a proper error status (and a refused connection a failover).
    let streams: AsyncGenerator<TritonOutput>[];
    let firsts: IteratorResult<TritonOutput>[];
    for (;;) {
      const u = picked.upstream;
      state.upstream = u.name;
      streams = calls.map((inputs) => u.generateStream(inputs, signal));
      try {
        firsts = await Promise.all(streams.map((s) => s.next()));
        break;
      } catch (e) {
        await Promise.all(streams.map((s) => s.return(undefined).catch(() => undefined)));
        const next = this.failover(e, u, stickyKey, pinned, taken);
        if (!next) throw this.upstreamError(e, taken);
        picked = next;
      }
    }
    const upstream = picked.upstream.name;
    const out = new PassThrough();
    reply.header('x-kiln-upstream', upstream).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').header('x-accel-buffering', 'no');
    void reply.send(out);
    const write = (data: unknown) => out.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (index: number, text: string, finish: string | null) => ({ id, object: 'text_completion', created, model: r.model, choices: [{ text, index, logprobs: null, finish_reason: finish }], ...(r.includeUsage ? { usage: null } : {}) });
    const texts = Array.from({ length: r.n }, () => '');
    let firstSent = false;
    const ttft = () => {
      if (firstSent) return;
      firstSent = true;
      this.metrics.timeToFirstToken.observe({ upstream }, reply.elapsedTime / 1000);
    };
    if (r.echo) for (let i = 0; i < r.n; i++) write(chunk(i, r.prompt, null));
    const lasts: TritonOutput[] = [];
    const emit = (call: number, o: TritonOutput) => {
      // A greedy request is one call whose text every choice shares.
      const indices = calls.length === 1 ? Array.from({ length: r.n }, (_, i) => i) : [call];
      if (o.text !== '') ttft();
      for (const i of indices) {
        texts[i] += o.text;
        if (o.text !== '' || o.finishReason !== null) write(chunk(i, o.text, o.finishReason === null ? null : finishReason(o.finishReason)));
      }
      if (o.finishReason !== null) lasts[call] = o;
    };
    try {
      await Promise.all(
        streams.map(async (s, call) => {
          let first = firsts[call]!;
          while (!first.done) {
            emit(call, first.value);
            first = await s.next();
          }
        }),
      );
      this.metrics.upstreamRequests.inc({ upstream, outcome: 'ok' });
      const usage = this.usageOf(r, calls.map((_, i) => lasts[i] ?? { text: '', finishReason: null, promptTokens: null, completionTokens: null }), calls.length === 1);
      if (r.includeUsage) write({ id, object: 'text_completion', created, model: r.model, choices: [], usage });
      out.end('data: [DONE]\n\n');
      this.account(state, upstream, usage, taken, r.echo ? texts.map((t) => r.prompt + t) : texts);
      this.feedback?.remember(id, { model: this.config.model, version: upstream, prompt: r.prompt, ...(r.suffix !== undefined ? { suffix: r.suffix } : {}), choices: texts, created });
    } catch (e) {
      await Promise.all(streams.map((s) => s.return(undefined).catch(() => undefined)));
      const err = this.upstreamError(e, taken);
      this.metrics.errors.inc({ code: err.code ?? err.type });
      // The 200 is out: the error goes as an event in OpenAI's shape (the openai client raises it), and no [DONE].
      if (!out.writableEnded && !clientGone) out.end(`data: ${JSON.stringify(err.body())}\n\n`);
      else out.end();
      req.log.warn({ upstream, error: err.code }, `stream ended early: ${err.message}`);
    }
    return reply;
  }

  /** The Triton inputs of each upstream call: one per choice (seed + i), or one for a greedy request. */
  private inputsOf(r: CompletionRequest): TritonInputs[] {
    const base = { text_input: r.prompt, ...(r.suffix !== undefined ? { suffix: r.suffix } : {}), max_tokens: r.maxTokens, stop_words: r.stop.length ? r.stop : ('' as const), bad_words: '' as const };
    // Greedy: top_k 1 and no temperature (some runtimes divide by it); n identical answers need one call.
    if (r.temperature === 0) return [{ ...base, top_k: 1 }];
    return Array.from({ length: r.n }, (_, i) => ({ ...base, temperature: r.temperature, top_p: r.topP, random_seed: r.seed === undefined ? randomInt(0, 2 ** 47) : r.seed + i }));
  }

  private usageOf(r: CompletionRequest, outputs: readonly TritonOutput[], shared: boolean) {
    const prompt = outputs[0]?.promptTokens ?? estimateTokens(r.prompt.length + (r.suffix?.length ?? 0));
    const each = outputs.map((o) => o.completionTokens ?? 0);
    const completion = shared ? (each[0] ?? 0) * r.n : each.reduce((a, b) => a + b, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  private account(state: RequestState, upstream: string, usage: { prompt_tokens: number; completion_tokens: number }, taken: Reservation, texts: string[]): void {
    state.promptTokens = usage.prompt_tokens;
    state.completionTokens = usage.completion_tokens;
    if (this.config.log.prompts) state.completion = texts;
    this.metrics.promptTokens.inc({ upstream }, usage.prompt_tokens);
    this.metrics.completionTokens.inc({ upstream }, usage.completion_tokens);
    taken.settle(usage.prompt_tokens + usage.completion_tokens);
  }

  /** After a refused connection to an unpinned request's upstream: that upstream is marked down and another picked. */
  private failover(e: unknown, u: TritonUpstream, key: string, pinned: string | undefined, _taken: Reservation) {
    if (!(e instanceof UpstreamError) || e.kind !== 'connect') return null;
    this.metrics.upstreamRequests.inc({ upstream: u.name, outcome: 'connect' });
    this.router.markDown(u.name);
    if (pinned !== undefined) return null;
    const next = this.router.pick(key, undefined, u.name);
    return 'error' in next ? null : next;
  }

  private upstreamError(e: unknown, taken: Reservation): ApiError {
    taken.settle(0);
    if (!(e instanceof UpstreamError)) return e instanceof ApiError ? e : new ApiError(502, `The upstream call failed: ${(e as Error).message}`, { code: 'upstream_error' });
    if (e.kind !== 'connect') this.metrics.upstreamRequests.inc({ upstream: e.upstream, outcome: e.kind });
    switch (e.kind) {
      case 'timeout':
        return new ApiError(504, `The model server did not answer within ${this.config.limits.requestTimeoutMs} ms; the request was cancelled. Retry, or ask for fewer max_tokens.`, { code: 'timeout' });
      case 'rejected':
        return new ApiError(400, `The model server rejected the request: ${e.message}`, { code: 'upstream_rejected_request' });
      case 'aborted':
        return new ApiError(499, 'The client closed the request.', { code: 'client_closed_request' });
      case 'connect':
        return new ApiError(502, `The model server cannot be reached: ${e.message}. Retry shortly.`, { code: 'upstream_unreachable' });
      default:
        return new ApiError(502, `The model server failed: ${e.message}`, { code: 'upstream_error' });
    }
  }

  private unavailable(kind: 'unknown_upstream' | 'not_ready' | 'none_ready', message: string, pinned: string | undefined): ApiError {
    const what = pinned !== undefined ? `The pinned version \`${this.config.model}@${pinned}\` is not available: ${message}.` : `No model server is ready to take the request (${message}).`;
    return new ApiError(503, `${what} Retry shortly.`, { code: 'model_unavailable', headers: { 'retry-after': '2' } });
  }

  private async playground(path: string, reply: FastifyReply): Promise<FastifyReply> {
    reply.header('content-security-policy', PLAYGROUND_CSP).header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY');
    const root = this.playgroundDir;
    let file: string;
    try {
      file = await realpath(join(root, path));
      const base = await realpath(root);
      if (!file.startsWith(base + sep)) throw new Error('outside');
      const body = await readFile(file);
      return reply.type(CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream').header('cache-control', 'no-cache').send(body);
    } catch {
      return this.sendError(reply, new ApiError(404, path === 'index.html' ? 'The playground is not installed in this gateway (no src/playground/index.html).' : `There is no playground file ${path}.`, { code: 'not_found' }));
    }
  }
}

// Completion ids from a pool of random bytes, refilled 4 KiB at a time: one RNG call per 341 ids, not per request.
let idPool = Buffer.alloc(0);
let idAt = 0;
function completionIdSuffix(): string {
  if (idAt + 12 > idPool.length) {
    idPool = randomBytes(4092);
    idAt = 0;
  }
  idAt += 12;
  return idPool.toString('base64url', idAt - 12, idAt);
}

/** Triton's finish reasons in OpenAI's words: `length` stays, `stop` and `eos` (the model ended) are `stop`. */
export function finishReason(r: string | null): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop';
}

/** The text cut before its first stop sequence (a backend that keeps the stop word, as TensorRT-LLM does). */
export function cutAtStop(text: string, stops: readonly string[]): { text: string; cut: boolean } {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at < 0 ? { text, cut: false } : { text: text.slice(0, at), cut: true };
}
