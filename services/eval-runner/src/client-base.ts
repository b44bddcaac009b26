/**
 * What every model endpoint client shares: the request shape, client-side stop cutting, the error type, a bound
 * on in-flight requests, and one HTTP POST with a per-attempt timeout and retries (exponential backoff with
 * jitter; `Retry-After` honoured) on network errors, timeouts, 429 and 5xx. Other 4xx fail at once.
 *
 * Only Node's built-in `fetch` is used.
 */

/** One prompt, n completions. */
export interface GenerateRequest {
  readonly prompt: string;
  /** How many completions of this prompt. 0 gives []. */
  readonly n: number;
  /** 0 is greedy decoding (see each client for what it sends). */
  readonly temperature: number;
  readonly topP: number;
  readonly maxNewTokens: number;
  /** Each completion is cut at the first of these; the stop sequence itself is not kept. */
  readonly stop: readonly string[];
  /** Aborts the whole call: waiting for a slot, requests in flight, backoff sleeps. Never retried. */
  readonly signal?: AbortSignal;
}

export interface CompletionClient {
  /** n completions of `req.prompt`, in order, each already cut at the first stop sequence. */
  generate(req: GenerateRequest): Promise<string[]>;
}

/** What went wrong, for callers that branch on it (the CLI's summary, retry accounting). */
export type EndpointErrorCode =
  /** The server answered with a non-2xx status. */
  | 'http'
  /** No HTTP answer: connection refused or reset, DNS, TLS. */
  | 'network'
  /** No complete answer within `timeoutMs`. */
  | 'timeout'
  /** A 2xx answer whose body is not what the API promises. */
  | 'malformed'
  /** The caller's signal aborted the call. */
  | 'aborted'
  /** The client is misconfigured (e.g. the API key's environment variable is unset). */
  | 'config';

/**
 * Every failure of a client call. Messages carry the endpoint (without credentials), the HTTP status and the
 * server's error text (truncated) where there is one, and never the API key.
 */
export class EndpointError extends Error {
  readonly code: EndpointErrorCode;
  /** The HTTP status, or null when there was no HTTP answer (network error, timeout, abort). */
  readonly status: number | null;
  /** Whether trying again could succeed (timeouts, network errors, 429, 5xx, unparseable bodies). */
  readonly retryable: boolean;
  /** Attempts made before this error was thrown (1 when it was not retried). */
  readonly attempts: number;

  constructor(
    message: string,
    fields: { code: EndpointErrorCode; status?: number | null; retryable: boolean; attempts?: number; cause?: unknown },
  ) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'EndpointError';
    this.code = fields.code;
    this.status = fields.status ?? null;
    this.retryable = fields.retryable;
    this.attempts = fields.attempts ?? 1;
  }
}

/** Told when an HTTP request is about to be sent (after a concurrency slot was taken). */
export interface RequestEvent {
  readonly url: string;
  /** 1 for the first try, 2 for the first retry… */
  readonly attempt: number;
  /** Completions this request asks for. */
  readonly n: number;
}

/** Told when a failed attempt will be retried, before sleeping `delayMs`. */
export interface RetryEvent {
  readonly url: string;
  /** The attempt that failed (1-based). */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: EndpointError;
}

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. Default 500 ms. */
  readonly initialMs?: number;
  /** Growth per retry. Default 2. */
  readonly factor?: number;
  /** Upper bound on one delay. Default 30 s. */
  readonly maxMs?: number;
  /**
   * Fraction of each delay that is random: 0 is none; the default 0.5 gives a delay uniformly in [d/2, d].
   */
  readonly jitter?: number;
}

