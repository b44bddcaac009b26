/** Where a command writes; tests pass their own to capture output. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Standard output as it comes, no newline added (a completion streamed token by token); absent, a command writes whole lines with `out`. */
  readonly write?: (text: string) => void;
  /** A status line on standard error redrawn in place (a progress bar); `''` clears it. Only where standard error is a terminal. */
  readonly status?: (text: string) => void;
  readonly isTTY: boolean;
  readonly color: boolean;
}

export const EXIT = { ok: 0, invalid: 1, usage: 2, internal: 3 } as const;

/** Thrown for bad command-line use; printed with the command's usage, exit code 2. */
export class UsageError extends Error {}
