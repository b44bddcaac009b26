/**
 * The warm Python of a slot (`full` mode): one pristine interpreter per slot, started once inside the slot's
 * namespaces and mount layout, that forks each Python sample instead of starting a fresh interpreter. The
 * sample's child unshares its own namespaces and gets its own uid drop, rlimits, work dir, private tmpfs and
 * pipes (zygote.py); the zygote never runs user code. This side speaks its wire format, enforces the wall-clock
 * and output limits (a kill request, then the zygote's process group if no answer comes) and turns the frames
 * into a `RunResult`. docs/sandbox.md#the-python-zygote has the isolation argument.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { SampleMount } from './mounts.ts';
import type { Tools } from './probe.ts';
import { Capture, SIGNALS, stepResult } from './spawn.ts';
import { SandboxError, type KilledFor, type Limits, type RunResult } from './types.ts';

let source: string | undefined;

/** zygote.py's text (passed with `-c`, so nothing of the checkout needs to be reachable inside the namespace). */
export function zygoteSource(): string {
  source ??= readFileSync(new URL('./zygote.py', import.meta.url), 'utf8');
  return source;
}

/** What a slot's zygote is started from. */
export interface ZygoteInput {
  readonly tools: Tools;
  /** The slot's setup script (mounts.ts `setupScript`) and read-only fstab. */
  readonly setupScript: string;
  readonly fstab: string;
  /** The zygote's cwd inside the namespace. */
  readonly slotDir: string;
  readonly python: string;
  /** Modules imported before the first sample (standard library or site-packages on `path`). */
  readonly preload: readonly string[];
}

/** The zygote's command line: the slot's namespaces and setup, as root (each sample drops root for itself). */
export function zygoteCommand(z: ZygoteInput): string[] {
  const t = z.tools;
  const config = JSON.stringify({ preload: z.preload });
  return [t.unshare!, '--net', '--ipc', '--uts', '--mount', '--pid', '--fork', '--mount-proc', '--', t.sh!, '-c', z.setupScript, 'kiln-sandbox', z.fstab, z.slotDir, z.python, '-E', '-s', '-S', '-c', zygoteSource(), config];
}

/** One Python sample for a zygote. */
export interface SampleRequest {
  readonly work: string;
  readonly uid: number;
  readonly gid: number;
  readonly env: Readonly<Record<string, string>>;
  readonly stdin?: string;
  /** The file run as __main__ (relative to the work dir). */
  readonly main: string;
  /** Appended to sys.path after the standard library. */
  readonly path: readonly string[];
  readonly rlimits: Readonly<Record<string, readonly [number, number]>>;
  readonly mounts: readonly SampleMount[];
}

/** The zygote died while a sample was in it. `unheard`: nothing of the sample had come back yet. */
export class ZygoteDied extends SandboxError {
  override name = 'ZygoteDied';
  readonly unheard: boolean;
  constructor(message: string, unheard: boolean) {
    super(message);
    this.unheard = unheard;
  }
}

interface Pending {
  readonly id: number;
  data(kind: 'O' | 'E', chunk: Buffer): void;
  exit(code: number | null, signal: string | null, survivors: number | undefined): void;
  fail(message: string): void;
  died(): void;
}

/** How long a kill may take to come back before the whole zygote is killed. */
const KILL_GRACE_MS = 2000;

export class Zygote {
  readonly python: string;
  /** The fstab generation the zygote's namespace was set up from (a later one needs a new zygote). */
  readonly generation: number;
  /** The zygote's pid inside its namespace (from its ready frame). */
  pid = 0;
  /**
   * After a sample: how many processes of the slot's uid the zygote found (and killed) in its PID namespace,
   * which holds every process a sample can make, once the sample's init was reaped. Undefined when it could not
   * tell (the zygote was killed): then the runner sweeps the host's /proc itself.
   */
  lastSurvivors: number | undefined;
  private readonly child: ChildProcess;
  private buf: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private nextId = 1;
  private exited = false;
  private readonly stderrTail: Capture = new Capture(4096);
  private onReady: ((e?: Error) => void) | undefined;
  /** Settles when the zygote's process has exited. */
  readonly closed: Promise<void>;

  private constructor(argv: readonly string[], env: Readonly<Record<string, string>>, cwd: string, python: string, generation: number) {
    this.python = python;
    this.generation = generation;
    // fd 3: the setup script's watchdog pipe (never written: EOF when the runner dies ends the namespace).
    this.child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    this.closed = new Promise((resolve) => this.child.on('close', () => resolve()));
    this.child.stdout!.on('data', (c: Buffer) => this.onFrames(c));
    this.child.stderr!.on('data', (c: Buffer) => this.stderrTail.push(c));
    this.child.stdin!.on('error', () => undefined);
    this.child.on('error', (e) => this.onExit(e));
    // 'close', not 'exit': the frames still in the pipe (a sample's exit) are read first.
    this.child.on('close', () => this.onExit());
    this.idle();
  }

