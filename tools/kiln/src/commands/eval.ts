/**
 * `kiln eval score` (completions made elsewhere), `kiln eval run` (generate from an endpoint, or a spec's
 * suites, or as the pipeline's eval stage) and `kiln eval toolchains` (what this machine can execute).
 */
import { basename, dirname, resolve } from 'node:path';
import { formatDiagnostics, load } from '@kiln/spec';
import type { EvaluateOptions } from '@kiln/eval-runner';
import { suggestion } from '../args.ts';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { formatGateChecks } from '../render/eval.ts';

export const command: Command = {
  usage: 'kiln eval score --benchmark FILE --samples FILE [--k 1,10,100] [--json] [--output DIR]\n       kiln eval run (--endpoint URL [--api openai|triton] [--model M] (--benchmark FILE | --spec kiln.yaml [--stack S] [--suite NAME])) [--json] [--output DIR] | --config stage.json\n       kiln eval toolchains [--json]',
  help: `Executes completions against a benchmark's tests, each program in a sandbox (its own process group
and temp dir, a wall-clock timeout, CPU, memory, process, file-size and output limits, no network where the
machine allows a network namespace), and computes pass@k with the unbiased estimator (Chen et al. 2021)
per problem, language and suite. A sample passes only if its program ran the checks to the end.

kiln eval score: completions made elsewhere, in HumanEval's samples format ({"task_id", "completion"} per
line, .jsonl or .jsonl.gz). Benchmarks: HumanEval (jsonl, jsonl.gz), MultiPL-E records, or a custom suite
(docs/eval.md).
kiln eval run: generates completions from an OpenAI-style completions endpoint (/v1/completions) or Triton's
generate endpoint, then scores them. With --spec, runs the spec's eval suites with their sampling settings;
with --stack, also checks that stack's gates (exit 1 if one fails).
kiln eval toolchains: which languages this machine can execute, and how the sandbox is isolated here.

Options:
  --benchmark FILE        a HumanEval, MultiPL-E or custom-suite file or directory
  --format F              humaneval, multipl-e or custom (default: detected)
  --samples FILE          score: the completions
  --k LIST                pass@k to report (score default 1,10,100: each only where every problem has n ≥ k)
  --timeout S             seconds per program (default 3)
  --concurrency N         programs at once (default: the number of cores)
  --endpoint URL          run: the model server
  --api openai|triton     run: its API (default openai)
  --model NAME            run: the served model (default: ensemble for Triton)
  --api-key-env VAR       run: send the key in this environment variable as a bearer token
  --samples-per-problem N, --temperature T, --top-p P, --max-new-tokens N
                        run without --spec: sampling (default 1 sample, greedy, 512 tokens)
  --spec FILE, --stack S, --suite NAME
                        run: the spec's suites (or one of them) and that stack's gates
  --limit N               run: only the first N problems
  --output DIR            write report.json, report.html and results.jsonl (every sample's outcome)
  --json                  the report as JSON on stdout (pass@k per k, per language, per problem)
  --config FILE           run as the pipeline's eval stage: config from FILE, summary to the termination log

Exit codes: 0 ok, 1 bad input, an endpoint that fails, or a gate that fails, 2 usage or stage config error.`,
  options: {
    ...common,
    benchmark: { type: 'string' }, format: { type: 'string' }, samples: { type: 'string' }, k: { type: 'string' }, timeout: { type: 'string' }, concurrency: { type: 'string' },
    endpoint: { type: 'string' }, api: { type: 'string' }, model: { type: 'string' }, 'api-key-env': { type: 'string' }, 'samples-per-problem': { type: 'string' }, temperature: { type: 'string' },
    'top-p': { type: 'string' }, 'max-new-tokens': { type: 'string' }, spec: { type: 'string' }, stack: { type: 'string' }, suite: { type: 'string' }, limit: { type: 'string' },
    output: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' },
  },
  allowPositionals: true,
  run: runEval,
};

type Runner = typeof import('@kiln/eval-runner');

const SUBCOMMANDS = ['score', 'run', 'toolchains'];

function ks(v: unknown, fallback: readonly number[]): number[] {
  if (v === undefined) return [...fallback];
  const list = String(v).split(',').map((x) => Number(x.trim()));
  if (!list.length || list.some((k) => !Number.isInteger(k) || k < 1)) throw new UsageError(`--k takes positive integers separated by commas (1,10,100), not "${String(v)}"`);
  return list;
}

const FORMATS = ['humaneval', 'multipl-e', 'custom'] as const;

/** `--format`, when given; left out, the eval runner detects the format from the benchmark. */
function format(v: unknown): { benchmark?: (typeof FORMATS)[number] } {
  if (v === undefined) return {};
  const f = String(v);
  if (!(FORMATS as readonly string[]).includes(f)) throw new UsageError(`--format is ${FORMATS.join(', ')} (or left out to detect it), not "${f}"`);
  return { benchmark: f as (typeof FORMATS)[number] };
}

