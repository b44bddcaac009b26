/** The process around `kiln-gateway`: argv in, exit code out (3 for an unexpected error). */
import { main } from './serve.ts';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`kiln-gateway: ${(e as Error).message}\n`);
    process.exitCode = 3;
  },
);
