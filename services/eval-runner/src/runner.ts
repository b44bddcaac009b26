/**
 * One eval suite, end to end: read the benchmark, get completions (from a model endpoint, or a samples file
 * made elsewhere), assemble each with the problem's tests, execute it in the sandbox, and score pass@k.
 * Generation and execution overlap: a problem's programs start running as soon as its completions arrive,
 * while other prompts are still being generated.
 */
import type { Suite } from '@kiln/spec';
import { assemble, canonicalLanguage, fimPrompt, readBenchmark } from './benchmarks.ts';
import type { CompletionClient } from './client-base.ts';
import { buildReport, type EvalReport } from './report.ts';
import type { ProblemOutcomes } from './passk.ts';
import type { Completion, Language, Outcome, Problem } from './types.ts';

/** The suite as the spec writes it (libs/spec `Suite`); `languages`, `fim` and `path` are optional here. */
export type SuiteSettings = Pick<Suite, 'name' | 'benchmark' | 'samples' | 'temperature' | 'top_p' | 'max_new_tokens' | 'k' | 'timeout_seconds'> & Partial<Pick<Suite, 'languages' | 'fim'>>;

/** Runs one program; the sandbox's executors implement it. */
export type Execute = (language: Language, program: string, opts: { readonly timeoutMs: number }) => Promise<Outcome>;

export interface Progress {
  readonly generated: number;
  readonly executed: number;
  /** Programs to run in all: problems × samples. */
  readonly total: number;
  readonly passed: number;
}

export interface EvaluateOptions {
  /** The suite; without `benchmark` (the format), it is detected from the benchmark itself (`readBenchmark`). */
  readonly suite: Omit<SuiteSettings, 'benchmark'> & { readonly benchmark?: SuiteSettings['benchmark'] };
  /** The benchmark file or directory. */
  readonly benchmark: string;
  readonly execute: Execute;
  /** Generation: a model endpoint. Exactly one of client and samples. */
  readonly client?: CompletionClient;
  /** Offline scoring: completions produced elsewhere (HumanEval's samples format). */
  readonly samples?: readonly Completion[];
  /** FIM sentinels for infilling problems (the spec's tokenizer.fim_sentinels). */
  readonly fimSentinels?: { readonly prefix: string; readonly middle: string; readonly suffix: string } | null;
  /** Only the first N problems (smoke runs). */
  readonly limit?: number;
  readonly model?: string;
  readonly onProgress?: (p: Progress) => void;
  readonly signal?: AbortSignal;
}

export interface EvaluateResult {
  readonly report: EvalReport;
  /** Every completion with its outcome, in problem order (written as samples_results.jsonl). */
  readonly results: readonly { readonly task_id: string; readonly completion: string; readonly status: Outcome['status']; readonly reason: string; readonly durationMs: number }[];
  readonly warnings: readonly string[];
}

/** A clear error about the inputs (not the model): unknown task ids, no problems, a suite without a client. */
export class EvalInputError extends Error {}

export async function evaluate(o: EvaluateOptions): Promise<EvaluateResult> {
  if ((o.client === undefined) === (o.samples === undefined)) throw new EvalInputError('give either a model endpoint to generate completions or a samples file to score, not both or neither');
  const startedAt = new Date();
  const langs = o.suite.languages ?? [];
  const benchmark = await readBenchmark(o.benchmark, o.suite.benchmark !== undefined ? { format: o.suite.benchmark } : {});
  let problems: Problem[] = benchmark.problems;
  // A suite's languages narrow a multi-language benchmark; HumanEval is Python whatever the list says.
  if (langs.length && benchmark.format !== 'humaneval') {
    const wanted = new Set(langs.map(canonicalLanguage));
    problems = problems.filter((p) => wanted.has(p.language));
  }
  if (o.limit !== undefined) problems = problems.slice(0, o.limit);
  if (problems.length === 0) throw new EvalInputError(`${o.benchmark}: no problems${langs.length ? ` in ${langs.join(', ')}` : ''}`);
  const warnings: string[] = [];

  // What to run: per problem, its completions (all known up front when scoring samples).
  let given: Map<string, string[]> | undefined;
  if (o.samples) {
    given = new Map();
    const known = new Set(problems.map((p) => p.id));
    const unknown = new Set<string>();
    for (const s of o.samples) {
      if (!known.has(s.taskId)) {
        unknown.add(s.taskId);
        continue;
      }
      let list = given.get(s.taskId);
      if (!list) given.set(s.taskId, (list = []));
      list.push(s.completion);
    }
    if (unknown.size) throw new EvalInputError(`the samples name ${unknown.size} task id(s) the benchmark does not have: ${[...unknown].slice(0, 5).join(', ')}${unknown.size > 5 ? ', …' : ''}; are they for another benchmark?`);
    const missing = problems.filter((p) => !given!.has(p.id));
    if (missing.length === problems.length) throw new EvalInputError('the samples cover none of the benchmark\'s problems');
    if (missing.length) {
      warnings.push(`${missing.length} of ${problems.length} problems have no samples and are left out (e.g. ${missing.slice(0, 3).map((p) => p.id).join(', ')})`);
      problems = problems.filter((p) => given!.has(p.id));
    }
  }

  const total = given ? [...given.values()].reduce((a, l) => a + l.length, 0) : problems.length * o.suite.samples;
  let generated = given ? total : 0;
  let executed = 0;
  let passed = 0;
  const tick = () => o.onProgress?.({ generated, executed, total, passed });
  const timeoutMs = Math.round(o.suite.timeout_seconds * 1000);
  let generationMs = 0;

  const runProblem = async (p: Problem): Promise<ProblemOutcomes> => {
    let completions: string[];
    if (given) completions = given.get(p.id)!;
    else {
      const t = performance.now();
      const fim = p.suffix !== undefined;
      if (fim && !o.fimSentinels) throw new EvalInputError(`${p.id} is an infilling problem but the tokenizer has no FIM sentinels (tokenizer.fim_sentinels)`);
      completions = await o.client!.generate({
        prompt: fim ? fimPrompt(p, o.fimSentinels!) : p.prompt,
        n: o.suite.samples,
        temperature: o.suite.temperature,
        topP: o.suite.top_p,
        maxNewTokens: o.suite.max_new_tokens,
        stop: p.stop,
        ...(o.signal ? { signal: o.signal } : {}),
      });
      generationMs += performance.now() - t;
      generated += completions.length;
      tick();
    }
    const outcomes = await Promise.all(
      completions.map(async (c) => {
        const out = await o.execute(p.language, assemble(p, c), { timeoutMs });
        executed++;
        if (out.status === 'passed') passed++;
        tick();
        return out;
      }),
    );
    return { id: p.id, language: p.language, outcomes, completions };
  };

  // Every problem at once: the client bounds requests in flight and the sandbox bounds programs running.
  const results = await Promise.all(problems.map(runProblem));
  const report = buildReport({
    suite: o.suite.name,
    benchmark: benchmark.format,
    ks: o.suite.k,
    results,
    samples: given ? Math.max(...results.map((r) => r.outcomes.length)) : o.suite.samples,
    ...(o.model ? { model: o.model } : {}),
    startedAt,
    finishedAt: new Date(),
    ...(given ? {} : { generationMs: Math.round(generationMs) }),
  });
  return {
    report,
    results: results.flatMap((r) => r.outcomes.map((out, i) => ({ task_id: r.id, completion: r.completions![i]!, status: out.status, reason: out.reason, durationMs: out.durationMs }))),
    warnings,
  };
}