function num(v: unknown, name: string, fallback: number, check: (n: number) => boolean = (n) => n > 0): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} takes a number, not "${String(v)}"`);
  return n;
}

const concurrencyOf = (values: Record<string, unknown>) => (values.concurrency !== undefined ? { concurrency: num(values.concurrency, 'concurrency', 1, (n) => Number.isInteger(n) && n >= 1) } : {});

function sandboxFor(er: Runner, values: Record<string, unknown>, timeoutMs: number | undefined, io: Io) {
  return er.openSandbox({ command: 'kiln eval', io, ...concurrencyOf(values), ...(timeoutMs ? { timeoutMs } : {}) });
}

const progress = (er: Runner, io: Io) => er.progressLog('kiln eval', io);

function writeOutput(er: Runner, values: Record<string, unknown>, report: import('@kiln/eval-runner').EvalReport, results: readonly unknown[], io: Io): void {
  if (values.output === undefined) return;
  const dir = resolve(String(values.output));
  const files = er.writeOutputs(dir, `file://${dir}`, report, results);
  io.err(`kiln eval: wrote ${files.map((f) => f.name).join(', ')} to ${dir}`);
}

export async function runEval(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  const sub = pos[0];
  if (!sub || !SUBCOMMANDS.includes(sub) || pos.length !== 1) throw new UsageError(sub ? `unknown eval command "${pos.join(' ')}"; the commands are: kiln eval score, kiln eval run, kiln eval toolchains${suggestion(sub, SUBCOMMANDS)}` : 'missing subcommand: kiln eval score, run or toolchains');
  const er = await import('@kiln/eval-runner');
  if (sub === 'toolchains') return toolchainsCmd(er, values, io);
  if (sub === 'run' && values.config !== undefined) return runAsStage(er, String(values.config), values, io);
  try {
    return sub === 'score' ? await score(er, values, io) : await run(er, values, io);
  } catch (e) {
    if (e instanceof er.BenchmarkError || e instanceof er.EvalInputError || e instanceof er.EndpointError) {
      io.err(`kiln eval: ${e.message}`);
      return EXIT.invalid;
    }
    throw e;
  }
}

async function toolchainsCmd(er: Runner, values: Record<string, unknown>, io: Io): Promise<number> {
  const tc = await er.toolchains();
  const sandbox = await er.Sandbox.create({});
  const iso = sandbox.describe();
  await sandbox.close();
  if (values.json) {
    io.out(JSON.stringify({ toolchains: tc, sandbox: iso }, null, 2));
    return EXIT.ok;
  }
  for (const [lang, t] of Object.entries(tc)) io.out(`${lang.padEnd(11)} ${t.available ? `yes  ${t.version ?? ''}` : `no   ${t.reason ?? ''}`}`);
  io.out(`sandbox: ${iso.mode} (network ${iso.network}, ${iso.user}, pid ${iso.pid}, filesystem ${iso.filesystem}); limits: ${iso.limits.join(', ')}`);
  for (const w of iso.warnings) io.out(`  warning: ${w}`);
  return EXIT.ok;
}

function print(er: Runner, values: Record<string, unknown>, report: import('@kiln/eval-runner').EvalReport, warnings: readonly string[], io: Io): void {
  for (const w of warnings) io.err(`kiln eval: warning: ${w}`);
  if (values.json) io.out(JSON.stringify(report, null, 2));
  else io.out(er.renderTable(report));
}

/** A suite without --suite is named after its benchmark file or directory: `HumanEval.jsonl.gz` → `humaneval`, `humaneval-js.jsonl` → `humaneval-js`. */
export function suiteName(benchmark: string): string {
  return basename(benchmark.replace(/\/+$/, '')).replace(/\.(jsonl|json)(\.gz|\.zst)?$/i, '').toLowerCase() || 'eval';
}

async function score(er: Runner, values: Record<string, unknown>, io: Io): Promise<number> {
  const benchmark = values.benchmark as string | undefined;
  const samplesFile = values.samples as string | undefined;
  if (!benchmark || !samplesFile) throw new UsageError('kiln eval score needs --benchmark <file or custom suite directory> and --samples <samples.jsonl>');
  const k = ks(values.k, [1, 10, 100]);
  const formatted = format(values.format);
  const timeoutMs = Math.round(num(values.timeout, 'timeout', 3) * 1000);
  const samples = await er.loadSamples(resolve(samplesFile));
  const sandbox = await sandboxFor(er, values, timeoutMs, io);
  try {
    const suite = { name: values.suite ? String(values.suite) : suiteName(benchmark), ...formatted, samples: 0, temperature: 0, top_p: 1, max_new_tokens: 0, k, timeout_seconds: timeoutMs / 1000 };
    const r = await er.evaluate({ suite, benchmark: resolve(benchmark), samples, execute: er.executorFor(sandbox), onProgress: progress(er, io) });
    writeOutput(er, values, r.report, r.results, io);
    print(er, values, r.report, r.warnings, io);
    return EXIT.ok;
  } finally {
    await sandbox.close();
  }
}

