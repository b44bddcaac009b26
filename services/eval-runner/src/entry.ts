/**
 * The eval stage's entry, shared by its two doors: the service's own `kiln-eval-runner` (what a stage image
 * runs, `bin/kiln-eval-runner.js`) and `kiln eval run --config` (the CLI). Both parse the same arguments into
 * these functions and exit with what they return.
 */
import { parseArgs } from 'node:util';
import { stageConfigFailure, type EntryIo } from '@kiln/stage';
import { executorFor } from './executors.ts';
import type { Progress } from './runner.ts';
import { Sandbox } from './sandbox.ts';
import { runEvalStage } from './stage.ts';

export type { EntryIo };

/** Opens a sandbox and says on stderr how this machine isolates it, with what it leaves uncontained. */
export async function openSandbox(opts: { readonly command: string; readonly io: EntryIo; readonly concurrency?: number; readonly timeoutMs?: number }): Promise<Sandbox> {
  const { concurrency, timeoutMs, io } = opts;
  const sandbox = await Sandbox.create({ ...(concurrency ? { concurrency } : {}), ...(timeoutMs ? { limits: { timeoutMs } } : {}) });
  const d = sandbox.describe();
  io.err(`${opts.command}: sandbox: ${d.mode} isolation (network ${d.network}, ${d.user}, pid ${d.pid}, filesystem ${d.filesystem}, python ${d.pythonSteps}), ${d.concurrency} at a time${timeoutMs ? `, ${timeoutMs} ms per program` : ''}`);
  for (const w of d.warnings) io.err(`${opts.command}: warning: ${w}`);
  return sandbox;
}

/** Progress on stderr, at most every 2 s (and at the end). */
export function progressLog(command: string, io: EntryIo): (p: Progress) => void {
  const t0 = Date.now();
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 2000 && p.executed < p.total) return;
    last = now;
    const secs = (now - t0) / 1000;
    io.err(`${command}: ${p.generated}/${p.total} generated, ${p.executed}/${p.total} executed, ${p.passed} passed (${(p.executed / Math.max(secs, 0.001)).toFixed(1)} programs/s)`);
  };
}

/**
 * The eval stage from its mounted config; prints the summary on stdout. Returns the exit code: 0, or 2 for a
 * config or benchmark the stage cannot use (said on stderr and in the termination message, never retried).
 * Anything else is thrown.
 */
export async function evalStage(config: string, opts: { readonly io: EntryIo; readonly command?: string; readonly concurrency?: number }): Promise<number> {
  const command = opts.command ?? 'kiln-eval-runner';
  const { io } = opts;
  // The suite's timeout reaches every program through the runner; the sandbox's own is only a default.
  const sandbox = await openSandbox({ command, io, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  try {
    const { summary } = await runEvalStage(config, { execute: executorFor(sandbox), log: (m) => io.err(`${command}: ${m}`), onProgress: progressLog(command, io) });
    io.out(JSON.stringify(summary));
    return 0;
  } catch (e) {
    return stageConfigFailure(command, e, io);
  } finally {
    await sandbox.close();
  }
}

export const USAGE = `Usage: kiln-eval-runner --config stage.json [--concurrency N]

The eval stage of a kiln pipeline, as its Job runs it: generates completions for the config's suite from the
eval model server, runs them in the sandbox, scores pass@k, writes report.json, report.html and
results.jsonl under the run's storage, and the summary (with the metrics gates read) to stdout and the
termination message. For evals by hand, use \`kiln eval score\` or \`kiln eval run\`.

Options:
  --config FILE       the stage config (/etc/kiln/stage.json in the pipeline)
  --concurrency N     programs run at once (default: one per core)
  -h, --help          this help

Exit codes: 0 done; 2 a config or benchmark the stage cannot use, or bad arguments; 3 any other error (an
endpoint that keeps failing: the controller retries).`;

/** `kiln-eval-runner`'s command line. Returns the exit code; an error other than the config's is thrown. */
export async function main(argv: readonly string[], io: EntryIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { config: { type: 'string' }, concurrency: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (e) {
    io.err(`kiln-eval-runner: ${(e as Error).message.replace(/\. To specify a positional.*$/s, '')}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (values.config === undefined) {
    io.err(`kiln-eval-runner: --config FILE is required\n${USAGE}`);
    return 2;
  }
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    io.err(`kiln-eval-runner: --concurrency takes a whole number ≥ 1, not "${values.concurrency}"\n${USAGE}`);
    return 2;
  }
  return evalStage(values.config, { io, ...(concurrency ? { concurrency } : {}) });
}
