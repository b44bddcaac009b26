/**
 * Exit codes of a stage's container. The controller and the Job's podFailurePolicy read them: a terminal exit
 * fails the Job at once, any other non-zero exit is retried (up to the stage's `maxAttempts`).
 */
export const TERMINAL_EXIT = 2;

/** A config (or input) the stage cannot use: no retry fixes it, so the stage exits `TERMINAL_EXIT`. */
export class StageConfigError extends Error {
  override readonly name = 'StageConfigError';
}
