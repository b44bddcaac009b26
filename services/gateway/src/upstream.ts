/**
 * One Triton upstream (contract §1): `POST /v2/models/<m>/generate` and `/generate_stream`, and the readiness
 * probes, over an undici keep-alive pool of its own.
 */
import { Pool, errors as undiciErrors } from 'undici';
import type { Upstream } from './config.ts';
import { sseData } from './sse.ts';

/** The top-level inputs of Triton's generate extension (contract §1). */
export interface TritonInputs {
  readonly text_input: string;
  readonly suffix?: string;
  readonly max_tokens: number;
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  readonly random_seed?: number;
  readonly stop_words: readonly string[] | '';
  readonly bad_words: '';
  readonly stream?: boolean;
}

/** One response of generate, or one event of generate_stream (the last has the finish reason and the counts). */
export interface TritonOutput {
  readonly text: string;
  readonly finishReason: string | null;
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
}

/**
 * What went wrong talking to an upstream. `connect`: it could not be reached (nothing was sent, safe to retry
 * elsewhere); `rejected`: it refused the request as invalid (HTTP 4xx); `failed`: an error, a 5xx or a malformed
 * answer; `timeout`: the request's time ran out; `aborted`: the client went away.
 */
export class UpstreamError extends Error {
  readonly kind: 'connect' | 'rejected' | 'failed' | 'timeout' | 'aborted';
  readonly upstream: string;
  constructor(upstream: string, kind: UpstreamError['kind'], message: string) {
    super(message);
    this.upstream = upstream;
    this.kind = kind;
  }
}

export class TritonUpstream {
  readonly name: string;
  readonly url: string;
  readonly weight: number;
  readonly tritonModel: string;
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(u: Upstream, o: { connections?: number } = {}) {
    this.name = u.name;
    this.url = u.url;
    this.weight = u.weight;
    this.tritonModel = u.tritonModel;
    const url = new URL(u.url);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, { connections: o.connections ?? 128, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
  }

  private path(suffix: string): string {
    return `${this.basePath}/v2/models/${encodeURIComponent(this.tritonModel)}${suffix}`;
  }

  /** Whether the server and its model are ready: both probes answer 200 within `timeoutMs`. */
  async ready(timeoutMs: number): Promise<'ready' | 'not_ready' | 'timeout'> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      for (const path of [`${this.basePath}/v2/health/ready`, this.path('/ready')]) {
        const r = await this.pool.request({ method: 'GET', path, signal });
        await r.body.dump();
        if (r.statusCode !== 200) return 'not_ready';
      }
      return 'ready';
    } catch {
      return signal.aborted ? 'timeout' : 'not_ready';
    }
  }

  /** One generate call. */
  async generate(inputs: TritonInputs, signal: AbortSignal): Promise<TritonOutput> {
    const r = await this.send('/generate', inputs, signal);
    let text: string;
    try {
      text = await r.body.text();
    } catch (e) {
      throw this.failure(e, signal);
    }
    const json = this.parse(text, r.statusCode);
    return this.output(json);
  }

  /** One generate_stream call: its events as they come. */
  async *generateStream(inputs: TritonInputs, signal: AbortSignal): AsyncGenerator<TritonOutput> {
    const r = await this.send('/generate_stream', { ...inputs, stream: true }, signal);
    if (r.statusCode !== 200) {
      const text = await r.body.text().catch(() => '');
      this.parse(text, r.statusCode);
      throw new UpstreamError(this.name, 'failed', `upstream ${this.name} answered HTTP ${r.statusCode}`);
    }
    try {
      for await (const data of sseData(r.body)) {
        if (data !== '[DONE]') yield this.output(this.parse(data, 200));
      }
    } catch (e) {
      if (e instanceof UpstreamError) throw e;
      throw this.failure(e, signal);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private async send(suffix: string, inputs: TritonInputs, signal: AbortSignal) {
    const request = () => this.pool.request({ method: 'POST', path: this.path(suffix), headers: { 'content-type': 'application/json' }, body: JSON.stringify(inputs), signal });
    try {
      return await request();
    } catch (e) {
      // A pooled connection closed under the request before any answer (its pod went away behind the Service):
      // once more on a fresh connection, which the Service gives to a pod that is still there.
      if (signal.aborted || !(e instanceof undiciErrors.SocketError || (e as { code?: string }).code === 'ECONNRESET')) throw this.failure(e, signal);
      try {
        return await request();
      } catch (again) {
        throw this.failure(again, signal);
      }
    }
  }

  private failure(e: unknown, signal: AbortSignal): UpstreamError {
    if (signal.aborted) {
      const reason = signal.reason as { name?: string } | undefined;
      return reason?.name === 'TimeoutError' ? new UpstreamError(this.name, 'timeout', `upstream ${this.name} did not answer in time`) : new UpstreamError(this.name, 'aborted', 'the client went away');
    }
    const code = (e as { code?: string }).code ?? '';
    // A connection closed before any answer is a connect failure too: a Service's ClusterIP always accepts (the
    // proxy does), and closes at once when it has no endpoint left or the pod behind it is going away.
    if (e instanceof undiciErrors.ConnectTimeoutError || e instanceof undiciErrors.SocketError || ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) {
      return new UpstreamError(this.name, 'connect', `cannot connect to upstream ${this.name} (${code || 'connect timeout'})`);
    }
    return new UpstreamError(this.name, 'failed', `upstream ${this.name}: ${(e as Error).message}`);
  }

  /** A Triton answer's JSON; Triton's `{"error": …}` (even with HTTP 200) as an UpstreamError. */
  private parse(text: string, status: number): Record<string, unknown> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new UpstreamError(this.name, 'failed', `upstream ${this.name} answered HTTP ${status} with a body that is not JSON`);
    }
    if (!json || typeof json !== 'object') throw new UpstreamError(this.name, 'failed', `upstream ${this.name} answered HTTP ${status} with an unexpected body`);
    const err = (json as { error?: unknown }).error;
    if (err !== undefined) {
      const msg = typeof err === 'string' ? err : JSON.stringify(err);
      throw new UpstreamError(this.name, status >= 400 && status < 500 ? 'rejected' : 'failed', msg);
    }
    if (status !== 200) throw new UpstreamError(this.name, status >= 400 && status < 500 ? 'rejected' : 'failed', `upstream ${this.name} answered HTTP ${status}`);
    return json as Record<string, unknown>;
  }

  private output(json: Record<string, unknown>): TritonOutput {
    const one = (v: unknown): unknown => (Array.isArray(v) && v.length === 1 ? v[0] : v);
    const text = one(json.text_output);
    if (typeof text !== 'string') throw new UpstreamError(this.name, 'failed', `upstream ${this.name}: the answer has no string text_output`);
    const fr = one(json.finish_reason);
    const num = (v: unknown) => (typeof one(v) === 'number' ? (one(v) as number) : null);
    return { text, finishReason: typeof fr === 'string' && fr !== '' ? fr : null, promptTokens: num(json.prompt_tokens), completionTokens: num(json.completion_tokens) };
  }
}
