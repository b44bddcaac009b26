/** Where a command writes; tests pass their own to capture output. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readonly isTTY: boolean;
  readonly color: boolean;
}

export const EXIT = { ok: 0, invalid: 1, usage: 2, internal: 3 } as const;

/** Thrown for bad command-line use; printed with the command's usage, exit code 2. */
export class UsageError extends Error {}
