/** The sandbox's vocabulary: what a run asks for, the limits it runs under, and what it reports. */

export type IsolationMode = 'full' | 'uid' | 'userns' | 'none';

export interface Limits {
  /** Wall-clock limit; at it the whole process group (and sandbox) is killed. */
  readonly timeoutMs: number;
  /** RLIMIT_CPU in seconds; default: the timeout rounded up + 1 s. */
  readonly cpuSeconds?: number;
  /** Bytes of memory for RLIMIT_AS / RLIMIT_DATA (see `memoryRlimit`). */
  readonly memoryBytes: number;
  /** Which rlimit enforces `memoryBytes`: 'as' (native code, Python), 'data', or 'none' (V8, JVM: use heap flags). */
  readonly memoryRlimit: 'as' | 'data' | 'none';
  /** RLIMIT_FSIZE: the largest file the program may write. */
  readonly fileSizeBytes: number;
  /** RLIMIT_NPROC: processes + threads of the sandbox user. */
  readonly processes: number;
  /** RLIMIT_NOFILE. */
  readonly openFiles: number;
  /** stdout + stderr together; the program is killed once it has written more. */
  readonly outputBytes: number;
  /** Bytes of each stream kept in the result (a quarter from the start, the rest from the end). */
  readonly keepBytes: number;
  /** Size of the private /tmp and /dev/shm (namespace modes). */
  readonly tmpBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  timeoutMs: 3000,
  memoryBytes: 1024 * 1024 * 1024,
  memoryRlimit: 'as',
  fileSizeBytes: 16 * 1024 * 1024,
  processes: 64,
  openFiles: 256,
  outputBytes: 1024 * 1024,
  keepBytes: 8 * 1024,
  tmpBytes: 64 * 1024 * 1024,
};

export interface SandboxOptions {
  /** Slots = programs run at once. Default: os.availableParallelism(). */
  readonly concurrency?: number;
  /** Where work dirs live (a fresh directory is made inside it and removed by close()). Default: os.tmpdir(). */
  readonly baseDir?: string;
  readonly limits?: Partial<Limits>;
  /** Force a mode instead of probing ('auto'). A forced mode that does not work makes create() throw. */
  readonly isolation?: IsolationMode | 'auto';
  /**
   * First slot uid (root modes): slot i runs as uid/gid uidBase+i. Default: the first free block of 1000 from
   * 60000 (each sandbox on the machine claims its own block).
   */
  readonly uidBase?: number;
  /** PATH given to programs. Default: the runner's PATH. */
  readonly path?: string;
  /** More host directories to hide under an empty tmpfs (namespace modes). */
  readonly hide?: readonly string[];
  /**
   * Run Python steps (those that set `python`) in a warm interpreter per slot, forked per sample with the same
   * isolation as a fresh one (docs/sandbox.md#the-python-zygote). Default: true where the mode allows it
   * (`full`); elsewhere, and when false, each step starts a fresh interpreter.
   */
  readonly zygote?: boolean;
  /** Modules the zygote imports before its first sample (standard library or site-packages). Default: none. */
  readonly zygotePreload?: readonly string[];
}

export interface RunStep {
  readonly argv: readonly string[];
  /** Extra environment; `{work}` and `{cache}` in values become the work dir and the slot's cache dir. */
  readonly env?: Readonly<Record<string, string>>;
  readonly limits?: Partial<Limits>;
  readonly stdin?: string;
  /** Make the slot's cache dir (and seeded caches) writable for this step. Default false (read-only). */
  readonly writableCache?: boolean;
  /**
   * The step is this Python running `main` as __main__ without `site` (`-E -s -S`), `path` appended to sys.path:
   * then the sandbox may fork it from the slot's zygote instead of running `argv`, which must do the same.
   */
  readonly python?: PythonStep;
}

/** What a Python step runs (see `RunStep.python`). */
export interface PythonStep {
  /** The interpreter (absolute path). */
  readonly executable: string;
  /** The file run as __main__, relative to the work dir. */
  readonly main: string;
  /** Appended to sys.path after the standard library. Default: none. */
  readonly path?: readonly string[];
}

export interface RunRequest extends RunStep {
  /** Files written into the work dir before the run (relative paths). */
  readonly files: Readonly<Record<string, string>>;
}

export interface StepsRequest {
  readonly files: Readonly<Record<string, string>>;
  /** Run one after another in the same work dir; the first that does not exit 0 ends the sequence. */
  readonly steps: readonly RunStep[];
}

export type KilledFor = 'timeout' | 'output' | 'cpu' | 'file-size';

export interface RunResult {
  /** null when the program ended by a signal. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly durationMs: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Some output was dropped (more than keepBytes of a stream, or the program was killed for output). */
  readonly outputTruncated: boolean;
  /** Why the sandbox (or the kernel, for rlimits) ended the program, when it did. */
  readonly killedFor?: KilledFor;
}

export interface Isolation {
  readonly mode: IsolationMode;
  readonly network: 'namespace' | 'none';
  readonly user: 'per-slot uid' | 'same uid';
  readonly pid: 'namespace' | 'process group';
  readonly filesystem: 'private /tmp' | 'none';
  /** Mount points remounted read-only inside the sandbox. */
  readonly readOnly: readonly string[];
  /** Host directories hidden under an empty tmpfs. */
  readonly hidden: readonly string[];
  /** Limits applied besides the wall-clock timeout and the output cap. */
  readonly limits: readonly string[];
  readonly concurrency: number;
  readonly baseDir: string;
  /** How Python steps start: forked from the slot's warm zygote, or a fresh interpreter each (spawn). */
  readonly pythonSteps: 'zygote' | 'spawn';
  /** What the machine refused, and what that leaves uncontained. */
  readonly warnings: readonly string[];
}

/** How the Python steps of a sandbox ran so far (`Sandbox.pythonStats()`). */
export interface PythonStats {
  /** Zygotes started (one per slot, more after one died or the slot's mounts changed). */
  readonly zygoteStarts: number;
  readonly zygoteSteps: number;
  /** Python steps that started a fresh interpreter. */
  readonly spawnSteps: number;
}

/** The sandbox itself failed (could not start the program, or its setup failed): not the program's fault. */
export class SandboxError extends Error {
  override name = 'SandboxError';
}
