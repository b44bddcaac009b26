/** The process around `kiln-data-prep`: argv in, exit code out (3 for an internal error). */
import { main } from './entry.ts';

main(process.argv.slice(2), { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) }).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`kiln-data-prep: internal error: ${(e as Error).message}\n`);
    process.exitCode = 3;
  },
);
