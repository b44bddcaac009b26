/**
 * The trainer's Python entry points behind the `kiln` CLI: `kiln tokenizer …` and `kiln pack …` parse and
 * check their options here (help, usage errors and did-you-mean stay the CLI's), then run
 * `python -m kiln_trainer.<module> …` in the trainer's environment, which services/trainer/scripts/env.mjs
 * makes on first use (a virtual environment keyed by the lock file; progress on stderr). `kiln train`, `kiln export`
 * and `kiln generate` run the train, export and generate modules the same way.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EXIT, type Io } from './io.ts';

/** services/trainer/scripts/env.mjs in this checkout. */
export const TRAINER_ENV = fileURLToPath(new URL('../../../services/trainer/scripts/env.mjs', import.meta.url));

/** The argv after `python -m kiln_trainer.<module>`: a flag per set option, in the order given. */
export function trainerArgs(positionals: readonly string[], flags: readonly (readonly [string, unknown])[]): string[] {
  const out = [...positionals];
  for (const [name, value] of flags) {
    if (value === undefined || value === false) continue;
    if (value === true) out.push(`--${name}`);
    else if (Array.isArray(value)) for (const v of value) out.push(`--${name}`, String(v));
    else out.push(`--${name}`, String(value));
  }
  return out;
}

/** Passes a child's output on a line at a time (Io writes whole lines). */
function lines(write: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  let rest = '';
  return {
    push(chunk) {
      const text = rest + chunk.toString('utf8');
      const parts = text.split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) write(p);
    },
    end() {
      if (rest) write(rest);
      rest = '';
    },
  };
}

/** How `runTrainer` runs the module, beyond its arguments. */
export interface TrainerRunOptions {
  /** The trainer's environment. Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Each whole line of the trainer's standard output. Default: `io.out`. */
  readonly onStdout?: (line: string) => void;
  /** Each whole line of its standard error. Default: `io.err`. */
  readonly onStderr?: (line: string) => void;
  /** Its standard output as it comes, not a line at a time (a streamed completion); `onStdout` is then not called. Default: unset. */
  readonly rawStdout?: (text: string) => void;
  /**
   * While it runs, SIGINT and SIGTERM are passed on to it instead of ending kiln: the train stage stops at the end
   * of its step with a checkpoint and exits 3. `onSignal` hears each one. Default: false (kiln ends as usual).
   */
  readonly forwardSignals?: boolean;
  readonly onSignal?: (signal: NodeJS.Signals) => void;
}

/**
 * Runs `python -m kiln_trainer.<module> <args>` in the trainer's environment, its stdout and stderr through `io`
 * (or `opts`' handlers). Its exit code is kiln's (0 ok, 1 failed, 2 usage or stage config error, 3 the train stage
 * stopped by a signal with a checkpoint); killed by a signal, 3.
 */
export function runTrainer(module: string, args: readonly string[], io: Io, opts: TrainerRunOptions = {}): Promise<number> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [TRAINER_ENV, 'run', '--', 'python', '-m', `kiln_trainer.${module}`, ...args], { stdio: ['inherit', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out = lines(opts.onStdout ?? ((l) => io.out(l)));
    const err = lines(opts.onStderr ?? ((l) => io.err(l)));
    const raw = opts.rawStdout;
    child.stdout.on('data', (c: Buffer) => (raw ? raw(c.toString('utf8')) : out.push(c)));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const forward = (signal: NodeJS.Signals) => {
      opts.onSignal?.(signal);
      child.kill(signal);
    };
    const signals: NodeJS.Signals[] = opts.forwardSignals ? ['SIGINT', 'SIGTERM'] : [];
    for (const s of signals) process.on(s, forward);
    child.on('error', (e) => {
      io.err(`kiln: cannot start the trainer (${e.message})`);
      done(EXIT.internal);
    });
    child.on('close', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      out.end();
      err.end();
      if (signal) io.err(`kiln: the trainer was stopped by ${signal}`);
      done(code ?? EXIT.internal);
    });
  });
}
