/** The process around `kiln-eval-runner`: argv in, exit code out (3 for any error the stage does not judge terminal). */
import { main } from './entry.ts';

main(process.argv.slice(2), { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) }).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`kiln-eval-runner: ${(e as Error).message}\n`);
    process.exitCode = 3;
  },
);
