/**
 * The eval runner's sandbox: runs one untrusted program (a model's completion glued to a benchmark's tests) at a
 * time per slot, contained, and reports how it ended. A `Sandbox` has N slots (default: one per core) and queues
 * `run()` calls onto them.
 *
 * Every run, in every mode:
 *  - gets its own work directory (the request's `files`, cwd of the program), removed afterwards, also after a
 *    timeout or a crash of the program; HOME points at it, nothing of the runner's environment is passed on (no
 *    API keys or tokens leak into a sample), only PATH, LANG and what the request sets;
 *  - runs in a process group of its own with a wall-clock timeout (3 s default); at the timeout the whole group
 *    is killed with SIGKILL (and, depending on the mode, everything else that carries the sample's identity);
 *  - has its stdout and stderr read through pipes of which only the first and last few KiB are kept; once it has
 *    written more than `outputBytes` (1 MiB) in all it is killed, so a program printing forever costs neither
 *    memory nor disk;
 *  - gets rlimits through util-linux `prlimit` (when present): RLIMIT_CPU, RLIMIT_AS or RLIMIT_DATA (per request:
 *    V8 and the JVM reserve large address ranges, so executors pass `memoryRlimit: 'none'` or a larger backstop
 *    and limit the heap with the runtime's own flag), RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CORE=0.
 *
 * The isolation depends on what the machine allows; `Sandbox.create()` probes the modes strongest first and
 * `describe()` says which one it got (the CLI prints it and warns when it is weaker than `full`):
 *
 *  - `full` (running as root, with util-linux `unshare`, `setpriv`, `mount`): each run is
 *      `unshare --net --ipc --uts --mount --pid --fork --mount-proc sh -c <setup> … setpriv … prlimit … argv`.
 *      Contained: network (a fresh network namespace with only a downed loopback: no connection leaves it, not
 *      even to 127.0.0.1 of the host); processes (own PID namespace: the program cannot see or signal anything
 *      outside, `kill -9 -1` and killing its parent hit only itself; when the sandbox's init ends the kernel kills
 *      everything left, so `setsid` + a background process leaves nothing behind); user (each slot has its own
 *      unprivileged uid/gid (each sandbox claims a block from 60000), no supplementary groups, no capabilities, no_new_privs: so
 *      RLIMIT_NPROC counts per slot, a fork bomb stops at the limit, setuid binaries give nothing, and files of
 *      root or of other slots cannot be written); filesystem (`/` and every other writable mount is remounted
 *      read-only inside the namespace; /tmp, /var/tmp, /dev/shm and other world-writable dirs are private
 *      size-capped tmpfs; the work dir is bound back at its own path; directories only root may enter — the
 *      runner's home, /var/run/secrets — are hidden under an empty tmpfs, except for toolchain directories the
 *      executors `expose()` read-only); SysV IPC and hostname (own IPC and UTS namespaces).
 *      Not contained: reading world-readable files (the program sees the filesystem as any unprivileged user
 *      would: /etc, /usr, the repository if its mode allows; use `hide` for more), CPU and memory beyond rlimits
 *      (no cgroup: memory is capped per process, so processes × memory is the worst case), kernel bugs.
 *      Compile caches (`{cache}`) are writable only in steps that ask for it (`writableCache`, the executors'
 *      compile steps) and read-only while the program itself runs; a seeded cache (`seedCache`, Go's build
 *      cache) is an overlay of the runner's cache (read-only) and a per-slot upper layer.
 *  - `uid` (root, but namespaces are refused, e.g. a container without CAP_SYS_ADMIN): `setpriv` to the slot's
 *      uid + rlimits. Per-slot user and process limits as above and every process of the slot's uid is killed
 *      after each step; but the network is open, /tmp is shared, and nothing hides root-only paths (toolchains
 *      only root can reach, such as ~root/.rustup, are then unusable: `expose()` reports them).
 *  - `userns` (not root, but unprivileged user namespaces work): `unshare --user --map-root-user --net --ipc
 *      --uts --mount --pid --fork --mount-proc`, the same mount setup (private tmpfs, read-only remounts), then all
 *      capabilities are dropped before the program runs. Network, PID namespace, private /tmp and a read-only
 *      filesystem as in `full`, RLIMIT_NPROC counts per namespace; but the program has the runner's uid on the
 *      outside, so anything the read-only remounts do not cover (the work dirs of other slots under the base dir,
 *      caches) is writable by it.
 *  - `none` (not root, no user namespaces: the usual Kubernetes pod, non-root with a read-only root filesystem
 *      and a seccomp profile that refuses unshare): plain process groups + rlimits. The read-only root filesystem
 *      of the pod protects the image; the base dir must be on a writable volume (an emptyDir at /tmp is what
 *      os.tmpdir() finds). NOT contained: network (give eval pods a NetworkPolicy that denies egress), signals (a
 *      sample may signal the runner: `kill -9 -1` kills it — the pod restarts), writes to anything the runner
 *      may write, service-account tokens (set automountServiceAccountToken: false). RLIMIT_NPROC counts every
 *      process of the runner's uid, so it is set to what the uid runs at startup plus `processes`. Processes that
 *      escape the process group (setsid) are found afterwards by a tag in their environment and killed; a program
 *      that also scrubs its environment can outlive its run.
 *
 * If the runner itself dies (even by SIGKILL), namespace modes still end the sample: the namespace's init (a
 * root shell that ran the mounts and runs the program as its child) keeps a watchdog on a pipe from the runner
 * and kills everything in the namespace at EOF. The base dirs of dead runners are removed by the next
 * `Sandbox.create()` on the same root. (In `uid`/`none` modes a sample outlives a killed runner until its rlimits
 * end it.) In namespace modes an exit status above 128 is read as a signal (the shell's 128+n convention), so a
 * program that exits 137 on purpose is reported as killed by SIGKILL.
 *
 * Tools needed: /bin/sh, util-linux unshare/setpriv/prlimit/mount (each mode falls back when one is missing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsc, existsSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

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
}

export interface RunStep {
  readonly argv: readonly string[];
  /** Extra environment; `{work}` and `{cache}` in values become the work dir and the slot's cache dir. */
  readonly env?: Readonly<Record<string, string>>;
  readonly limits?: Partial<Limits>;
  readonly stdin?: string;
  /** Make the slot's cache dir (and seeded caches) writable for this step. Default false (read-only). */
  readonly writableCache?: boolean;
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
  /** What the machine refused, and what that leaves uncontained. */
  readonly warnings: readonly string[];
}

