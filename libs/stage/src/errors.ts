import { writeSummary } from './summary.ts';

/**
 * Exit codes of a stage's container. The controller and the Job's podFailurePolicy read them: a terminal exit
 * fails the Job at once, any other non-zero exit is retried (up to the stage's `maxAttempts`).
 */
export const TERMINAL_EXIT = 2;

/** A config (or input) the stage cannot use: no retry fixes it, so the stage exits `TERMINAL_EXIT`. */
export class StageConfigError extends Error {
  override readonly name = 'StageConfigError';
}

/** Where a stage's entry point writes: stdout for the summary, stderr for progress and errors. */
export interface EntryIo {
  out(text: string): void;
  err(text: string): void;
}

/**
 * A `StageConfigError` as the stage's terminal exit: said on stderr and, as `{"error": …}`, in the termination
 * message (`write`, by default the pod's), so the controller fails the run with these words and does not retry.
 * Anything else is rethrown. Every stage entry point (each worker's bin, the CLI's `--config` doors) ends this way.
 */
export function stageConfigFailure(command: string, e: unknown, io: Pick<EntryIo, 'err'>, write: (summary: { error: string }) => unknown = writeSummary): number {
  if (!(e instanceof StageConfigError)) throw e;
  io.err(`${command}: ${e.message}`);
  write({ error: e.message });
  return TERMINAL_EXIT;
}
