/** `kiln complete`: a completion through a gateway (OpenAI's completions API), streamed to standard output. */
import { readFileSync } from 'node:fs';
import { sseData } from '@kiln/gateway/sse';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { intOption, numberOption } from '../options.ts';

export const command: Command = {
  usage: 'kiln complete PROMPT [--endpoint URL] [--model M] [--max-tokens N] [--temperature T] [--suffix S] [--stop S ...] [--stream | --no-stream] [--api-key-file FILE] [--json]',
  help: `Sends PROMPT (- reads it from standard input) to a gateway's POST /v1/completions and streams the
completion to standard output. With --suffix, fills in the middle between the prompt and the suffix.
The API key is $KILN_API_KEY, or the first key of --api-key-file (a gateway key file).

Options:
  --endpoint URL        the gateway (default $KILN_ENDPOINT, else http://127.0.0.1:8080)
  --model M             the model (default: the first the gateway lists; M@<upstream> pins a version)
  --max-tokens N        at most N tokens (default 64)
  --temperature T       0 (default) is greedy; up to 2
  --top-p P             nucleus sampling share, more than 0, at most 1
  --seed N              seed of the sampling
  --suffix S            the text after the gap: fill in the middle
  --stop S              stop before this text (repeat for more)
  --no-stream           wait for the whole completion (default: stream it as it comes)
  --api-key-file FILE   read the key from this file instead of $KILN_API_KEY
  --json                print one object: kind kiln.complete/v1, endpoint, model, upstream, id, text,
                        finish_reason, usage, seconds (implies --no-stream)

Exit codes: 0 ok, 1 the request failed (refused key, rate limit, gateway or model error, cannot connect),
2 usage error.`,
  options: {
    ...common,
    endpoint: { type: 'string' },
    model: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    suffix: { type: 'string' },
    stop: { type: 'string', multiple: true },
    stream: { type: 'boolean' },
    'no-stream': { type: 'boolean' },
    'api-key-file': { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  run: runComplete,
};

/** A failed request, said for a person (exit 1). */
class RequestFailed extends Error {}

export async function runComplete(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number> {
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `kiln complete takes one PROMPT (quote it), got ${positionals.length} arguments` : 'kiln complete needs a PROMPT (or - to read it from standard input)');
  if (values.stream && values['no-stream']) throw new UsageError('--stream and --no-stream contradict each other');
  const prompt = positionals[0] === '-' ? readFileSync(0, 'utf8') : positionals[0]!;
  const endpoint = String(values.endpoint ?? process.env.KILN_ENDPOINT ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/\s]+/.test(endpoint)) throw new UsageError(`--endpoint takes an http:// or https:// URL, not "${endpoint}"`);
  const stops = (values.stop as string[] | undefined) ?? [];
  if (stops.some((s) => s === '')) throw new UsageError('--stop takes a non-empty text');
  const body: Record<string, unknown> = {
    prompt,
    max_tokens: intOption('max-tokens', values['max-tokens'], 1) ?? 64,
    temperature: numberOption('temperature', values.temperature, { min: 0, max: 2 }) ?? 0,
  };
  const topP = numberOption('top-p', values['top-p'], { min: 0, max: 1, above: true });
  if (topP !== undefined) body.top_p = topP;
  const seed = intOption('seed', values.seed, 0);
  if (seed !== undefined) body.seed = seed;
  if (values.suffix !== undefined) body.suffix = String(values.suffix);
  if (stops.length) body.stop = stops;
  const json = values.json === true;
  const stream = !json && !values['no-stream'];
  const key = apiKey(values['api-key-file'] as string | undefined);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) };

  const t0 = performance.now();
  try {
    body.model = (values.model as string | undefined) ?? (await firstModel(endpoint, headers));
    const res = await send(endpoint, '/v1/completions', { method: 'POST', headers, body: JSON.stringify({ ...body, stream }) });
    if (!res.ok) throw await failure(res, endpoint);
    const upstream = res.headers.get('x-kiln-upstream');
    if (!stream) {
      const r = (await res.json()) as { id: string; model: string; choices: { text: string; finish_reason: string }[]; usage: unknown };
      const choice = r.choices[0]!;
      if (json) {
        io.out(JSON.stringify({ kind: 'kiln.complete/v1', endpoint, model: r.model, upstream, id: r.id, text: choice.text, finish_reason: choice.finish_reason, usage: r.usage, seconds: round((performance.now() - t0) / 1000) }));
      } else writeText(io, choice.text, true);
      return EXIT.ok;
    }
    let last = '';
    for await (const event of sseData(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (event === '[DONE]') break;
      const data = JSON.parse(event) as { choices?: { text: string }[]; error?: { message: string } };
      if (data.error) throw new RequestFailed(`the completion stopped: ${data.error.message}`);
      for (const c of data.choices ?? []) {
        if (c.text) last = c.text;
        writeText(io, c.text, false);
      }
    }
    if (io.isTTY && last && !last.endsWith('\n')) writeText(io, '\n', false);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof RequestFailed) {
      io.err(`kiln complete: ${e.message}`);
      return EXIT.invalid;
    }
    throw e;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Text to standard output: as it comes where the io can, else (tests) whole. */
function writeText(io: Io, text: string, whole: boolean): void {
  if (io.write) {
    io.write(text);
    if (whole && io.isTTY && text && !text.endsWith('\n')) io.write('\n');
  } else if (text) io.out(text);
}

/** $KILN_API_KEY, or the first key line of a key file (not a sha256: line, which only the gateway can use). */
function apiKey(file: string | undefined): string | undefined {
  if (file === undefined) return process.env.KILN_API_KEY || undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --api-key-file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const key = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('#') && !l.startsWith('sha256:'));
  if (!key) throw new UsageError(`--api-key-file ${file} holds no key (only comments, blank lines or sha256: digests)`);
  return key;
}

async function send(endpoint: string, path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(`${endpoint}${path}`, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
    const code = cause?.code || cause?.errors?.[0]?.code || cause?.message || (e as Error).message;
    throw new RequestFailed(`cannot connect to ${endpoint} (${code}): is \`kiln gateway\` running there? Pass --endpoint URL or set $KILN_ENDPOINT.`);
  }
}

async function firstModel(endpoint: string, headers: Record<string, string>): Promise<string> {
  const res = await send(endpoint, '/v1/models', { headers });
  if (!res.ok) throw await failure(res, endpoint);
  const list = (await res.json()) as { data?: { id: string }[] };
  const id = list.data?.[0]?.id;
  if (!id) throw new RequestFailed(`${endpoint}/v1/models lists no model; pass --model M`);
  return id;
}

/** A non-2xx answer as a message that says what to do. */
async function failure(res: Response, endpoint: string): Promise<RequestFailed> {
  let message = '';
  let code = '';
  try {
    const j = (await res.json()) as { error?: { message?: string; code?: string } };
    message = j.error?.message ?? '';
    code = j.error?.code ?? '';
  } catch {
    message = '';
  }
  const said = message ? `: ${message}` : '';
  if (res.status === 401) return new RequestFailed(`${endpoint} refused the API key (401${code ? ` ${code}` : ''})${said} Set $KILN_API_KEY or pass --api-key-file FILE.`);
  if (res.status === 429) {
    const after = res.headers.get('retry-after');
    return new RequestFailed(`rate limited by ${endpoint} (429)${after ? `: retry in ${after} s` : ''}${said}`);
  }
  return new RequestFailed(`${endpoint} answered ${res.status}${code ? ` ${code}` : ''}${said}`);
}

