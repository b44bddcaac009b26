/** What each command module exports: its usage, help and options, and what it runs. cli.ts holds only their names and summaries. */
import type { ParseArgsConfig } from 'node:util';
import type { Io } from './io.ts';

export interface Command {
  readonly usage: string;
  readonly help: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly allowPositionals: boolean;
  run(values: Record<string, unknown>, positionals: string[], io: Io): number | Promise<number>;
}

/** Options every command takes. */
export const common = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
  'no-color': { type: 'boolean' },
} as const;