/** Options every client takes. */
export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8000`. */
  readonly url: string;
  /** The model name (OpenAI's `model`, Triton's `{model}` path segment). */
  readonly model: string;
  /**
   * Name of the environment variable that holds the API key, sent as `Authorization: Bearer <key>`. The key is
   * read once, at construction; it is never logged and never included in an error.
   */
  readonly apiKeyEnv?: string;
  /** Where `apiKeyEnv` is looked up. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Per-attempt limit on one HTTP request, headers and body. Default 60 000 ms. */
  readonly timeoutMs?: number;
  /** Retries after the first attempt (so `maxRetries + 1` attempts at most). Default 4. */
  readonly maxRetries?: number;
  readonly backoff?: BackoffOptions;
  /** Longest `Retry-After` obeyed; longer values are cut to this. Default 60 000 ms. */
  readonly maxRetryAfterMs?: number;
  /** Bound on HTTP requests in flight at once, shared by all calls of one client. Default 8. */
  readonly maxConcurrency?: number;
  readonly onRequest?: (e: RequestEvent) => void;
  readonly onRetry?: (e: RetryEvent) => void;
  /** Source of randomness for jitter (tests). Default Math.random. */
  readonly random?: () => number;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_RETRIES = 4;
export const DEFAULT_MAX_CONCURRENCY = 8;
const DEFAULT_MAX_RETRY_AFTER_MS = 60_000;
/** How much of a server's error text goes into an error message. */
const ERROR_TEXT_MAX = 500;

/**
 * `text` cut before the earliest occurrence of any stop sequence (empty sequences are ignored); `text` itself
 * when none occurs.
 */
export function cutAtStop(text: string, stop: readonly string[]): string {
  let end = text.length;
  for (const s of stop) {
    if (s.length === 0) continue;
    const i = text.indexOf(s);
    if (i !== -1 && i < end) end = i;
  }
  return text.slice(0, end);
}

/** A counting semaphore with FIFO waiters; waiting can be aborted. */
export class Semaphore {
  readonly limit: number;
  private active = 0;
  private readonly waiters: { grant: () => void; reject: (e: unknown) => void }[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  /** Slots in use now. */
  get inUse(): number {
    return this.active;
  }

  /** Resolves with a release function once a slot is free. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.active++;
          resolve(this.releaser());
        },
        reject,
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i !== -1) this.waiters.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiters.shift()?.grant();
    };
  }
}

/** Sleeps `ms`; rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `Retry-After` (or OpenAI's `retry-after-ms`) in milliseconds, or null when absent or unparseable. Seconds may
 * be fractional (not in RFC 9110, but harmless); an HTTP-date is measured from now.
 */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | null {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.max(0, Number(ms));
  const v = headers.get('retry-after');
  if (v === null) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.max(0, Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** The URL without credentials, query or fragment: what error messages and events show. */
function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function truncate(s: string, max = ERROR_TEXT_MAX): string {
  const t = s.trim();
  return t.length <= max ? t : `${t.slice(0, max)}… (${t.length - max} more chars)`;
}

/** The human part of an error body: `{"error": "…"}`, `{"error": {"message": "…"}}`, `{"message": "…"}`, or the raw text. */
function errorText(body: string): string {
  try {
    const j = JSON.parse(body) as unknown;
    if (j && typeof j === 'object') {
      const o = j as Record<string, unknown>;
      const e = o['error'];
      if (typeof e === 'string') return e;
      if (e && typeof e === 'object' && typeof (e as Record<string, unknown>)['message'] === 'string') {
        return (e as Record<string, unknown>)['message'] as string;
      }
      if (typeof o['message'] === 'string') return o['message'];
      if (typeof o['detail'] === 'string') return o['detail'];
    }
  } catch {
    // not JSON: the raw text
  }
  return body;
}

/** A Node network error's most useful words: `ECONNREFUSED`, `other side closed`… */
function networkReason(e: unknown): string {
  let cur: unknown = e;
  const parts: string[] = [];
  for (let i = 0; i < 4 && cur instanceof Error; i++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(typeof code === 'string' && code.length > 0 ? code : cur.message);
    cur = cur.cause;
  }
  const last = parts.at(-1) ?? String(e);
  return last;
}

/** A parsed 2xx body. */
export interface JsonResponse {
  readonly status: number;
  readonly json: unknown;
}

/**
 * The HTTP machinery one client owns: base URL, key, limits, and `postJson`. Subclasses build request bodies
 * and read responses.
 */
export abstract class EndpointClient implements CompletionClient {
  readonly model: string;
  /** The base URL as given, trailing slashes removed. */
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  protected readonly semaphore: Semaphore;
  private readonly backoff: Required<BackoffOptions>;
  private readonly maxRetryAfterMs: number;
  private readonly onRequest: ((e: RequestEvent) => void) | undefined;
  private readonly onRetry: ((e: RetryEvent) => void) | undefined;
  private readonly random: () => number;
  /** Private so that it does not show in `console.log(client)` or JSON. */
  readonly #apiKey: string | undefined;

  constructor(opts: ClientOptions) {
    if (typeof opts.model !== 'string' || opts.model.length === 0) throw new TypeError('model endpoint client: `model` is required');
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new TypeError(`model endpoint client: not a URL: ${JSON.stringify(String(opts.url).slice(0, 200))}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(`model endpoint client: only http and https URLs are supported, got ${parsed.protocol}`);
    }
    if (parsed.username !== '' || parsed.password !== '') {
      throw new TypeError('model endpoint client: put credentials in the API key environment variable, not in the URL');
    }
    this.model = opts.model;
    this.baseUrl = displayUrl(parsed).replace(/\/+$/, '') + parsed.search;
    this.timeoutMs = positive('timeoutMs', opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.maxRetries = nonNegativeInt('maxRetries', opts.maxRetries ?? DEFAULT_MAX_RETRIES);
    this.semaphore = new Semaphore(opts.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY);
    this.backoff = {
      initialMs: nonNegative('backoff.initialMs', opts.backoff?.initialMs ?? 500),
      factor: positive('backoff.factor', opts.backoff?.factor ?? 2),
      maxMs: nonNegative('backoff.maxMs', opts.backoff?.maxMs ?? 30_000),
      jitter: Math.min(1, nonNegative('backoff.jitter', opts.backoff?.jitter ?? 0.5)),
    };
    this.maxRetryAfterMs = nonNegative('maxRetryAfterMs', opts.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS);
    this.onRequest = opts.onRequest;
    this.onRetry = opts.onRetry;
    this.random = opts.random ?? Math.random;
    if (opts.apiKeyEnv !== undefined) {
      const key = (opts.env ?? process.env)[opts.apiKeyEnv];
      if (key === undefined || key.trim() === '') {
        throw new EndpointError(`API key environment variable ${opts.apiKeyEnv} is not set`, { code: 'config', retryable: false });
      }
      this.#apiKey = key.trim();
    }
  }

  abstract generate(req: GenerateRequest): Promise<string[]>;

  /** The full URL of `path` (which starts with `/`) under the base URL. */
  protected endpoint(path: string): URL {
    const base = new URL(this.baseUrl);
    base.pathname = base.pathname.replace(/\/+$/, '') + path;
    return base;
  }

  /** Replaces the API key wherever it occurs in `s` (a server may echo the Authorization header). */
  protected redact(s: string): string {
    const key = this.#apiKey;
    return key === undefined || key.length === 0 ? s : s.split(key).join('[REDACTED]');
  }

  /**
   * POSTs `body` as JSON and returns the parsed 2xx body. One concurrency slot is held per attempt (not during
   * backoff sleeps). Retries network errors, timeouts, 429, 5xx and unparseable 2xx bodies up to `maxRetries`
   * times; other statuses fail at once. `validate` may throw an EndpointError (code 'malformed') for a body of
   * the wrong shape, which is not retried.
   */
  protected async postJson<T>(url: URL, body: unknown, opts: { signal?: AbortSignal | undefined; n: number; validate: (json: unknown) => T }): Promise<T> {
    const shown = displayUrl(url);
    const payload = JSON.stringify(body);
    for (let attempt = 1; ; attempt++) {
      let error: EndpointError;
      let retryAfterMs: number | null = null;
      try {
        const { status, json } = await this.attempt(url, shown, payload, attempt, opts.n, opts.signal);
        try {
          return opts.validate(json);
        } catch (e) {
          if (e instanceof EndpointError) throw this.withAttempts(e, attempt);
          throw new EndpointError(`${shown}: HTTP ${status}: unexpected response: ${this.redact((e as Error).message)}`, {
            code: 'malformed',
            status,
            retryable: false,
            attempts: attempt,
            cause: e,
          });
        }
      } catch (e) {
        if (!(e instanceof AttemptFailure)) throw e;
        error = e.error;
        retryAfterMs = e.retryAfterMs;
      }
      if (!error.retryable) throw this.withAttempts(error, attempt);
      if (attempt > this.maxRetries) {
        throw new EndpointError(`${error.message} (gave up after ${attempt} attempt${attempt === 1 ? '' : 's'})`, {
          code: error.code,
          status: error.status,
          retryable: true,
          attempts: attempt,
          cause: error.cause,
        });
      }
      const delayMs = retryAfterMs !== null ? Math.min(retryAfterMs, this.maxRetryAfterMs) : this.backoffMs(attempt);
      this.onRetry?.({ url: shown, attempt, delayMs, error });
      try {
        await sleep(delayMs, opts.signal);
      } catch (reason) {
        throw aborted(shown, reason, attempt);
      }
    }
  }

  /** One try: take a slot, send, read the whole body under the timeout. Throws AttemptFailure or an abort. */
  private async attempt(url: URL, shown: string, payload: string, attempt: number, n: number, signal: AbortSignal | undefined): Promise<JsonResponse> {
    let release: () => void;
    try {
      release = await this.semaphore.acquire(signal);
    } catch (reason) {
      throw aborted(shown, reason, attempt);
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      this.onRequest?.({ url: shown, attempt, n });
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (this.#apiKey !== undefined) headers['authorization'] = `Bearer ${this.#apiKey}`;
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, { method: 'POST', headers, body: payload, signal: combined });
        text = await res.text();
      } catch (e) {
        if (signal?.aborted) throw aborted(shown, signal.reason, attempt);
        if (timeout.aborted) {
          throw new AttemptFailure(
            new EndpointError(`${shown}: no complete response within ${this.timeoutMs} ms`, { code: 'timeout', retryable: true, attempts: attempt }),
          );
        }
        throw new AttemptFailure(
          new EndpointError(`${shown}: network error: ${this.redact(networkReason(e))}`, { code: 'network', retryable: true, attempts: attempt, cause: e }),
        );
      }
      if (res.status < 200 || res.status > 299) {
        const retryable = res.status === 429 || res.status >= 500;
        const detail = truncate(this.redact(errorText(text)));
        const statusText = res.statusText ? ` ${res.statusText}` : '';
        throw new AttemptFailure(
          new EndpointError(`${shown}: HTTP ${res.status}${statusText}${detail ? `: ${detail}` : ''}`, {
            code: 'http',
            status: res.status,
            retryable,
            attempts: attempt,
          }),
          retryable ? parseRetryAfter(res.headers) : null,
        );
      }
      try {
        return { status: res.status, json: JSON.parse(text) as unknown };
      } catch {
        // Truncated or garbled bodies (a proxy cut the connection, a server restarting) are usually transient.
        throw new AttemptFailure(
          new EndpointError(`${shown}: HTTP ${res.status} with a body that is not JSON: ${truncate(this.redact(text), 200)}`, {
            code: 'malformed',
            status: res.status,
            retryable: true,
            attempts: attempt,
          }),
        );
      }
    } finally {
      release();
    }
  }

  private backoffMs(attempt: number): number {
    const { initialMs, factor, maxMs, jitter } = this.backoff;
    const d = Math.min(maxMs, initialMs * factor ** (attempt - 1));
    return Math.round(d * (1 - jitter) + d * jitter * this.random());
  }

  private withAttempts(e: EndpointError, attempts: number): EndpointError {
    if (e.attempts === attempts) return e;
    return new EndpointError(e.message, { code: e.code, status: e.status, retryable: e.retryable, attempts, cause: e.cause });
  }
}

