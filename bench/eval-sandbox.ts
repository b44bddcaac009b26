/**
 * Samples executed per second for HumanEval (Python), N samples per problem, sandbox on, on this machine's
 * cores. Each problem gets its canonical solution and wrong completions in turn (a wrong return value, and a
 * syntax error), so passing and failing programs are both timed, as a real model's samples would be.
 * Run: `node bench/eval-sandbox.ts [--samples 20] [--problems 164] [--concurrency N] [--json]`. Prints figures; asserts nothing.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { evaluate, execute, loadBenchmark, Sandbox } from '@kiln/eval-runner';

const { values } = parseArgs({ options: { samples: { type: 'string' }, problems: { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'boolean' } } });
const n = Number(values.samples ?? 20);
const benchmark = fileURLToPath(new URL('../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
const problems = (await loadBenchmark(benchmark)).slice(0, Number(values.problems ?? 164));
const wrong = ['    return None\n', '    return (\n'];
const samples = problems.flatMap((p) => Array.from({ length: n }, (_, i) => ({ taskId: p.id, completion: i % 2 === 0 ? p.canonical! : wrong[(i >> 1) % 2]! })));
const sandbox = await Sandbox.create({ ...(values.concurrency ? { concurrency: Number(values.concurrency) } : {}), limits: { timeoutMs: 3000 } });
const iso = sandbox.describe();
const t0 = performance.now();
const r = await evaluate({
  suite: { name: 'humaneval', benchmark: 'humaneval', samples: n, temperature: 0.2, top_p: 0.95, max_new_tokens: 0, k: [1, 10], timeout_seconds: 3 },
  benchmark,
  samples,
  execute: (lang, program, o) => execute(sandbox, lang, program, o),
  limit: problems.length,
});
const secs = (performance.now() - t0) / 1000;
await sandbox.close();
const passed = r.results.filter((x) => x.status === 'passed').length;
const out = {
  node: process.version,
  cores: availableParallelism(),
  concurrency: iso.concurrency,
  isolation: iso.mode,
  network: iso.network,
  problems: problems.length,
  samplesPerProblem: n,
  samples: samples.length,
  passed,
  expectedPassed: problems.length * Math.ceil(n / 2),
  seconds: +secs.toFixed(1),
  samplesPerSecond: +(samples.length / secs).toFixed(1),
  passAt1: r.report.passAtK['pass@1'] ?? null,
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
};
if (values.json) console.log(JSON.stringify(out, null, 2));
else {
  console.log(`HumanEval (Python), ${out.problems} problems × ${n} samples = ${out.samples} programs, sandbox ${out.isolation} (network ${out.network}), ${out.concurrency} at a time on ${out.cores} cores`);
  console.log(`${out.samplesPerSecond} samples/s (${out.seconds}s); ${passed} passed (${out.expectedPassed} canonical); peak RSS of the runner ${out.peakRssMiB} MiB`);
}
