/**
 * Starting one step of a run and seeing how it ends: the command line of each isolation mode (namespaces, uid
 * drop, rlimits around the program's argv), the spawn, the wall-clock and output limits, the capture of the
 * first and last bytes of each stream, and the reading of the exit status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { SETUP_FAILED } from './mounts.ts';
import type { Tools } from './probe.ts';
import { SandboxError, type IsolationMode, type KilledFor, type Limits, type RunResult } from './types.ts';

/** Signal names by number. */
export const SIGNALS: Record<number, string> = {};
for (const [name, n] of Object.entries(os.constants.signals)) SIGNALS[n] ??= name;

/** Keeps the first and last bytes of a stream. */
export class Capture {
  readonly headMax: number;
  readonly tailMax: number;
  total = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  private tail: Buffer[] = [];
  private tailLen = 0;

  constructor(keepBytes: number) {
    this.headMax = Math.floor(keepBytes / 4);
    this.tailMax = keepBytes - this.headMax;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    let c = chunk;
    if (this.headLen < this.headMax) {
      const take = Math.min(this.headMax - this.headLen, c.length);
      this.head.push(c.subarray(0, take));
      this.headLen += take;
      c = c.subarray(take);
    }
    if (c.length === 0) return;
    this.tail.push(c);
    this.tailLen += c.length;
    while (this.tail.length > 1 && this.tailLen - this.tail[0]!.length >= this.tailMax) this.tailLen -= this.tail.shift()!.length;
  }

  get truncated(): boolean {
    return this.total > this.headLen + Math.min(this.tailLen, this.tailMax);
  }

  text(): string {
    const head = Buffer.concat(this.head);
    let tail = Buffer.concat(this.tail);
    if (tail.length > this.tailMax) tail = tail.subarray(tail.length - this.tailMax);
    const omitted = this.total - head.length - tail.length;
    if (omitted <= 0) return Buffer.concat([head, tail]).toString('utf8');
    return `${head.toString('utf8')}\n[… ${omitted} bytes omitted …]\n${tail.toString('utf8')}`;
  }
}

/** What a step's command line is made of. */
export interface CommandInput {
  readonly mode: IsolationMode;
  readonly tools: Tools;
  readonly argv: readonly string[];
  readonly limits: Limits;
  /** Added to RLIMIT_NPROC: what the runner's uid already runs (`none` mode), else 0. */
  readonly nprocBaseline: number;
  /** The slot's uid and gid (root modes). */
  readonly uid: number;
  readonly gid: number;
  /** Namespace modes: the setup script and its arguments (the slot's fstab, the work dir). */
  readonly setup?: { readonly script: string; readonly fstab: string; readonly work: string };
}

