import { allOrAbort, checkRequest, cutAtStop, EndpointClient, EndpointError, type ClientOptions, type GenerateRequest } from './client-base.ts';

/** OpenAI's legacy completions API accepts at most this many stop sequences. */
export const OPENAI_MAX_STOP = 4;

export interface OpenAIClientOptions extends ClientOptions {
  /**
   * Largest `n` asked of the server in one request; a larger n is split into several requests (run concurrently,
   * within the client's concurrency bound) so that one response stays well inside the timeout. Default 16.
   */
  readonly maxNPerRequest?: number;
}

/**
 * An OpenAI-style `POST {url}/v1/completions` (OpenAI, vLLM, TGI's and SGLang's OpenAI servers). If `url` already
 * ends in `/v1`, no second `/v1` is added.
 *
 * Sent: `{ model, prompt, n, temperature, top_p, max_tokens, stop }` with `stop` holding at most the first 4
 * stop sequences (OpenAI rejects more) and left out when there are none. Every stop sequence, sent or not, is
 * also cut client-side. Read: `choices[].text`, placed by `choices[].index`.
 */
export class OpenAICompletionsClient extends EndpointClient {
  readonly maxNPerRequest: number;
  private readonly url: URL;

  constructor(opts: OpenAIClientOptions) {
    super(opts);
    const max = opts.maxNPerRequest ?? 16;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`OpenAICompletionsClient: maxNPerRequest must be a positive integer, got ${max}`);
    this.maxNPerRequest = max;
    this.url = this.endpoint(new URL(this.baseUrl).pathname.replace(/\/+$/, '').endsWith('/v1') ? '/completions' : '/v1/completions');
  }

  async generate(req: GenerateRequest): Promise<string[]> {
    checkRequest(req);
    if (req.n === 0) return [];
    // Greedy decoding (temperature 0) gives the same text every time, so n > 1 greedy samples would be n copies
    // of one: ask for n = 1 once and replicate it, rather than paying for n identical generations.
    if (req.temperature === 0) {
      const [one] = await this.request(req, 1, req.signal);
      return Array.from({ length: req.n }, () => one!);
    }
    const sizes: number[] = [];
    for (let left = req.n; left > 0; left -= this.maxNPerRequest) sizes.push(Math.min(left, this.maxNPerRequest));
    const chunks = await allOrAbort(sizes.length, req.signal, (i, signal) => this.request(req, sizes[i]!, signal));
    return chunks.flat();
  }

  /** One request for `n` completions; the texts in `index` order, cut at every stop sequence. */
  private async request(req: GenerateRequest, n: number, signal: AbortSignal | undefined): Promise<string[]> {
    const stop = req.stop.filter((s) => s.length > 0).slice(0, OPENAI_MAX_STOP);
    const body: Record<string, unknown> = {
      model: this.model,
      prompt: req.prompt,
      n,
      temperature: req.temperature,
      top_p: req.topP,
      max_tokens: req.maxNewTokens,
    };
    if (stop.length > 0) body['stop'] = stop;
    const texts = await this.postJson(this.url, body, { signal, n, validate: (json) => readChoices(json, n, this.url) });
    return texts.map((t) => cutAtStop(t, req.stop));
  }
}

/** `choices[].text` ordered by `index`; exactly n of them, each index in [0, n) once. */
function readChoices(json: unknown, n: number, url: URL): string[] {
  const bad = (why: string) =>
    new EndpointError(`${url.protocol}//${url.host}${url.pathname}: unexpected completions response: ${why}`, {
      code: 'malformed',
      status: 200,
      retryable: false,
    });
  const choices = json && typeof json === 'object' ? (json as { choices?: unknown }).choices : undefined;
  if (!Array.isArray(choices)) throw bad('no `choices` array');
  if (choices.length !== n) throw bad(`asked for ${n} choices, got ${choices.length}`);
  const out: (string | undefined)[] = new Array<string | undefined>(n).fill(undefined);
  choices.forEach((c: unknown, pos) => {
    if (!c || typeof c !== 'object') throw bad(`choices[${pos}] is not an object`);
    const { text, index } = c as { text?: unknown; index?: unknown };
    if (typeof text !== 'string') throw bad(`choices[${pos}].text is not a string`);
    // Servers that leave `index` out are taken to list choices in order.
    const i = index === undefined || index === null ? pos : index;
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= n) throw bad(`choices[${pos}].index ${JSON.stringify(i)} is not in [0, ${n})`);
    if (out[i] !== undefined) throw bad(`two choices with index ${i}`);
    out[i] = text;
  });
  return out as string[];
}
