import { writeFileSync } from 'node:fs';
import { SCHEMA } from '@kiln/spec';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';

export const command: Command = {
  usage: 'kiln schema [--out FILE]',
  help: `Prints the JSON Schema (2020-12) that kiln.yaml follows, for editors and other tools. Editors that
use yaml-language-server pick it up from the first line of a spec:
  # yaml-language-server: $schema=<path to>/schemas/kiln.schema.json

Options:
  --out FILE   write it to FILE instead of standard output`,
  options: { ...common, out: { type: 'string' } },
  allowPositionals: false,
  run: runSchema,
};

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