/** The command line that runs `argv` in `mode`: namespaces and the setup script, the uid drop, then prlimit. */
export function commandLine(c: CommandInput): string[] {
  const t = c.tools;
  const { limits } = c;
  // CPU: SIGXCPU at the soft limit (reported as killedFor 'cpu'), SIGKILL a second later.
  const rl = Object.entries(stepRlimits(limits, c.nprocBaseline)).map(([name, [soft, hard]]) => `--${name}=${soft}:${hard}`);
  const limited = t.prlimit ? [t.prlimit, ...rl, '--', ...c.argv] : [...c.argv];
  const dropRoot = [t.setpriv!, `--reuid=${c.uid}`, `--regid=${c.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];
  const script = () => [t.sh!, '-c', c.setup!.script, 'kiln-sandbox', c.setup!.fstab, c.setup!.work];
  switch (c.mode) {
    case 'full':
      return [t.unshare!, '--net', '--ipc', '--uts', '--mount', '--pid', '--fork', '--mount-proc', '--', ...script(), ...dropRoot, ...limited];
    case 'userns':
      return [t.unshare!, '--user', '--map-root-user', '--net', '--ipc', '--uts', '--mount', '--pid', '--fork', '--mount-proc', '--', ...script(), t.setpriv!, '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--', ...limited];
    case 'uid':
      return [...dropRoot, ...limited];
    case 'none':
      return limited;
  }
}

/** One step to spawn. */
export interface ProcessInput {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly stdin?: string;
  readonly limits: Limits;
  /** Namespace modes: the init shell reports signals as 128+n, and gets the watchdog's pipe as fd 3. */
  readonly namespaced: boolean;
  /** Called with the child once spawned, and with undefined once it is settled. */
  readonly onChild: (child: ChildProcess | undefined) => void;
  /**
   * Kills what carries the slot's identity. Called, in the modes without a PID namespace (`uid`, `none`), on a
   * kill and at exit: a background process may have left the process group.
   */
  readonly killIdentity: () => Promise<void>;
}

/** Spawns one step and resolves with how it ended; rejects with `SandboxError` when the sandbox itself failed. */
export function runProcess(p: ProcessInput): Promise<RunResult> {
  const { argv, limits } = p;
  const out = new Capture(limits.keepBytes);
  const err = new Capture(limits.keepBytes);
  const started = performance.now();
  return new Promise<RunResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      const stdio: ('pipe' | 'ignore')[] = [p.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'];
      if (p.namespaced) stdio.push('pipe'); // the watchdog's pipe (mounts.ts, setupScript)
      child = spawn(argv[0]!, argv.slice(1), { cwd: p.cwd, env: p.env, detached: true, stdio });
    } catch (e) {
      reject(new SandboxError(`cannot start ${argv[0]}: ${(e as Error).message}`));
      return;
    }
    p.onChild(child);
    let killedFor: KilledFor | undefined;
    let exited: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
    let settled = false;
    const kill = (why: KilledFor) => {
      killedFor ??= why;
      if (child.pid) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (!p.namespaced) void p.killIdentity();
    };
    const timer = setTimeout(() => kill('timeout'), limits.timeoutMs);
    const onData = (cap: Capture) => (chunk: Buffer) => {
      cap.push(chunk);
      if (out.total + err.total > limits.outputBytes && !killedFor) kill('output');
    };
    child.stdout!.on('data', onData(out));
    child.stderr!.on('data', onData(err));
    if (p.stdin !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(p.stdin);
    }
    const finish = () => {
      if (settled || !exited) return;
      settled = true;
      clearTimeout(timer);
      p.onChild(undefined);
      const r = stepResult({ code: exited.code, signal: exited.signal, killedFor, durationMs: exited.at - started, out, err, limits, namespaced: p.namespaced });
      if (r instanceof SandboxError) reject(r);
      else resolve(r);
    };
    child.on('error', (e) => {
      clearTimeout(timer);
      if (!settled) {
        settled = true;
        p.onChild(undefined);
        reject(new SandboxError(`cannot start ${argv[0]}: ${e.message}`));
      }
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal, at: performance.now() };
      if (!p.namespaced) {
        // A background process may still hold the pipes: kill what carries the slot's identity, and stop
        // waiting for the pipes to close soon after.
        void p.killIdentity();
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish();
        }, 300);
      }
    });
    child.on('close', () => finish());
  });
}

/** How a step ended, as its runner saw it. */
export interface StepEnd {
  readonly code: number | null;
  readonly signal: string | null;
  readonly killedFor: KilledFor | undefined;
  readonly durationMs: number;
  readonly out: Capture;
  readonly err: Capture;
  readonly limits: Limits;
  /** The step's init (a shell, or a zygote's sample init) reports the program's signal as 128+n. */
  readonly namespaced: boolean;
}

/** The result of a step that ended, or the `SandboxError` of a setup that failed (exit 125 and its message). */
export function stepResult(e: StepEnd): RunResult | SandboxError {
  let { code, killedFor } = e;
  let signal = e.signal;
  let stderr = e.err.text();
  if (e.namespaced && code === 125 && stderr.includes(SETUP_FAILED)) return new SandboxError(`sandbox setup failed: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  if (e.namespaced && code !== null && code > 128 && code < 128 + 65 && SIGNALS[code - 128]) {
    signal = SIGNALS[code - 128]!;
    code = null;
  }
  if (!killedFor && signal === 'SIGXCPU') killedFor = 'cpu';
  if (!killedFor && signal === 'SIGXFSZ') killedFor = 'file-size';
  if (killedFor === 'output') stderr += `\n[kiln-sandbox: killed after more than ${e.limits.outputBytes} bytes of output]`;
  return {
    exitCode: code,
    signal,
    timedOut: killedFor === 'timeout',
    durationMs: Math.round(e.durationMs),
    stdout: e.out.text(),
    stderr,
    outputTruncated: e.out.truncated || e.err.truncated || killedFor === 'output',
    ...(killedFor ? { killedFor } : {}),
  };
}

/** The rlimits of a step, as `[soft, hard]` pairs by name (the same as `commandLine`'s prlimit flags). */
export function stepRlimits(limits: Limits, nprocBaseline: number): Record<string, readonly [number, number]> {
  const cpu = limits.cpuSeconds ?? Math.ceil(limits.timeoutMs / 1000) + 1;
  const nproc = limits.processes + nprocBaseline;
  const r: Record<string, readonly [number, number]> = { cpu: [cpu, cpu + 1], fsize: [limits.fileSizeBytes, limits.fileSizeBytes], nproc: [nproc, nproc], nofile: [limits.openFiles, limits.openFiles], core: [0, 0] };
  if (limits.memoryRlimit === 'as') r.as = [limits.memoryBytes, limits.memoryBytes];
  if (limits.memoryRlimit === 'data') r.data = [limits.memoryBytes, limits.memoryBytes];
  return r;
}