  /** Starts a zygote and waits for its ready frame. */
  static start(argv: readonly string[], env: Readonly<Record<string, string>>, cwd: string, python: string, generation: number, timeoutMs = 15_000): Promise<Zygote> {
    const z = new Zygote(argv, env, cwd, python, generation);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        z.kill();
        reject(new SandboxError(`the Python zygote did not start within ${timeoutMs} ms`));
      }, timeoutMs);
      z.onReady = (e) => {
        clearTimeout(timer);
        z.onReady = undefined;
        if (e) reject(e);
        else resolve(z);
      };
    });
  }

  /** Whether the zygote can take a sample. */
  get alive(): boolean {
    return !this.exited && this.onReady === undefined;
  }

  /** Kills the zygote's process group: its namespace init, hence every process of the slot's namespaces. */
  kill(): void {
    if (this.child.pid && !this.exited) {
      this.busy(); // so that a caller awaiting `closed` sees it
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** Runs one sample; resolves as `runProcess` does, rejects with `SandboxError` when the sandbox failed. */
  run(req: SampleRequest, limits: Limits): Promise<RunResult> {
    if (!this.alive) return Promise.reject(new SandboxError('the Python zygote is not running'));
    if (this.pending) return Promise.reject(new SandboxError('the Python zygote is busy'));
    const id = this.nextId++;
    const out = new Capture(limits.keepBytes);
    const err = new Capture(limits.keepBytes);
    const started = performance.now();
    this.lastSurvivors = undefined;
    this.busy();
    return new Promise<RunResult>((resolve, reject) => {
      let killedFor: KilledFor | undefined;
      let heard = false;
      let grace: NodeJS.Timeout | undefined;
      const kill = (why: KilledFor) => {
        killedFor ??= why;
        this.send({ kill: id });
        // The zygote runs no user code and answers at once; if it does not, it goes, and its namespace with it.
        grace ??= setTimeout(() => this.kill(), KILL_GRACE_MS);
      };
      const timer = setTimeout(() => kill('timeout'), limits.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        clearTimeout(grace);
        this.pending = undefined;
        this.idle();
      };
      this.pending = {
        id,
        data: (kind, chunk) => {
          heard = true;
          (kind === 'O' ? out : err).push(chunk);
          if (out.total + err.total > limits.outputBytes && !killedFor) kill('output');
        },
        exit: (code, signal, survivors) => {
          this.lastSurvivors = survivors;
          done();
          const r = stepResult({ code, signal, killedFor, durationMs: performance.now() - started, out, err, limits, namespaced: true });
          if (r instanceof SandboxError) reject(r);
          else resolve(r);
        },
        fail: (message) => {
          done();
          reject(new SandboxError(`the Python zygote could not start the sample: ${message}`));
        },
        died: () => {
          done();
          // Killed on purpose (timeout, output): the sample went with it; otherwise the sandbox failed.
          if (killedFor) resolve(stepResult({ code: null, signal: 'SIGKILL', killedFor, durationMs: performance.now() - started, out, err, limits, namespaced: true }) as RunResult);
          else reject(new ZygoteDied(`the Python zygote died: ${this.stderrTail.text().trim().split('\n').slice(-2).join(' | ')}`, !heard));
        },
      };
      this.send({ id, ...req, stdin: req.stdin ?? null });
    });
  }

  private send(msg: unknown): void {
    if (!this.exited) this.child.stdin!.write(`${JSON.stringify(msg)}\n`);
  }

  /** While idle the zygote does not keep the runner's event loop alive (an unclosed sandbox must not hang it). */
  private idle(): void {
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr, this.child.stdio[3]] as (Readable | Writable | null)[]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  }

  private busy(): void {
    this.child.ref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr, this.child.stdio[3]] as (Readable | Writable | null)[]) (s as unknown as { ref?: () => void } | null)?.ref?.();
  }

  private onFrames(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 9) {
      const len = this.buf.readUInt32BE(5);
      if (this.buf.length < 9 + len) break;
      const kind = String.fromCharCode(this.buf[0]!);
      const id = this.buf.readUInt32BE(1);
      const payload = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      if (kind === 'R') {
        this.pid = (JSON.parse(payload.toString('utf8')) as { pid: number }).pid;
        this.onReady?.();
        continue;
      }
      const p = this.pending;
      if (!p || p.id !== id) continue;
      if (kind === 'O' || kind === 'E') p.data(kind, Buffer.from(payload));
      else if (kind === 'X') {
        const x = JSON.parse(payload.toString('utf8')) as { code: number | null; signal: number | null; survivors?: number };
        p.exit(x.code, x.signal === null ? null : (SIGNALS[x.signal] ?? `SIG${x.signal}`), x.survivors);
      } else if (kind === 'F') p.fail(payload.toString('utf8'));
    }
  }

  private onExit(e?: Error): void {
    if (this.exited) return;
    this.exited = true;
    this.onReady?.(new SandboxError(`the Python zygote did not start: ${e?.message ?? this.stderrTail.text().trim().split('\n').slice(-3).join(' | ')}`));
    this.pending?.died();
  }
}
