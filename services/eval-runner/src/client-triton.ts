import { randomInt } from 'node:crypto';
import { allOrAbort, checkRequest, cutAtStop, EndpointClient, EndpointError, type ClientOptions, type GenerateRequest } from './client-base.ts';

export interface TritonClientOptions extends ClientOptions {
  /** `/v2/models/{model}/versions/{modelVersion}/generate` instead of letting the server pick a version. */
  readonly modelVersion?: string;
  /**
   * Seed of the first sample of every call (sample i gets seed + i), for reproducible sampling. Default: a random
   * seed per sample. Either way each sample of a call gets its own seed; see `TritonGenerateClient`.
   */
  readonly seed?: number;
}

/**
 * Triton's generate extension, `POST {url}/v2/models/{model}/generate`, with the TensorRT-LLM backend's
 * ensemble (or tensorrt_llm_bls) model conventions. One request per sample: the endpoint returns one output.
 *
 * Request body. Triton's docs say `parameters` values may only be strings, numbers or booleans, and that any
 * other top-level property of the request is passed to the model as an input tensor (or parameter) of that name;
 * the TensorRT-LLM backend's own examples send its inputs at the top level (`"stop_words": ["…"]`). So the
 * inputs go at the top level:
 *
 *     sampling (temperature > 0):
 *       { text_input, max_tokens, temperature, top_p, random_seed, stop_words, bad_words }
 *     greedy (temperature 0):
 *       { text_input, max_tokens, top_k: 1, stop_words, bad_words }
 *
 * - `stop_words` is the list of stop sequences (all of them; there is no limit), or `""` when there are none,
 *   and `bad_words` is `""`: the forms the backend's docs use for "none".
 * - `random_seed`: TensorRT-LLM seeds every request with the same default seed, so n identical requests would
 *   give n identical samples. Each sample gets its own seed.
 * - Greedy is asked for as `top_k: 1` with no temperature (the runtime divides logits by it, so 0 is not safe on
 *   every version) and no top_p; n > 1 greedy samples would be identical, so one request is sent and its text
 *   replicated.
 *
 * Response: `text_output`, which includes the prompt when the model runs with `exclude_input_in_output=false`
 * (the default), so a leading copy of the prompt is stripped; then the text is cut at the first stop sequence
 * (TensorRT-LLM keeps the stop word itself in the output).
 */
export class TritonGenerateClient extends EndpointClient {
  private readonly url: URL;
  private readonly seed: number | undefined;

  constructor(opts: TritonClientOptions) {
    super(opts);
    if (opts.seed !== undefined && (!Number.isSafeInteger(opts.seed) || opts.seed < 0)) {
      throw new RangeError(`TritonGenerateClient: seed must be a non-negative integer, got ${opts.seed}`);
    }
    this.seed = opts.seed;
    const version = opts.modelVersion === undefined ? '' : `/versions/${encodeURIComponent(opts.modelVersion)}`;
    this.url = this.endpoint(`/v2/models/${encodeURIComponent(this.model)}${version}/generate`);
  }

  async generate(req: GenerateRequest): Promise<string[]> {
    checkRequest(req);
    if (req.n === 0) return [];
    if (req.temperature === 0) {
      // Greedy: one request, replicated (see the class comment).
      const one = await this.request(req, undefined, req.signal);
      return Array.from({ length: req.n }, () => one);
    }
    const base = this.seed;
    return allOrAbort(req.n, req.signal, (i, signal) => this.request(req, base === undefined ? randomInt(0, 2 ** 47) : base + i, signal));
  }

  /** The request body of one sample (see the class comment). */
  private body(req: GenerateRequest, seed: number | undefined): Record<string, unknown> {
    const stops = req.stop.filter((s) => s.length > 0);
    const sampling: Record<string, unknown> =
      req.temperature === 0 ? { top_k: 1 } : { temperature: req.temperature, top_p: req.topP, random_seed: seed };
    return {
      text_input: req.prompt,
      max_tokens: req.maxNewTokens,
      ...sampling,
      stop_words: stops.length > 0 ? stops : '',
      bad_words: '',
    };
  }

  private async request(req: GenerateRequest, seed: number | undefined, signal: AbortSignal | undefined): Promise<string> {
    const text = await this.postJson(this.url, this.body(req, seed), { signal, n: 1, validate: (json) => readTextOutput(json, this.url) });
    const continuation = text.startsWith(req.prompt) ? text.slice(req.prompt.length) : text;
    return cutAtStop(continuation, req.stop);
  }
}

/** `text_output` as a string (a one-element array of strings is accepted too). */
function readTextOutput(json: unknown, url: URL): string {
  const out = json && typeof json === 'object' ? (json as { text_output?: unknown }).text_output : undefined;
  if (typeof out === 'string') return out;
  if (Array.isArray(out) && out.length === 1 && typeof out[0] === 'string') return out[0];
  throw new EndpointError(`${url.protocol}//${url.host}${url.pathname}: unexpected generate response: no string \`text_output\``, {
    code: 'malformed',
    status: 200,
    retryable: false,
  });
}
