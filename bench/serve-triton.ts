/**
 * Triton's own latency and throughput on this machine: the real tritonserver of services/trainer/scripts/serve.mjs
 * serving the echo model (Triton's overhead: HTTP, the dynamic batcher, the python backend's stub) and the tiny
 * trained model (kiln's python backend generating with transformers on the CPU). For each: sequential /generate
 * latency p50/p99 (and time to first streamed event), and tokens/s with one and with `--concurrency` clients.
 * Run: `node bench/serve-triton.ts [--requests 50] [--max-tokens 16] [--concurrency 8] [--json]`. Prints figures;
 * asserts nothing. The first run makes the serving environment and the tiny export (about two minutes).
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';

interface Triton {
  readonly url: string;
  stop(): Promise<void>;
}
interface ServeModule {
  startTriton(opts: { repository: string }): Promise<Triton>;
  ensureTinyExport(): Promise<string>;
  ECHO_REPOSITORY: string;
}
const serve = (await import(new URL('../services/trainer/scripts/serve.mjs', import.meta.url).href)) as ServeModule;

const { values } = parseArgs({ options: { requests: { type: 'string' }, 'max-tokens': { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'boolean' } } });
const requests = Number(values.requests ?? 50);
const maxTokens = Number(values['max-tokens'] ?? 16);
const concurrency = Number(values.concurrency ?? 8);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

async function generate(url: string, body: Record<string, unknown>): Promise<{ ms: number; tokens: number }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v2/models/ensemble/generate`, { method: 'POST', body: JSON.stringify(body) });
  const out = (await r.json()) as { completion_tokens?: number; error?: string };
  if (out.error) throw new Error(out.error);
  return { ms: performance.now() - t0, tokens: out.completion_tokens ?? 0 };
}

async function firstEvent(url: string, body: Record<string, unknown>): Promise<number> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v2/models/ensemble/generate_stream`, { method: 'POST', body: JSON.stringify({ ...body, stream: true }) });
  const reader = r.body!.getReader();
  await reader.read();
  const ms = performance.now() - t0;
  while (!(await reader.read()).done);
  return ms;
}

async function measure(name: string, repository: string, prompt: string) {
  const t0 = performance.now();
  const triton = await serve.startTriton({ repository });
  const readyS = (performance.now() - t0) / 1000;
  try {
    const body = { text_input: prompt, max_tokens: maxTokens };
    for (let i = 0; i < 3; i++) await generate(triton.url, body); // warm-up
    const seq: { ms: number; tokens: number }[] = [];
    for (let i = 0; i < requests; i++) seq.push(await generate(triton.url, body));
    const ttft: number[] = [];
    for (let i = 0; i < Math.min(20, requests); i++) ttft.push(await firstEvent(triton.url, body));
    const c0 = performance.now();
    const conc = await Promise.all(Array.from({ length: concurrency }, async () => {
      const got: { ms: number; tokens: number }[] = [];
      for (let i = 0; i < Math.ceil(requests / concurrency); i++) got.push(await generate(triton.url, body));
      return got;
    }));
    const concS = (performance.now() - c0) / 1000;
    const flat = conc.flat();
    const seqS = seq.reduce((a, x) => a + x.ms, 0) / 1000;
    return {
      model: name,
      readyS: round(readyS, 1),
      requests,
      maxTokens,
      p50Ms: round(pct(seq.map((x) => x.ms), 50)),
      p99Ms: round(pct(seq.map((x) => x.ms), 99)),
      firstEventP50Ms: round(pct(ttft, 50)),
      tokensPerS: round(seq.reduce((a, x) => a + x.tokens, 0) / seqS, 1),
      concurrency,
      concurrentP50Ms: round(pct(flat.map((x) => x.ms), 50)),
      concurrentTokensPerS: round(flat.reduce((a, x) => a + x.tokens, 0) / concS, 1),
    };
  } finally {
    await triton.stop();
  }
}

const echoPrompt = Array.from({ length: maxTokens }, (_, i) => `w${i}`).join(' ');
const rows = [await measure('echo', serve.ECHO_REPOSITORY, echoPrompt), await measure('tiny', `${await serve.ensureTinyExport()}/completions`, 'def loads(s')];
const out = { node: process.version, cores: availableParallelism(), triton: '2.51.0 (nvidia-pytriton 0.7.0)', rows };
if (values.json) console.log(JSON.stringify(out));
else {
  console.log(`Triton ${out.triton}, ${out.cores} cores, ${requests} requests of ${maxTokens} tokens, concurrency ${concurrency}`);
  for (const r of rows) {
    console.log(`${r.model.padEnd(5)} ready ${r.readyS} s | p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms, first event p50 ${r.firstEventP50Ms} ms | ${r.tokensPerS} tok/s sequential, ${r.concurrentTokensPerS} tok/s with ${concurrency} clients (p50 ${r.concurrentP50Ms} ms)`);
  }
}
