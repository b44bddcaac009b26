/**
 * Model endpoint clients for the eval runner: n completions of one prompt from an OpenAI-style completions
 * server or from Triton's generate endpoint (TensorRT-LLM), each cut at the first stop sequence.
 *
 *     const client = createClient({ kind: 'openai', url: 'http://127.0.0.1:8000', model: 'kiln-7b', apiKeyEnv: 'KILN_API_KEY' });
 *     const texts = await client.generate({ prompt, n: 10, temperature: 0.8, topP: 0.95, maxNewTokens: 512, stop: problem.stop });
 *
 * Shared behaviour (client-base.ts): per-attempt timeout (default 60 s); retries with exponential backoff and
 * jitter on network errors, timeouts, 429 and 5xx, honouring Retry-After (default 4 retries); other 4xx fail at
 * once; at most `maxConcurrency` (default 8) requests in flight per client; every failure is an EndpointError.
 */
import type { CompletionClient } from './client-base.ts';
import { OpenAICompletionsClient, type OpenAIClientOptions } from './client-openai.ts';
import { TritonGenerateClient, type TritonClientOptions } from './client-triton.ts';

export {
  cutAtStop,
  DEFAULT_MAX_CONCURRENCY,
  DEFAULT_MAX_RETRIES,
  DEFAULT_TIMEOUT_MS,
  EndpointClient,
  EndpointError,
  parseRetryAfter,
  Semaphore,
  type BackoffOptions,
  type ClientOptions,
  type CompletionClient,
  type EndpointErrorCode,
  type GenerateRequest,
  type RequestEvent,
  type RetryEvent,
} from './client-base.ts';
export { OPENAI_MAX_STOP, OpenAICompletionsClient, type OpenAIClientOptions } from './client-openai.ts';
export { TritonGenerateClient, type TritonClientOptions } from './client-triton.ts';

export type EndpointKind = 'openai' | 'triton';

export type CreateClientOptions =
  | ({ readonly kind: 'openai' } & OpenAIClientOptions)
  | ({ readonly kind: 'triton' } & TritonClientOptions);

/** The client for `opts.kind`. */
export function createClient(opts: CreateClientOptions): CompletionClient & { readonly model: string; readonly baseUrl: string } {
  switch (opts.kind) {
    case 'openai':
      return new OpenAICompletionsClient(opts);
    case 'triton':
      return new TritonGenerateClient(opts);
    default: {
      const kind: unknown = (opts as { kind?: unknown }).kind;
      throw new TypeError(`createClient: unknown endpoint kind ${JSON.stringify(kind)} (expected 'openai' or 'triton')`);
    }
  }
}
