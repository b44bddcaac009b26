import { main } from './cli.ts';
import type { Io } from './io.ts';
import { EXIT } from './io.ts';

// A reader that stops early (`kiln schema | head`) closes the pipe: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const io: Io = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
  write: (s) => process.stdout.write(s),
  // Carriage return and erase-line: the next status (or message) takes the line's place.
  ...(process.stderr.isTTY ? { status: (s: string) => process.stderr.write(`\r\x1b[2K${s}`) } : {}),
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
