/**
 * Throughput of the sandbox + Python executor:
 *
 *   node services/eval-runner/scripts/sandbox-bench.ts [samples] [concurrency] [--humaneval]
 *
 * Runs trivial HumanEval-shaped Python samples (a function, a check, the call), or with --humaneval the 164
 * HumanEval canonical solutions with their tests (repeated up to `samples`), and prints samples per second, the
 * isolation mode it ran under, and how many passed (all must).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { execute, toolchains } from '../src/executors.ts';
import { Sandbox } from '../src/sandbox.ts';

const args = process.argv.slice(2);
const humaneval = args.includes('--humaneval');
const [samplesArg, concurrencyArg] = args.filter((a) => !a.startsWith('--'));
const samples = Number(samplesArg ?? 200);
const concurrency = Number(concurrencyArg ?? os.availableParallelism());

let programs: string[];
if (humaneval) {
  const file = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
  programs = gunzipSync(readFileSync(file))
    .toString('utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { prompt: string; canonical_solution: string; test: string; entry_point: string })
    .map((r) => `${r.prompt}${r.canonical_solution}\n\n${r.test}\n\ncheck(${r.entry_point})\n`);
} else {
  programs = Array.from(
    { length: 50 },
    (_, i) => `from typing import List\n\ndef add(xs: List[int]) -> int:\n    return sum(xs) + ${i}\n\n\ndef check(candidate):\n    assert candidate([1, 2, 3]) == ${6 + i}\n    assert candidate([]) == ${i}\n\ncheck(add)\n`,
  );
}

const tc = await toolchains();
if (!tc.python.available) throw new Error(tc.python.reason);
const sandbox = await Sandbox.create({ concurrency });
const d = sandbox.describe();
console.log(`isolation: ${d.mode} (network ${d.network}, user ${d.user}, pid ${d.pid}, filesystem ${d.filesystem}); python ${tc.python.version} at ${tc.python.commands?.python}`);
await execute(sandbox, 'python', programs[0]!); // warm-up (exposes the toolchain)
const started = performance.now();
let next = 0;
let passed = 0;
const failures: string[] = [];
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < samples) {
      const i = next++;
      const o = await execute(sandbox, 'python', programs[i % programs.length]!);
      if (o.status === 'passed') passed++;
      else failures.push(`#${i % programs.length}: ${o.status} ${o.reason}`);
    }
  }),
);
const s = (performance.now() - started) / 1000;
console.log(`${samples} ${humaneval ? 'HumanEval canonical' : 'trivial'} samples, concurrency ${concurrency}: ${(samples / s).toFixed(1)} samples/s (${((s * 1000) / samples).toFixed(1)} ms each), ${passed} passed`);
if (failures.length) console.log(failures.slice(0, 10).join('\n'));
await sandbox.close();
