/**
 * The gateway's added latency: the same completions sent at a fixed arrival rate (open loop: request i leaves at
 * t0 + i/rate whatever the earlier ones are doing, and its latency counts from then, so queueing is not hidden)
 * straight to Triton's generate, and through the gateway's /v1/completions (API key checked, rate limits on,
 * routed, logged at info, metrics), on loopback. Then streaming: time to first byte of generate_stream against
 * the gateway's stream: true.
 *
 * Upstream: a real tritonserver serving the triton branch's echo repository (services/trainer/scripts/serve.mjs,
 * ECHO_REPOSITORY: the model answers the prompt back, so the model's own time is about nil), or --upstream URL.
 * The gateway runs in a process of its own (as in a pod); this process only sends and times.
 *
 * Run: `node bench/gateway-latency.ts [--upstream URL] [--rate 1000] [--seconds 10] [--rounds 2]
 *       [--stream-rate 100] [--json]`. Prints figures; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: { upstream: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, 'stream-rate': { type: 'string' }, 'stream-seconds': { type: 'string' }, json: { type: 'boolean' } },
});
const rate = Number(values.rate ?? 1000);
const seconds = Number(values.seconds ?? 10);
const rounds = Number(values.rounds ?? 2);
const streamRate = Number(values['stream-rate'] ?? 100);
const streamSeconds = Number(values['stream-seconds'] ?? 5);
const say = (s: string) => process.stderr.write(`${s}\n`);

// The real Triton with the echo model, unless told where one is. The trainer is a Python project: its launcher is a
// script, not a package export, so it is loaded by path.
let upstream = values.upstream;
let stopTriton: (() => Promise<void>) | undefined;
if (!upstream) {
  const serve = (await import(new URL('../services/trainer/scripts/serve.mjs', import.meta.url).href)) as {
    startTriton(o: { repository: string; log?: (l: string) => void }): Promise<{ url: string; stop(): Promise<void> }>;
    ECHO_REPOSITORY: string;
  };
  say('starting tritonserver with the echo repository…');
  const t = await serve.startTriton({ repository: serve.ECHO_REPOSITORY });
  upstream = t.url;
  stopTriton = () => t.stop();
}

// The gateway, in its own process, with a key file and limits high enough never to refuse.
const KEY = 'sk-bench-gateway-latency-0000';
const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-gateway-'));
writeFileSync(join(dir, 'keys'), `${KEY}\n`);
const config = join(dir, 'gateway.json');
writeFileSync(config, JSON.stringify({ model: 'completions', upstreams: [{ name: 'stable', url: upstream }], api_keys_file: join(dir, 'keys'), limits: { requests_per_minute: 10_000_000, tokens_per_minute: 1_000_000_000 } }));
const child = spawn(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { createWriteStream } from 'node:fs';
     import { configFromFlags, runGateway } from '@kiln/gateway';
     const c = configFromFlags({ config: process.env.GW_CONFIG });
     process.exitCode = await runGateway(c, { host: '127.0.0.1', port: 0, say: () => {}, logStream: createWriteStream('/dev/null'), onListening: (u) => console.log(u) });`,
  ],
  { cwd: new URL('.', import.meta.url), env: { ...process.env, GW_CONFIG: config }, stdio: ['ignore', 'pipe', 'inherit'] },
);
const gateway = await new Promise<string>((resolve, reject) => {
  child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
  child.once('exit', (code) => reject(new Error(`the gateway exited ${code}`)));
});

const prompt = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n';
const direct = { path: '/v2/models/ensemble/generate', body: JSON.stringify({ text_input: prompt, max_tokens: 16, top_k: 1, stop_words: '', bad_words: '' }), headers: { 'content-type': 'application/json' } };
const via = { path: '/v1/completions', body: JSON.stringify({ model: 'completions', prompt, max_tokens: 16, temperature: 0 }), headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` } };
const directStream = { path: '/v2/models/ensemble/generate_stream', body: JSON.stringify({ text_input: prompt, max_tokens: 16, top_k: 1, stop_words: '', bad_words: '', stream: true }), headers: direct.headers };
const viaStream = { path: '/v1/completions', body: JSON.stringify({ model: 'completions', prompt, max_tokens: 16, temperature: 0, stream: true }), headers: via.headers };
type Req = typeof direct;

/** Open loop: `rate` requests a second for `secs`; each one's time from its scheduled start to its end (or first byte). */
async function openLoop(origin: string, req: Req, r: number, secs: number, firstByte = false): Promise<{ ms: number[]; errors: number; lateMs: number }> {
  const pool = new Pool(origin, { connections: 512, pipelining: 1, keepAliveTimeout: 60_000 });
  const total = Math.round(r * secs);
  const ms: number[] = [];
  let errors = 0;
  let late = 0;
  const inflight: Promise<void>[] = [];
  const t0 = performance.now() + 20;
  let i = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + (i * 1000) / r <= now) {
        const due = t0 + (i * 1000) / r;
        late = Math.max(late, now - due);
        i++;
        inflight.push(
          (async () => {
            try {
              const res = await pool.request({ method: 'POST', path: req.path, headers: req.headers, body: req.body });
              if (firstByte) {
                for await (const _chunk of res.body) {
                  ms.push(performance.now() - due);
                  break;
                }
                await res.body.dump().catch(() => undefined);
              } else {
                await res.body.dump();
                ms.push(performance.now() - due);
              }
              if (res.statusCode !== 200) errors++;
            } catch {
              errors++;
            }
          })(),
        );
      }
      if (i < total) setTimeout(tick, 0);
      else done();
    };
    tick();
  });
  await Promise.all(inflight);
  await pool.close();
  return { ms, errors, lateMs: late };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

