/** How a CLI command that runs as a pipeline stage (`--config`) ends on a config it cannot use. */
import { StageConfigError, TERMINAL_EXIT, writeSummary } from '@kiln/stage';
import type { Io } from './io.ts';

/**
 * A `StageConfigError` becomes the stage's terminal exit: said on stderr and, as `{"error": …}`, in the
 * termination message, so the controller fails the run with these words and does not retry. Anything else
 * is rethrown.
 */
export function stageConfigFailure(command: string, e: unknown, io: Io): number {
  if (!(e instanceof StageConfigError)) throw e;
  io.err(`${command}: ${e.message}`);
  writeSummary({ error: e.message });
  return TERMINAL_EXIT;
}
