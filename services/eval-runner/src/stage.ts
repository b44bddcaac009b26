/**
 * The eval stage (the stage contract of ARCHITECTURE.md): the suite and the eval model server's endpoint come
 * from the mounted config; completions are generated from that endpoint, executed in the sandbox and scored;
 * the report (JSON and HTML) and every sample's result go under the run's storage; a summary small enough for
 * the termination message goes to the controller, which reads gates from its metrics. A config it cannot use
 * is a terminal error (exit 2).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED_HUMANEVAL, readStageConfig, StageConfigError, storagePath, writeSummary, type Artifact, type MountedConfig, type SuiteValues } from '@kiln/stage';
import { BenchmarkError } from './benchmarks.ts';
import { createClient, type CompletionClient } from './client.ts';
import { renderHtml, stageSummary, type EvalReport, type EvalSummary } from './report.ts';
import { evaluate, EvalInputError, type Execute, type Progress } from './runner.ts';

/** A storage URI as a local path; a scheme the eval runner cannot reach as files is a config error. */
export const localPath = (uri: string, env: NodeJS.ProcessEnv = process.env): string => storagePath(uri, 'the eval runner', env);

/** Where a suite's benchmark is: its path, else the bundled HumanEval; MultiPL-E and custom suites need a path. */
export function benchmarkPath(suite: Pick<SuiteValues, 'name' | 'benchmark' | 'path'>, base = process.cwd()): string {
  if (suite.path) return suite.path.startsWith('/') ? suite.path : join(base, suite.path);
  if (suite.benchmark === 'humaneval') return BUNDLED_HUMANEVAL;
  throw new StageConfigError(`eval suite "${suite.name}" (${suite.benchmark}) has no path: kiln ships only HumanEval; set eval.suites[].path to the benchmark file or directory`);
}

/** The mounted eval config, validated against schemas/stages/eval.schema.json. */
export const readEvalConfig = (file: string): MountedConfig<'eval'> => readStageConfig('eval', file);

/** Writes report.json, report.html and results.jsonl under `dir`; returns them as artifacts (with digests). */
export function writeOutputs(dir: string, uriPrefix: string, report: EvalReport, results: readonly unknown[]): Artifact[] {
  mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [
    ['report.json', `${JSON.stringify(report, null, 2)}\n`],
    ['report.html', renderHtml(report)],
    ['results.jsonl', results.map((r) => JSON.stringify(r)).join('\n') + (results.length ? '\n' : '')],
  ];
  return files.map(([name, text]) => {
    writeFileSync(join(dir, name), text);
    return { name, uri: `${uriPrefix.replace(/\/+$/, '')}/${name}`, digest: `sha256:${createHash('sha256').update(text).digest('hex')}`, bytes: Buffer.byteLength(text) };
  });
}

export interface EvalStageOptions {
  readonly execute: Execute;
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: (m: string) => void;
  readonly onProgress?: (p: Progress) => void;
  /** Tests: a client instead of the one the config describes. */
  readonly client?: CompletionClient;
}

/** Runs the stage; returns the report and the summary it wrote to the termination log. */
export async function runEvalStage(configFile: string, opts: EvalStageOptions): Promise<{ report: EvalReport; summary: EvalSummary }> {
  const env = opts.env ?? process.env;
  const c = readEvalConfig(configFile);
  const out = localPath(c.output, env);
  const bench = benchmarkPath(c.suite);
  opts.log?.(`suite ${c.suite.name}: ${bench}, ${c.suite.samples} sample(s) per problem, ${c.suite.timeout_seconds} s per program`);
  if (!existsSync(bench)) throw new StageConfigError(`eval suite "${c.suite.name}": ${bench} does not exist`);
  const api = c.api ?? 'triton';
  const client =
    opts.client ??
    createClient({
      kind: api,
      url: c.endpoint,
      model: c.served_model ?? (api === 'triton' ? 'ensemble' : 'model'),
      onRetry: (e) => opts.log?.(`retrying ${e.url} in ${Math.round(e.delayMs)} ms: ${e.error.message}`),
    });
  let r;
  try {
    r = await evaluate({ suite: c.suite, benchmark: bench, client, execute: opts.execute, fimSentinels: c.fim_sentinels ?? null, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  } catch (e) {
    // A benchmark that does not load, or a suite that cannot be asked of this model, will not load on a retry.
    if (e instanceof BenchmarkError || e instanceof EvalInputError) throw new StageConfigError(e.message);
    throw e;
  }
  for (const w of r.warnings) opts.log?.(`warning: ${w}`);
  const artifacts = writeOutputs(out, c.output, r.report, r.results);
  const summary = stageSummary(r.report, { artifacts });
  writeSummary(summary, env);
  return { report: r.report, summary };
}