say(`upstream ${upstream}, gateway ${gateway}; warming up…`);
await openLoop(upstream, direct, Math.min(rate, 200), 2);
await openLoop(gateway, via, Math.min(rate, 200), 2);
const d: number[] = [];
const g: number[] = [];
let errors = 0;
let late = 0;
for (let round = 0; round < rounds; round++) {
  for (const [origin, req, into] of [
    [upstream, direct, d],
    [gateway, via, g],
  ] as const) {
    const res = await openLoop(origin, req, rate, seconds);
    into.push(...res.ms);
    errors += res.errors;
    late = Math.max(late, res.lateMs);
  }
  say(`round ${round + 1}/${rounds} done`);
}
const ds: number[] = [];
const gs: number[] = [];
for (const [origin, req, into] of [
  [upstream, directStream, ds],
  [gateway, viaStream, gs],
] as const) {
  const res = await openLoop(origin, req, streamRate, streamSeconds, true);
  into.push(...res.ms);
  errors += res.errors;
}
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await stopTriton?.();

const out = {
  node: process.version,
  cores: availableParallelism(),
  cpu: cpus()[0]?.model ?? 'unknown',
  loadAverage1m: r3(loadavg()[0]!),
  upstream: values.upstream ? values.upstream : 'tritonserver (echo repository)',
  rate,
  secondsPerRound: seconds,
  rounds,
  requests: d.length + g.length,
  errors,
  schedulerLateMaxMs: r3(late),
  directMs: { p50: r3(pct(d, 50)), p90: r3(pct(d, 90)), p99: r3(pct(d, 99)) },
  gatewayMs: { p50: r3(pct(g, 50)), p90: r3(pct(g, 90)), p99: r3(pct(g, 99)) },
  addedMs: { p50: r3(pct(g, 50) - pct(d, 50)), p99: r3(pct(g, 99) - pct(d, 99)) },
  stream: {
    rate: streamRate,
    seconds: streamSeconds,
    directFirstByteMs: { p50: r3(pct(ds, 50)), p99: r3(pct(ds, 99)) },
    gatewayFirstByteMs: { p50: r3(pct(gs, 50)), p99: r3(pct(gs, 99)) },
    addedMs: { p50: r3(pct(gs, 50) - pct(ds, 50)), p99: r3(pct(gs, 99) - pct(ds, 99)) },
  },
};
if (values.json) console.log(JSON.stringify(out, null, 2));
else {
  console.log(`${out.requests} completions at ${rate}/s open loop (${rounds} × ${seconds} s each way), ${out.cores} cores (${out.cpu}), load ${out.loadAverage1m}; ${errors} errors; upstream: ${out.upstream}`);
  console.log(`direct to Triton   p50 ${out.directMs.p50} ms  p90 ${out.directMs.p90} ms  p99 ${out.directMs.p99} ms`);
  console.log(`through gateway    p50 ${out.gatewayMs.p50} ms  p90 ${out.gatewayMs.p90} ms  p99 ${out.gatewayMs.p99} ms`);
  console.log(`added by gateway   p50 ${out.addedMs.p50} ms  p99 ${out.addedMs.p99} ms`);
  console.log(`streaming first byte at ${streamRate}/s: direct p50 ${out.stream.directFirstByteMs.p50} / p99 ${out.stream.directFirstByteMs.p99} ms, gateway p50 ${out.stream.gatewayFirstByteMs.p50} / p99 ${out.stream.gatewayFirstByteMs.p99} ms, added p50 ${out.stream.addedMs.p50} / p99 ${out.stream.addedMs.p99} ms`);
}
