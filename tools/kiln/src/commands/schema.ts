import { writeFileSync } from 'node:fs';
import { SCHEMA } from '@kiln/spec';
import { EXIT, UsageError, type Io } from './io.ts';

export function runSchema(values: Record<string, unknown>, _positionals: string[], io: Io): number {
  const text = JSON.stringify(SCHEMA, null, 2);
  const out = values.out as string | undefined;
  if (out === undefined) {
    io.out(text);
    return EXIT.ok;
  }
  try {
    writeFileSync(out, text + '\n');
  } catch (e) {
    throw new UsageError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  io.err(`wrote ${out}`);
  return EXIT.ok;
}