/** The sandbox itself failed (could not start the program, or its setup failed): not the program's fault. */
export class SandboxError extends Error {
  override name = 'SandboxError';
}

interface Tools {
  sh?: string;
  unshare?: string;
  setpriv?: string;
  prlimit?: string;
  mount?: string;
}

interface Slot {
  readonly index: number;
  readonly uid: number;
  readonly gid: number;
  readonly dir: string;
  readonly cacheDir: string;
  readonly tag: string;
  fstabRw: string;
  fstabRo: string;
  child?: ChildProcess;
  runs: number;
}

interface Cover {
  readonly path: string;
  readonly mode: string;
  readonly size: number;
}

const SETUP_FAILED = 'kiln-sandbox: setup failed';
const STAGE = '/dev/shm/.kiln';
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const PSEUDO_FS = new Set(['proc', 'sysfs', 'devtmpfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2', 'securityfs', 'debugfs', 'tracefs', 'pstore', 'bpf', 'configfs', 'fusectl', 'hugetlbfs', 'binfmt_misc', 'autofs', 'efivarfs', 'nsfs', 'rpc_pipefs', 'selinuxfs']);

/** An executable on `searchPath` (or the system dirs), or undefined. */
export function findExecutable(name: string, searchPath: string = process.env.PATH ?? ''): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of searchPath.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsc.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function findTools(): Tools {
  const search = [...(process.env.PATH ?? '').split(':'), ...SYSTEM_DIRS].join(':');
  return {
    sh: findExecutable('/bin/sh') ?? findExecutable('sh', search),
    unshare: findExecutable('unshare', search),
    setpriv: findExecutable('setpriv', search),
    prlimit: findExecutable('prlimit', search),
    mount: findExecutable('mount', search),
  };
}

/** fstab field escaping (space, tab, newline, backslash as octal). */
function esc(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

const SIGNALS: Record<number, string> = {};
for (const [name, n] of Object.entries(os.constants.signals)) SIGNALS[n] ??= name;

/** Keeps the first and last bytes of a stream. */
class Capture {
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

/** Real uid of a live process, from /proc (undefined when it is gone or a zombie: dead, only not reaped yet). */
function procUid(pid: string): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+[ZX]/m.test(status)) return undefined;
    const m = /^Uid:\s+(\d+)/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function procPids(): string[] {
  try {
    return readdirSync('/proc').filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid);
  } catch {
    return [];
  }
}