/** An attempt's failure, with the server's requested delay when it gave one. */
class AttemptFailure extends Error {
  readonly error: EndpointError;
  readonly retryAfterMs: number | null;
  constructor(error: EndpointError, retryAfterMs: number | null = null) {
    super(error.message);
    this.error = error;
    this.retryAfterMs = retryAfterMs;
  }
}

function aborted(shown: string, reason: unknown, attempts: number): EndpointError {
  const why = reason instanceof Error ? reason.message : reason === undefined ? '' : String(reason);
  return new EndpointError(`${shown}: aborted${why ? `: ${why}` : ''}`, { code: 'aborted', retryable: false, attempts, cause: reason });
}

/**
 * Runs `fn(i, signal)` for i in [0, count) and gathers the results in order. When one fails, the others are
 * aborted (through the signal each was given) and the first failure is thrown.
 */
export async function allOrAbort<T>(count: number, signal: AbortSignal | undefined, fn: (i: number, signal: AbortSignal) => Promise<T>): Promise<T[]> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(signal!.reason);
  if (signal?.aborted) ctl.abort(signal.reason);
  else signal?.addEventListener('abort', onAbort, { once: true });
  let first: { error: unknown } | undefined;
  try {
    const settled = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        fn(i, ctl.signal).catch((e: unknown) => {
          if (first === undefined) {
            first = { error: e };
            ctl.abort(new Error('another request of this call failed'));
          }
          throw e;
        }),
      ),
    );
    if (first !== undefined) throw first.error;
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Checks a GenerateRequest's numbers; throws RangeError on nonsense. */
export function checkRequest(req: GenerateRequest): void {
  if (typeof req.prompt !== 'string') throw new TypeError('generate: prompt must be a string');
  if (!Number.isInteger(req.n) || req.n < 0) throw new RangeError(`generate: n must be a non-negative integer, got ${req.n}`);
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
    throw new RangeError(`generate: maxNewTokens must be a positive integer, got ${req.maxNewTokens}`);
  }
  if (!Number.isFinite(req.temperature) || req.temperature < 0) throw new RangeError(`generate: temperature must be >= 0, got ${req.temperature}`);
  if (!Number.isFinite(req.topP) || req.topP <= 0 || req.topP > 1) throw new RangeError(`generate: topP must be in (0, 1], got ${req.topP}`);
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`model endpoint client: ${name} must be > 0, got ${v}`);
  return v;
}
function nonNegative(name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`model endpoint client: ${name} must be >= 0, got ${v}`);
  return v;
}
function nonNegativeInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`model endpoint client: ${name} must be a non-negative integer, got ${v}`);
  return v;
}
