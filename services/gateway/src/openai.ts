/** OpenAI's API shapes: the error body, and a completion request read and checked field by field. */

/** An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with an HTTP status. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, o: { type?: string; param?: string | null; code?: string | null; headers?: Record<string, string> } = {}) {
    super(message);
    this.status = status;
    this.type = o.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = o.param ?? null;
    this.code = o.code ?? null;
    this.headers = o.headers ?? {};
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const invalid = (message: string, param: string, code = 'invalid_value') => new ApiError(400, message, { param, code });

/** A completion request, checked and defaulted. */
export interface CompletionRequest {
  readonly model: string;
  readonly prompt: string;
  readonly suffix: string | undefined;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly n: number;
  readonly stop: readonly string[];
  readonly seed: number | undefined;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly echo: boolean;
}

export interface RequestLimits {
  readonly maxPromptChars: number;
  readonly maxTokens: number;
}

/** OpenAI's default max_tokens for completions. */
export const DEFAULT_MAX_TOKENS = 16;
export const MAX_N = 16;
export const MAX_STOPS = 16;

const KNOWN = new Set(['model', 'prompt', 'suffix', 'max_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed', 'stream', 'stream_options', 'echo', 'user', 'logprobs', 'best_of', 'presence_penalty', 'frequency_penalty', 'logit_bias']);

/** Reads a /v1/completions body; an ApiError (400) names the first bad field and says what it takes. */
export function parseCompletionRequest(body: unknown, limits: RequestLimits): CompletionRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'The request body must be a JSON object.', { code: 'invalid_request_body' });
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) throw new ApiError(400, `Unrecognized request argument supplied: ${k}`, { param: k, code: 'unknown_parameter' });
  if (typeof b.model !== 'string' || b.model === '') throw invalid('You must provide a model parameter (a string).', 'model', 'missing_required_parameter');

  let prompt: string;
  if (typeof b.prompt === 'string') prompt = b.prompt;
  else if (b.prompt === undefined || b.prompt === null) throw invalid('You must provide a prompt parameter (a string).', 'prompt', 'missing_required_parameter');
  else if (Array.isArray(b.prompt) && b.prompt.length === 1 && typeof b.prompt[0] === 'string') prompt = b.prompt[0];
  else if (Array.isArray(b.prompt) && b.prompt.length > 0 && b.prompt.every((x) => typeof x === 'number' || Array.isArray(x))) {
    throw invalid('Prompts as token ids are not supported by this gateway (the tokenizer lives in the model server): send the prompt as text.', 'prompt', 'unsupported_value');
  } else if (Array.isArray(b.prompt)) throw invalid('A list of several prompts is not supported: send one prompt (a string) per request, or use n for several completions of one prompt.', 'prompt', 'unsupported_value');
  else throw invalid('prompt must be a string.', 'prompt');

  const suffix = b.suffix === undefined || b.suffix === null ? undefined : b.suffix;
  if (suffix !== undefined && typeof suffix !== 'string') throw invalid('suffix must be a string or null.', 'suffix');
  const chars = prompt.length + (suffix?.length ?? 0);
  if (chars > limits.maxPromptChars) {
    throw invalid(`The prompt${suffix ? ' and suffix' : ''} ${suffix ? 'are' : 'is'} ${chars} characters long; this gateway takes at most ${limits.maxPromptChars}. Shorten the prompt.`, 'prompt', 'prompt_too_long');
  }

  const maxTokens = int(b.max_tokens, 'max_tokens', 1) ?? Math.min(DEFAULT_MAX_TOKENS, limits.maxTokens);
  if (maxTokens > limits.maxTokens) throw invalid(`max_tokens is ${maxTokens}; this gateway allows at most ${limits.maxTokens}.`, 'max_tokens');
  const temperature = num(b.temperature, 'temperature', 0, 2) ?? 1;
  const topP = num(b.top_p, 'top_p', 0, 1) ?? 1;
  if (topP === 0) throw invalid('top_p must be more than 0 and at most 1.', 'top_p');
  const n = int(b.n, 'n', 1) ?? 1;
  if (n > MAX_N) throw invalid(`n is ${n}; this gateway returns at most ${MAX_N} choices per request.`, 'n');
  const seed = int(b.seed, 'seed', 0);
  if (seed !== undefined && seed > 2 ** 47) throw invalid(`seed must be at most ${2 ** 47}.`, 'seed');

  let stop: string[] = [];
  if (typeof b.stop === 'string') stop = [b.stop];
  else if (Array.isArray(b.stop)) {
    if (!b.stop.every((s) => typeof s === 'string')) throw invalid('stop must be a string or an array of strings.', 'stop');
    stop = b.stop as string[];
  } else if (b.stop !== undefined && b.stop !== null) throw invalid('stop must be a string or an array of strings.', 'stop');
  stop = stop.filter((s) => s !== '');
  if (stop.length > MAX_STOPS) throw invalid(`stop has ${stop.length} sequences; at most ${MAX_STOPS}.`, 'stop');

  const stream = bool(b.stream, 'stream') ?? false;
  let includeUsage = false;
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (!stream) throw invalid('stream_options is only allowed when stream is true.', 'stream_options');
    if (typeof b.stream_options !== 'object' || Array.isArray(b.stream_options)) throw invalid('stream_options must be an object.', 'stream_options');
    includeUsage = bool((b.stream_options as Record<string, unknown>).include_usage, 'stream_options.include_usage') ?? false;
  }
  const echo = bool(b.echo, 'echo') ?? false;
  if (b.user !== undefined && typeof b.user !== 'string') throw invalid('user must be a string.', 'user');
  if (b.logprobs !== undefined && b.logprobs !== null && b.logprobs !== 0) throw invalid('logprobs are not supported by this gateway; leave logprobs out (or null).', 'logprobs', 'unsupported_value');
  if (b.best_of !== undefined && b.best_of !== null && b.best_of !== n) throw invalid('best_of is not supported by this gateway (only best_of equal to n); leave it out.', 'best_of', 'unsupported_value');
  for (const p of ['presence_penalty', 'frequency_penalty'] as const) {
    if (b[p] !== undefined && b[p] !== null && b[p] !== 0) throw invalid(`${p} is not supported by this gateway; leave it out (or 0).`, p, 'unsupported_value');
  }
  if (b.logit_bias !== undefined && b.logit_bias !== null && (typeof b.logit_bias !== 'object' || Object.keys(b.logit_bias).length > 0)) {
    throw invalid('logit_bias is not supported by this gateway; leave it out.', 'logit_bias', 'unsupported_value');
  }
  return { model: b.model, prompt, suffix, maxTokens, temperature, topP, n, stop, seed, stream, includeUsage, echo };
}

function int(v: unknown, name: string, min: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(`${name} must be an integer, got ${JSON.stringify(v)}.`, name);
  if (v < min) throw invalid(`${name} must be at least ${min}, got ${v}.`, name);
  return v;
}

function num(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(`${name} must be a number, got ${JSON.stringify(v)}.`, name);
  if (v < min || v > max) throw invalid(`${name} must be between ${min} and ${max}, got ${v}.`, name);
  return v;
}

function bool(v: unknown, name: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(`${name} must be true or false, got ${JSON.stringify(v)}.`, name);
  return v;
}
