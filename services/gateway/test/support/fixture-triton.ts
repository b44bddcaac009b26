/**
 * A fixture Triton server for protocol tests: a tiny node:http server speaking contract §1 (generate,
 * generate_stream, the readiness probes, Triton's `{"error"}` answers). Its "model" is deterministic and
 * character-level (one character = one token): the completion of a request is `reply(inputs)` (by default a text
 * naming the upstream, the seed and the suffix), cut before the first stop word, at most max_tokens characters.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FixtureInputs {
  readonly text_input: string;
  readonly suffix?: string;
  readonly max_tokens?: number;
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  readonly random_seed?: number;
  readonly stop_words?: string[] | '';
  readonly bad_words?: '';
  readonly stream?: boolean;
}

export interface FixtureOptions {
  /** Names the fixture in its default completions. Default `fixture`. */
  readonly name?: string;
  /** The full text the model would write (before stop words and max_tokens). */
  readonly reply?: (inputs: FixtureInputs) => string;
  /** Characters per streamed event. Default 4. */
  readonly chunkChars?: number;
  /** Delay between streamed events (ms). Default 0. */
  readonly chunkDelayMs?: number;
  /** A fixed port (to restart a stopped fixture where it was). Default a free one. */
  readonly port?: number;
}

export interface RecordedRequest {
  readonly path: string;
  readonly body: FixtureInputs;
}

export class FixtureTriton {
  readonly name: string;
  url = '';
  port = 0;
  /** Every generate / generate_stream request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  /** Answers of the readiness probes. */
  ready = true;
  modelReady = true;
  /** The next requests get this answer instead (status, body), one per entry. */
  readonly failures: { status: number; body: unknown }[] = [];
  /** When set, generate requests are held and never answered (for timeouts). */
  hang = false;
  /** When set, generate requests have their connection closed without an answer (a pod going away behind a Service). */
  cut = false;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly o: FixtureOptions;

  private constructor(o: FixtureOptions) {
    this.o = o;
    this.name = o.name ?? 'fixture';
  }

  static async start(o: FixtureOptions = {}): Promise<FixtureTriton> {
    const f = new FixtureTriton(o);
    await f.listen(o.port ?? 0);
    return f;
  }

  /** The completion this fixture writes for `inputs` (before stop words and max_tokens). */
  fullText(inputs: FixtureInputs): string {
    if (this.o.reply) return this.o.reply(inputs);
    const seed = inputs.random_seed === undefined ? 'greedy' : String(inputs.random_seed);
    return ` [${this.name}] seed=${seed} suffix=${inputs.suffix ?? '-'} STOP after the stop word, and more text to make it long enough for any test`;
  }

  /** What the fixture answers: the completion, its finish reason and the token counts. */
  complete(inputs: FixtureInputs): { text: string; finish: 'stop' | 'length' | 'eos'; prompt: number; completion: number } {
    let text = this.fullText(inputs);
    let finish: 'stop' | 'length' | 'eos' = 'eos';
    const stops = Array.isArray(inputs.stop_words) ? inputs.stop_words.filter(Boolean) : [];
    let at = -1;
    for (const s of stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    const max = inputs.max_tokens ?? 64;
    if (at >= 0 && at <= max) {
      text = text.slice(0, at);
      finish = 'stop';
    } else if (text.length > max) {
      text = text.slice(0, max);
      finish = 'length';
    }
    return { text, finish, prompt: inputs.text_input.length + (inputs.suffix?.length ?? 0), completion: text.length };
  }

  /** Stops answering: new connections are refused, open ones are cut. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((res) => s.close(() => res()));
  }

  /** Starts again on the same port. */
  async restart(): Promise<void> {
    await this.listen(this.port);
  }

  private async listen(port: number): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(port, '127.0.0.1', () => res());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0]!;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && path === '/v2/health/ready') return void res.writeHead(this.ready ? 200 : 503).end();
    if (req.method === 'GET' && path === '/v2/models/ensemble/ready') return void res.writeHead(this.modelReady ? 200 : 400).end();
    const m = /^\/v2\/models\/([^/]+)\/(generate|generate_stream)$/.exec(path);
    if (req.method !== 'POST' || !m) return json(404, { error: `Not Found: ${req.method} ${path}` });
    if (m[1] !== 'ensemble') return json(400, { error: `Request for unknown model: '${m[1]}' is not found` });
    let text = '';
    for await (const c of req) text += (c as Buffer).toString('utf8');
    let body: FixtureInputs;
    try {
      body = JSON.parse(text) as FixtureInputs;
    } catch {
      return json(400, { error: 'failed to parse the request JSON buffer' });
    }
    this.requests.push({ path, body });
    if (this.hang) return;
    if (this.cut) {
      req.socket.destroy();
      return;
    }
    const failure = this.failures.shift();
    if (failure) return json(failure.status, failure.body);
    if (typeof body.text_input !== 'string') return json(400, { error: 'text_input is required' });
    const out = this.complete(body);
    const base = { model_name: 'ensemble', model_version: '1' };
    if (m[2] === 'generate') return json(200, { ...base, text_output: out.text, finish_reason: out.finish, prompt_tokens: out.prompt, completion_tokens: out.completion });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const step = this.o.chunkChars ?? 4;
    const pieces: string[] = [];
    for (let i = 0; i < out.text.length; i += step) pieces.push(out.text.slice(i, i + step));
    const last = pieces.pop() ?? '';
    for (const p of pieces) {
      res.write(`data: ${JSON.stringify({ ...base, text_output: p })}\n\n`);
      if (this.o.chunkDelayMs) await new Promise((r) => setTimeout(r, this.o.chunkDelayMs));
    }
    res.end(`data: ${JSON.stringify({ ...base, text_output: last, finish_reason: out.finish, prompt_tokens: out.prompt, completion_tokens: out.completion })}\n\n`);
  }
}