function procHasTag(pid: string, tag: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`).includes(`KILN_SANDBOX_TAG=${tag}`);
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Mount points the sandbox remounts read-only: every writable real filesystem outside /proc, /sys, /dev. */
function writableMounts(): string[] {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return ['/'];
  }
  const out = new Set<string>(['/']);
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0 || f.length < dash + 2) continue;
    const mp = (f[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const opts = (f[5] ?? '').split(',');
    const fstype = f[dash + 1] ?? '';
    if (!opts.includes('rw') || PSEUDO_FS.has(fstype)) continue;
    if (['/proc', '/sys', '/dev'].some((d) => isUnder(mp, d))) continue;
    out.add(mp);
  }
  return [...out].sort();
}

/** The highest strict ancestor of `p` that "others" cannot enter (undefined: `p` is reachable by anyone). */
function closedAncestor(p: string): string | undefined {
  const parts = p.split('/').filter(Boolean);
  let cur = '';
  for (let i = 0; i < parts.length - 1; i++) {
    cur += `/${parts[i]}`;
    try {
      if ((statSync(cur).mode & 0o001) === 0) return cur;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Processes (and threads) the current uid runs: RLIMIT_NPROC counts them all in `none` mode. */
function tasksOfMyUid(): number {
  const uid = process.getuid?.() ?? -1;
  let n = 0;
  for (const pid of procPids()) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) !== uid) continue;
      n += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
    } catch {
      /* gone */
    }
  }
  return n + 1;
}

const UID_BLOCK_START = 60000;
const UID_BLOCK = 1000;

function ownerAlive(text: string): boolean {
  const [pidText, host] = text.trim().split('\n');
  const pid = Number(pidText);
  // Another host (or container) sharing the directory: its pids mean nothing here, so count it as alive.
  return host !== os.hostname() || !Number.isInteger(pid) || pid <= 0 || existsSync(`/proc/${pid}`);
}

/**
 * Claims a block of slot uids for this sandbox (root modes): each sandbox on the machine needs its own, since
 * RLIMIT_NPROC counts per uid and leftovers are found and killed by uid. A lock file per block (pid + host)
 * says who holds it; a block whose holder is dead is taken over; a block some process already runs as is skipped.
 */
async function claimUids(start: number, count: number, fixed: boolean): Promise<{ base: number; lock: string }> {
  const dir = path.join(os.tmpdir(), 'kiln-uid-locks');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const owner = `${process.pid}\n${os.hostname()}\n`;
  for (let base = start; base + count <= 2 ** 31 - 2 && base < start + 200 * UID_BLOCK; base += UID_BLOCK) {
    // Never hand out nobody/nogroup (65534) or the 16-bit -1.
    if (!fixed && base <= 65535 && base + count > 65534) continue;
    const lock = path.join(dir, String(base));
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(lock, owner, { flag: 'wx', mode: 0o600 });
      } catch {
        const holder = await readFile(lock, 'utf8').catch(() => '');
        if (holder && ownerAlive(holder)) break;
        await rm(lock, { force: true });
        continue;
      }
      const running = new Set(procPids().map(procUid));
      if (Array.from({ length: count }, (_, i) => base + i).some((u) => running.has(u))) {
        await rm(lock, { force: true });
        break;
      }
      return { base, lock };
    }
    if (fixed) break;
  }
  throw new SandboxError(fixed ? `slot uids ${start}..${start + count - 1} are in use` : 'no free block of slot uids');
}

/** Base dirs left by runners that died without close() (SIGKILL, OOM): their owner pid is gone. */
async function removeStale(root: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return;
  }
  for (const e of entries.filter((n) => n.startsWith('kiln-sandbox-'))) {
    const dir = path.join(root, e);
    try {
      if (ownerAlive(await readFile(path.join(dir, '.owner'), 'utf8'))) continue;
      await rm(dir, { recursive: true, force: true });
    } catch {
      /* not ours to judge (no .owner, or not readable) */
    }
  }
}

export class Sandbox {
  readonly mode: IsolationMode;
  readonly baseDir: string;
  readonly concurrency: number;
  readonly limits: Limits;
  private readonly tools: Tools;
  private readonly tag: string;
  private readonly searchPath: string;
  private readonly slots: Slot[] = [];
  private readonly free: Slot[] = [];
  private readonly waiting: { resolve: (s: Slot) => void; reject: (e: Error) => void }[] = [];
  private readonly active = new Set<Promise<unknown>>();
  private readonly exposed = new Set<string>();
  private readonly covers = new Map<string, Cover>();
  private readonly seeds = new Map<string, string>();
  private readonly readOnly: string[];
  private readonly hidden: string[] = [];
  private readonly warnings: string[];
  private readonly nprocBaseline: number;
  private closed = false;
  private uidLock: string | undefined;
  private readonly onExit = () => {
    this.removeBaseDirSync();
    if (this.uidLock) rmSync(this.uidLock, { force: true });
  };

  private constructor(mode: IsolationMode, baseDir: string, opts: SandboxOptions, tools: Tools, warnings: string[]) {
    this.mode = mode;
    this.baseDir = baseDir;
    this.tools = tools;
    this.concurrency = Math.max(1, Math.floor(opts.concurrency ?? os.availableParallelism()));
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
    this.searchPath = opts.path ?? process.env.PATH ?? SYSTEM_DIRS.join(':');
    this.warnings = warnings;
    this.readOnly = this.namespaced ? writableMounts() : [];
    this.nprocBaseline = mode === 'none' ? tasksOfMyUid() + 32 : 0;
  }

  /** Probes what the machine allows (strongest mode first) and makes the slots. */
  static async create(opts: SandboxOptions = {}): Promise<Sandbox> {
    const tools = findTools();
    const isRoot = process.getuid?.() === 0;
    const forced = opts.isolation && opts.isolation !== 'auto' ? opts.isolation : undefined;
    const candidates: IsolationMode[] = forced ? [forced] : isRoot ? ['full', 'uid', 'none'] : ['userns', 'none'];
    const warnings: string[] = [];
    for (const mode of candidates) {
      const missing = Sandbox.missingTools(mode, tools, isRoot);
      if (missing) {
        warnings.push(`${mode} isolation unavailable: ${missing}`);
        if (forced) throw new SandboxError(warnings.join('; '));
        continue;
      }
      const root = path.resolve(opts.baseDir ?? os.tmpdir());
      if (['/dev/shm', '/proc', '/sys'].some((d) => isUnder(root, d)) && (mode === 'full' || mode === 'userns')) {
        warnings.push(`${mode} isolation unavailable: the base dir may not be under /dev/shm, /proc or /sys`);
        continue;
      }
      await mkdir(root, { recursive: true });
      await removeStale(root);
      const baseDir = await mkdtemp(path.join(root, 'kiln-sandbox-'));
      await writeFile(path.join(baseDir, '.owner'), `${process.pid}\n${os.hostname()}\n`);
      const sb = new Sandbox(mode, baseDir, opts, tools, [...warnings]);
      try {
        await sb.init(opts);
        const problem = await sb.probe();
        if (!problem) {
          sb.addModeWarnings(isRoot);
          return sb;
        }
        warnings.push(`${mode} isolation unavailable: ${problem}`);
      } catch (e) {
        warnings.push(`${mode} isolation unavailable: ${(e as Error).message}`);
      }
      await sb.close();
      if (forced) throw new SandboxError(warnings.join('; '));
    }
    throw new SandboxError(`no sandbox mode works here: ${warnings.join('; ')}`);
  }

  private static missingTools(mode: IsolationMode, t: Tools, isRoot: boolean): string | undefined {
    const need: (keyof Tools)[] =
      mode === 'full' || mode === 'userns' ? ['sh', 'unshare', 'setpriv', 'prlimit', 'mount'] : mode === 'uid' ? ['setpriv', 'prlimit'] : [];
    const missing = need.filter((k) => !t[k]);
    if (missing.length) return `${missing.join(', ')} not found`;
    if ((mode === 'full' || mode === 'uid') && !isRoot) return 'needs root';
    if (mode === 'full' && !existsSync('/dev/shm')) return 'no /dev/shm';
    if (mode === 'userns' && !existsSync('/dev/shm')) return 'no /dev/shm';
    return undefined;
  }

  private get namespaced(): boolean {
    return this.mode === 'full' || this.mode === 'userns';
  }

  private get perSlotUid(): boolean {
    return this.mode === 'full' || this.mode === 'uid';
  }

  private addModeWarnings(isRoot: boolean): void {
    const w = this.warnings;
    if (!this.namespaced) w.push('no network namespace: samples can reach the network', 'no private /tmp: samples share /tmp with the runner');
    if (!this.perSlotUid) w.push('samples run as the runner\'s uid');
    if (this.mode === 'none') {
      w.push('no PID namespace: a sample can signal the runner (kill -9 -1)');
      if (isRoot) w.push('running as root without namespaces: RLIMIT_NPROC does not bind root');
      if (!this.tools.prlimit) w.push('prlimit not found: no rlimits (CPU, memory, file size, processes) are applied');
    }
    w.push('no cgroup limits: memory is capped per process (RLIMIT_AS), processes × memory at worst');
  }

  private async init(opts: SandboxOptions): Promise<void> {
    const perSlot = this.perSlotUid;
    await chmod(this.baseDir, perSlot ? 0o711 : 0o700);
    process.on('exit', this.onExit);
    let uidBase = opts.uidBase ?? UID_BLOCK_START;
    if (perSlot) {
      if (this.concurrency > UID_BLOCK) throw new SandboxError(`at most ${UID_BLOCK} slots`);
      const claim = await claimUids(uidBase, this.concurrency, opts.uidBase !== undefined);
      uidBase = claim.base;
      this.uidLock = claim.lock;
    }
    if (this.namespaced) {
      const ww = ['/tmp', '/var/tmp', '/dev/shm', '/run/lock', '/var/lock', '/dev/mqueue'];
      for (const d of ww) {
        try {
          const st = lstatSync(d);
          if (st.isDirectory() && st.mode & 0o002 && d !== '/dev/shm') this.covers.set(d, { path: d, mode: '1777', size: this.limits.tmpBytes });
        } catch {
          /* absent */
        }
      }
      for (const d of ['/run/secrets', '/var/run/secrets', ...(opts.hide ?? [])]) {
        let real: string;
        try {
          real = path.resolve(d);
          if (!lstatSync(real).isDirectory()) continue;
        } catch {
          continue;
        }
        this.covers.set(real, { path: real, mode: '0755', size: 1024 * 1024 });
        this.hidden.push(real);
      }
      if (isUnder(this.baseDir, '/dev/shm')) throw new SandboxError('base dir under /dev/shm');
    }
    for (let i = 0; i < this.concurrency; i++) {
      const dir = path.join(this.baseDir, `slot-${i}`);
      const uid = perSlot ? uidBase + i : (process.getuid?.() ?? 0);
      const gid = perSlot ? uidBase + i : (process.getgid?.() ?? 0);
      const slot: Slot = { index: i, uid, gid, dir, cacheDir: path.join(dir, 'cache'), tag: `${this.tag}-${i}`, fstabRw: path.join(this.baseDir, '.fstab', `slot-${i}-rw`), fstabRo: path.join(this.baseDir, '.fstab', `slot-${i}-ro`), runs: 0 };
      await mkdir(dir, { mode: perSlot ? 0o711 : 0o700 });
      await mkdir(slot.cacheDir, { mode: 0o700 });
      await mkdir(path.join(dir, '.ovl'), { mode: 0o700 });
      if (perSlot) await chown(slot.cacheDir, uid, gid);
      this.slots.push(slot);
      this.free.push(slot);
    }
    if (this.namespaced) {
      await mkdir(path.join(this.baseDir, '.fstab'), { mode: 0o700 });
      await this.writeFstabs();
    }
  }

  private async probe(): Promise<string | undefined> {
    const sh = this.tools.sh ?? '/bin/sh';
    try {
      const r = await this.run({ argv: [sh, '-c', 'exit 7'], files: {}, limits: { timeoutMs: 10_000 } });
      if (r.exitCode === 7) return undefined;
      return `probe exited ${r.exitCode ?? r.signal}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** What this machine's sandbox contains (for the CLI to print). */
  describe(): Isolation {
    const ns = this.namespaced;
    const limits: string[] = [];
    if (this.tools.prlimit && this.mode !== 'none') limits.push('RLIMIT_CPU', 'RLIMIT_AS|RLIMIT_DATA', 'RLIMIT_FSIZE', 'RLIMIT_NPROC', 'RLIMIT_NOFILE', 'RLIMIT_CORE=0');
    else if (this.tools.prlimit) limits.push('RLIMIT_CPU', 'RLIMIT_AS|RLIMIT_DATA', 'RLIMIT_FSIZE', 'RLIMIT_NPROC (shared with the runner uid)', 'RLIMIT_NOFILE', 'RLIMIT_CORE=0');
    if (ns) limits.push(`tmpfs ${Math.round(this.limits.tmpBytes / 1048576)} MiB`);
    return {
      mode: this.mode,
      network: ns ? 'namespace' : 'none',
      user: this.perSlotUid ? 'per-slot uid' : 'same uid',
      pid: ns ? 'namespace' : 'process group',
      filesystem: ns ? 'private /tmp' : 'none',
      readOnly: [...this.readOnly],
      hidden: [...new Set([...this.hidden, ...[...this.covers.values()].filter((c) => c.mode === '0755').map((c) => c.path)])],
      limits,
      concurrency: this.concurrency,
      baseDir: this.baseDir,
      warnings: [...this.warnings],
    };
  }

  /**
   * Makes host directories (toolchains) reachable, read-only, for the sandbox user. Returns those that stay
   * unreachable (only in `uid` mode, which cannot mount: a root-only path stays closed).
   */
  async expose(dirs: readonly string[]): Promise<string[]> {
    const unreachable: string[] = [];
    let changed = false;
    for (const d of dirs) {
      let real: string;
      try {
        real = realpathSync(d);
      } catch {
        continue;
      }
      if (this.exposed.has(real)) continue;
      // A toolchain under a directory the sandbox covers (a checkout in /tmp, say) is bound back read-only.
      const covered = this.namespaced && [...this.covers.keys()].some((c) => isUnder(real, c));
      const closed = this.perSlotUid ? closedAncestor(real) : undefined;
      if (!closed && !covered) continue;
      if (closed && this.mode !== 'full') {
        unreachable.push(real);
        continue;
      }
      this.exposed.add(real);
      if (closed && ![...this.covers.keys()].some((c) => isUnder(closed, c))) this.covers.set(closed, { path: closed, mode: '0755', size: 1024 * 1024 });
      changed = true;
    }
    if (changed) await this.writeFstabs();
    return unreachable;
  }

  /**
   * Seeds the slot cache `{cache}/<name>` with a host directory (read-only lower layer of an overlay whose upper
   * layer is per slot). Namespace modes only; returns whether it took (a probe run checks the overlay mounts).
   */
  async seedCache(name: string, hostDir: string): Promise<boolean> {
    if (!this.namespaced || !/^[\w.-]+$/.test(name) || /[,:\\\s]/.test(hostDir) || this.seeds.has(name)) return this.seeds.has(name);
    if (!existsSync(hostDir)) return false;
    for (const slot of this.slots) {
      await mkdir(path.join(slot.cacheDir, name), { recursive: true });
      await mkdir(path.join(slot.dir, '.ovl', name, 'upper'), { recursive: true, mode: 0o700 });
      await mkdir(path.join(slot.dir, '.ovl', name, 'work'), { recursive: true, mode: 0o700 });
      if (this.perSlotUid) {
        await chown(path.join(slot.cacheDir, name), slot.uid, slot.gid);
        await chown(path.join(slot.dir, '.ovl', name, 'upper'), slot.uid, slot.gid);
      }
    }
    this.seeds.set(name, hostDir);
    await this.writeFstabs();
    const sh = this.tools.sh ?? '/bin/sh';
    let ok = false;
    try {
      const r = await this.run({ argv: [sh, '-c', 'test -d "$KILN_SEED" && exit 7'], files: {}, writableCache: true, env: { KILN_SEED: `{cache}/${name}` }, limits: { timeoutMs: 10_000 } });
      ok = r.exitCode === 7;
    } catch {
      ok = false;
    }
    if (!ok) {
      this.seeds.delete(name);
      await this.writeFstabs();
      this.warnings.push(`cannot overlay ${hostDir} as a seeded cache; ${name} starts empty`);
    }
    return ok;
  }

  private fstab(slot: Slot, writableCache: boolean): string {
    const L: string[] = [];
    const tmp = `size=${this.limits.tmpBytes},nosuid,nodev`;
    L.push(`kiln-shm /dev/shm tmpfs ${tmp},mode=1777 0 0`);
    // Stage everything that a cover will hide, then cover, then bind back.
    L.push(`${esc(slot.dir)} ${STAGE}/slot none bind,X-mount.mkdir=0700 0 0`);
    const exposed = [...this.exposed];
    // nofail: an exposed directory removed since (a deleted checkout) must not break every later run.
    exposed.forEach((p, i) => L.push(`${esc(p)} ${STAGE}/e${i} none bind,nofail,X-mount.mkdir=0700 0 0`));
    const seeds = writableCache ? [...this.seeds] : [];
    seeds.forEach(([, lower], i) => L.push(`${esc(lower)} ${STAGE}/s${i} none bind,X-mount.mkdir=0700 0 0`));
    const covers = [...this.covers.values()].sort((a, b) => a.path.length - b.path.length);
    const placed: string[] = [];
    for (const c of covers) {
      if (placed.some((p) => isUnder(c.path, p))) continue;
      placed.push(c.path);
      L.push(`kiln-cover ${esc(c.path)} tmpfs size=${c.size},mode=${c.mode},nosuid,nodev,X-mount.mkdir 0 0`);
    }
    L.push(`${STAGE}/slot ${esc(slot.dir)} none bind,X-mount.mkdir=0755 0 0`);
    exposed.forEach((p, i) => L.push(`${STAGE}/e${i} ${esc(p)} none bind,ro,nosuid,nodev,nofail,X-mount.mkdir=0755 0 0`));
    if (writableCache) {
      seeds.forEach(([name], i) => {
        const ovl = path.join(slot.dir, '.ovl', name);
        L.push(`kiln-cache ${esc(path.join(slot.cacheDir, name))} overlay lowerdir=${STAGE}/s${i},upperdir=${ovl}/upper,workdir=${ovl}/work,nosuid,nodev 0 0`);
      });
    } else {
      L.push(`${STAGE}/slot/cache ${esc(slot.cacheDir)} none bind,ro,nosuid,nodev 0 0`);
    }
    return `${L.join('\n')}\n`;
  }

  private async writeFstabs(): Promise<void> {
    if (!this.namespaced) return;
    for (const slot of this.slots) {
      for (const [file, rw] of [[slot.fstabRw, true], [slot.fstabRo, false]] as const) {
        const tmp = `${file}.${randomBytes(4).toString('hex')}`;
        await writeFile(tmp, this.fstab(slot, rw), { mode: 0o600 });
        await rename(tmp, file);
      }
    }
  }

  /** The setup script run as the namespace's init (root inside the namespaces): mounts, then the program as its child. */
  private setupScript(): string {
    const mount = this.tools.mount!;
    const fail = `{ echo '${SETUP_FAILED}' >&2; exit 125; }`;
    const lines = [`${shQuote(mount)} -a -T "$1" || ${fail}`];
    for (const mp of this.readOnly) {
      if ([...this.covers.keys()].some((c) => isUnder(mp, c)) || isUnder(mp, '/dev/shm')) continue;
      lines.push(`${shQuote(mount)} -o remount,bind,ro ${shQuote(mp)} || ${fail}`);
    }
    // Watchdog: fd 3 is a pipe from the runner that it never writes; EOF means the runner is gone (even killed
    // with SIGKILL), and then everything in the namespace is killed. The program itself does not get fd 3.
    lines.push(`cd "$2" || ${fail}`, 'shift 2', '( read -r _ <&3; kill -KILL -1 ) &', 'exec 3<&-', '"$@"', 's=$?', 'exit $s');
    return lines.join('\n');
  }

  /** Runs one program in a fresh work dir. */
  async run(req: RunRequest): Promise<RunResult> {
    const [r] = await this.runSteps({ files: req.files, steps: [req] });
    return r!;
  }

  /** Runs steps (compile, then run) one after another in one work dir on one slot. */
  async runSteps(req: StepsRequest): Promise<RunResult[]> {
    if (this.closed) throw new SandboxError('sandbox is closed');
    for (const name of Object.keys(req.files)) {
      const norm = path.posix.normalize(name);
      if (!name || path.isAbsolute(name) || norm.startsWith('..') || norm === '.') throw new SandboxError(`bad file name: ${name}`);
    }
    const slot = await this.acquire();
    const work = this.doSteps(slot, req);
    this.active.add(work);
    try {
      return await work;
    } finally {
      this.active.delete(work);
      this.release(slot);
    }
  }

  private acquire(): Promise<Slot> {
    const s = this.free.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next && !this.closed) next.resolve(slot);
    else this.free.push(slot);
  }

  private async doSteps(slot: Slot, req: StepsRequest): Promise<RunResult[]> {
    const work = path.join(slot.dir, `run-${++slot.runs}`);
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { mode: 0o700 });
    const results: RunResult[] = [];
    try {
      const dirs = new Set<string>();
      for (const [name, content] of Object.entries(req.files)) {
        const p = path.join(work, name);
        let d = path.dirname(p);
        while (d !== work && !dirs.has(d)) {
          dirs.add(d);
          d = path.dirname(d);
        }
        await mkdir(path.dirname(p), { recursive: true });
        await writeFile(p, content);
      }
      if (this.mode === 'none' || this.mode === 'uid') await mkdir(path.join(work, '.tmp'));
      if (this.perSlotUid) {
        await chown(work, slot.uid, slot.gid);
        for (const d of dirs) await chown(d, slot.uid, slot.gid);
        for (const name of Object.keys(req.files)) await chown(path.join(work, name), slot.uid, slot.gid);
        if (this.mode === 'uid') await chown(path.join(work, '.tmp'), slot.uid, slot.gid);
      }
      for (const step of req.steps) {
        const r = await this.runStep(slot, work, step);
        results.push(r);
        if (r.exitCode !== 0) break;
      }
    } finally {
      // Namespaced: the PID namespace dies with its init, but the kernel tears it down asynchronously (a fork
      // bomb's thousands of processes take a while). The slot is not reused until all of them are gone.
      await this.killSlot(slot);
      await this.removeTree(work);
    }
    return results;
  }

  private async removeTree(dir: string): Promise<void> {
    try {
      await rm(dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // Same-uid modes: the program may have made directories we cannot enter; open them up and retry.
      const open = async (d: string): Promise<void> => {
        await chmod(d, 0o700).catch(() => undefined);
        for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await open(path.join(d, e.name));
      };
      await open(dir);
      await rm(dir, { recursive: true, force: true, maxRetries: 2 }).catch(() => undefined);
    }
  }

  private buildCommand(slot: Slot, work: string, step: RunStep, limits: Limits): string[] {
    const t = this.tools;
    const cpu = limits.cpuSeconds ?? Math.ceil(limits.timeoutMs / 1000) + 1;
    const nproc = limits.processes + this.nprocBaseline;
    // CPU: SIGXCPU at the soft limit (reported as killedFor 'cpu'), SIGKILL a second later.
    const rl = [`--cpu=${cpu}:${cpu + 1}`, `--fsize=${limits.fileSizeBytes}:${limits.fileSizeBytes}`, `--nproc=${nproc}:${nproc}`, `--nofile=${limits.openFiles}:${limits.openFiles}`, '--core=0:0'];
    if (limits.memoryRlimit === 'as') rl.push(`--as=${limits.memoryBytes}:${limits.memoryBytes}`);
    if (limits.memoryRlimit === 'data') rl.push(`--data=${limits.memoryBytes}:${limits.memoryBytes}`);
    const limited = t.prlimit ? [t.prlimit, ...rl, '--', ...step.argv] : [...step.argv];
    const dropRoot = [t.setpriv!, `--reuid=${slot.uid}`, `--regid=${slot.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];
    const script = () => [t.sh!, '-c', this.setupScript(), 'kiln-sandbox', step.writableCache ? slot.fstabRw : slot.fstabRo, work];
    switch (this.mode) {
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

  private runStep(slot: Slot, work: string, step: RunStep): Promise<RunResult> {
    const limits: Limits = { ...this.limits, ...step.limits };
    const argv = this.buildCommand(slot, work, step, limits);
    const subst = (v: string) => v.replaceAll('{work}', work).replaceAll('{cache}', slot.cacheDir);
    const env: Record<string, string> = {
      PATH: this.searchPath,
      HOME: work,
      TMPDIR: this.namespaced ? '/tmp' : path.join(work, '.tmp'),
      LANG: 'C.UTF-8',
      KILN_SANDBOX_TAG: slot.tag,
    };
    for (const [k, v] of Object.entries(step.env ?? {})) env[k] = subst(v);
    const out = new Capture(limits.keepBytes);
    const err = new Capture(limits.keepBytes);
    const started = performance.now();
    return new Promise<RunResult>((resolve, reject) => {
      let child: ChildProcess;
      try {
        const stdio: ('pipe' | 'ignore')[] = [step.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'];
        if (this.namespaced) stdio.push('pipe'); // the watchdog's pipe (see setupScript)
        child = spawn(argv[0]!, argv.slice(1), { cwd: work, env, detached: true, stdio });
      } catch (e) {
        reject(new SandboxError(`cannot start ${argv[0]}: ${(e as Error).message}`));
        return;
      }
      slot.child = child;
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
        if (!this.namespaced) void this.killSlot(slot);
      };
      const timer = setTimeout(() => kill('timeout'), limits.timeoutMs);
      const onData = (cap: Capture) => (chunk: Buffer) => {
        cap.push(chunk);
        if (out.total + err.total > limits.outputBytes && !killedFor) kill('output');
      };
      child.stdout!.on('data', onData(out));
      child.stderr!.on('data', onData(err));
      if (step.stdin !== undefined && child.stdin) {
        child.stdin.on('error', () => undefined);
        child.stdin.end(step.stdin);
      }
      const finish = () => {
        if (settled || !exited) return;
        settled = true;
        clearTimeout(timer);
        slot.child = undefined;
        let { code } = exited;
        let signal: string | null = exited.signal;
        let stderr = err.text();
        if (this.namespaced && code === 125 && stderr.includes(SETUP_FAILED)) {
          reject(new SandboxError(`sandbox setup failed: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
          return;
        }
        // Namespace modes: the init shell reports a signal as 128+n.
        if (this.namespaced && code !== null && code > 128 && code < 128 + 65 && SIGNALS[code - 128]) {
          signal = SIGNALS[code - 128]!;
          code = null;
        }
        if (!killedFor && signal === 'SIGXCPU') killedFor = 'cpu';
        if (!killedFor && signal === 'SIGXFSZ') killedFor = 'file-size';
        if (killedFor === 'output') stderr += `\n[kiln-sandbox: killed after more than ${limits.outputBytes} bytes of output]`;
        resolve({
          exitCode: code,
          signal,
          timedOut: killedFor === 'timeout',
          durationMs: Math.round(exited.at - started),
          stdout: out.text(),
          stderr,
          outputTruncated: out.truncated || err.truncated || killedFor === 'output',
          ...(killedFor ? { killedFor } : {}),
        });
      };
      child.on('error', (e) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          slot.child = undefined;
          reject(new SandboxError(`cannot start ${argv[0]}: ${e.message}`));
        }
      });
      child.on('exit', (code, signal) => {
        exited = { code, signal, at: performance.now() };
        if (!this.namespaced) {
          // A background process may still hold the pipes: kill what carries the slot's identity, and stop
          // waiting for the pipes to close soon after.
          void this.killSlot(slot);
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

  /** Pids of processes that carry a slot's identity (its uid in root modes, its environment tag otherwise). */
  private slotPids(slot: Slot): number[] {
    const pids: number[] = [];
    for (const pid of procPids()) {
      if (this.perSlotUid ? procUid(pid) === slot.uid : procHasTag(pid, slot.tag)) pids.push(Number(pid));
    }
    return pids;
  }

  /** Kills everything of a slot's identity (loops: a fork bomb may be forking while we look). */
  private async killSlot(slot: Slot): Promise<void> {
    if (this.mode === 'uid' && this.tools.setpriv && this.tools.sh) {
      // kill(-1) as the slot's uid reaches every process of that uid in one sweep.
      await new Promise<void>((resolve) => {
        const k = spawn(this.tools.setpriv!, [`--reuid=${slot.uid}`, `--regid=${slot.gid}`, '--clear-groups', '--', this.tools.sh!, '-c', 'kill -9 -1'], { stdio: 'ignore', env: {} });
        k.on('error', () => resolve());
        k.on('exit', () => resolve());
      });
    }
    for (let round = 0; round < 50; round++) {
      const pids = this.slotPids(slot);
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(round < 5 ? 5 : 20);
    }
  }

  /** Pids of processes left running with this sandbox's identity (should always be empty between runs). */
  leftovers(): number[] {
    return this.slots.filter((s) => !s.child).flatMap((s) => this.slotPids(s));
  }

  /** Kills what runs, waits for it, and removes the base dir. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new SandboxError('sandbox closed'));
    for (const s of this.slots) {
      if (s.child?.pid) {
        try {
          process.kill(-s.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await Promise.allSettled([...this.active]);
    for (const s of this.slots) await this.killSlot(s);
    process.off('exit', this.onExit);
    await this.removeTree(this.baseDir);
    if (this.uidLock) await rm(this.uidLock, { force: true });
  }

  private removeBaseDirSync(): void {
    try {
      rmSync(this.baseDir, { recursive: true, force: true });
    } catch {
      /* best effort at exit */
    }
  }
}
