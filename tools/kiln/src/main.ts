import { main } from './cli.ts';
import type { Io } from './io.ts';
import { EXIT } from './io.ts';

const io: Io = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
  isTTY: Boolean(process.stdout.isTTY),
  color: false,
};

// Flush before exiting so piped output (`kiln validate --format json | jq`) is never cut short.
main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`kiln: internal error: ${(e as Error).message}\n`);
    process.exitCode = EXIT.internal;
  },
);