async function run(er: Runner, values: Record<string, unknown>, io: Io): Promise<number> {
  const endpoint = values.endpoint as string | undefined;
  if (!endpoint) throw new UsageError('kiln eval run needs --endpoint URL (an OpenAI-style completions server or Triton); or --config stage.json as the pipeline stage');
  const api = (values.api as string | undefined) ?? 'openai';
  if (api !== 'openai' && api !== 'triton') throw new UsageError(`--api is openai or triton, not "${api}"`);
  const limit = values.limit !== undefined ? num(values.limit, 'limit', 1, (n) => Number.isInteger(n) && n >= 1) : undefined;
  // The suites: one from the flags, or the spec's (with its gates for --stack).
  let suites: { suite: EvaluateOptions['suite']; benchmark: string }[];
  let gates: import('@kiln/spec').Gate[] = [];
  let fim: { prefix: string; middle: string; suffix: string } | null = null;
  const spec = values.spec as string | undefined;
  if (spec) {
    const r = load(spec, values.stack !== undefined ? { stack: String(values.stack) } : {});
    if (!r.spec) {
      io.err(formatDiagnostics(r.diagnostics, { sources: r.sources, color: io.color }));
      return EXIT.invalid;
    }
    const wanted = values.suite as string | undefined;
    const chosen = r.spec.eval.suites.filter((s) => !wanted || s.name === wanted);
    if (!chosen.length) throw new UsageError(`the spec has no eval suite "${wanted}"; it has: ${r.spec.eval.suites.map((s) => s.name).join(', ')}`);
    try {
      suites = chosen.map((s) => ({ suite: s, benchmark: er.benchmarkPath(s, dirname(resolve(spec))) }));
    } catch (e) {
      io.err(`kiln eval: ${(e as Error).message}`);
      return EXIT.invalid;
    }
    if (values.stack !== undefined) gates = [...(r.spec.eval.gates[String(values.stack)] ?? [])];
    fim = r.spec.tokenizer.fim_sentinels ?? null;
  } else {
    const benchmark = values.benchmark as string | undefined;
    if (!benchmark) throw new UsageError('give --benchmark FILE (and the sampling flags), or --spec kiln.yaml to run its eval suites');
    const samples = num(values['samples-per-problem'], 'samples-per-problem', 1, (n) => Number.isInteger(n) && n >= 1);
    const suite: EvaluateOptions['suite'] = {
      name: values.suite ? String(values.suite) : 'eval',
      ...format(values.format),
      languages: [],
      samples,
      temperature: num(values.temperature, 'temperature', samples > 1 ? 0.2 : 0, (n) => n >= 0),
      top_p: num(values['top-p'], 'top-p', 0.95, (n) => n > 0 && n <= 1),
      max_new_tokens: num(values['max-new-tokens'], 'max-new-tokens', 512),
      k: ks(values.k, [1]),
      timeout_seconds: num(values.timeout, 'timeout', 3),
      fim: false,
    };
    suites = [{ suite, benchmark: resolve(benchmark) }];
  }
  const client = er.createClient({
    kind: api,
    url: endpoint,
    model: (values.model as string | undefined) ?? (api === 'triton' ? 'ensemble' : 'model'),
    ...(values['api-key-env'] ? { apiKeyEnv: String(values['api-key-env']) } : {}),
    onRetry: (e) => io.err(`kiln eval: retrying in ${Math.round(e.delayMs)} ms: ${e.error.message}`),
  });
  const timeoutMs = Math.max(...suites.map((s) => s.suite.timeout_seconds)) * 1000;
  const sandbox = await sandboxFor(er, values, timeoutMs, io);
  const reports = [];
  try {
    for (const { suite, benchmark } of suites) {
      io.err(`kiln eval: suite ${suite.name}: ${benchmark}, ${suite.samples} sample(s) per problem at temperature ${suite.temperature}`);
      const r = await er.evaluate({ suite, benchmark, client, fimSentinels: fim, ...(limit ? { limit } : {}), execute: er.executorFor(sandbox), onProgress: progress(er, io), model: client.model });
      if (suites.length > 1 && values.output !== undefined) writeOutput(er, { output: resolve(String(values.output), suite.name) }, r.report, r.results, io);
      else writeOutput(er, values, r.report, r.results, io);
      for (const w of r.warnings) io.err(`kiln eval: warning: ${w}`);
      reports.push(r.report);
      if (!values.json) io.out(er.renderTable(r.report));
    }
  } finally {
    await sandbox.close();
  }
  const verdicts = reports.flatMap((rep) => er.gateVerdicts(rep, gates.filter((g) => g.suite === rep.suite)));
  if (values.json) io.out(JSON.stringify(reports.length === 1 && !gates.length ? reports[0] : { reports, gates: verdicts }, null, 2));
  else if (gates.length) {
    io.out(formatGateChecks(String(values.stack), verdicts));
  }
  return verdicts.some((v) => v.passed !== true) ? EXIT.invalid : EXIT.ok;
}

/** As the pipeline's eval stage, through the service's own stage entry (the one `kiln-eval-runner` runs). */
function runAsStage(er: Runner, config: string, values: Record<string, unknown>, io: Io): Promise<number> {
  return er.evalStage(config, { io, command: 'kiln eval', ...concurrencyOf(values) });
}
