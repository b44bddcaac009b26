/**
 * The local node's container runtime: runs one container of a pod as local processes (Linux, root, cgroup v1).
 *
 * Per container the state dir holds `containers/<id>/`: spec.json, the generated scripts (shim.ts), `log` (stdout and
 * stderr, O_APPEND), `shim` and `pid` ("<pid> <starttime>" of the shim and of the container's process group leader),
 * `exit`, `oom`, `start-error`, `lost` and `termination-log`. The agent spawns a detached shim (own session, stdio on
 * the log file, unref'd), so the container survives the agent's death; a new Runtime over the same state dir adopts
 * it from these files (a pid counts as alive only when /proc/<pid>/stat's start time matches the record).
 *
 * Exit status: exitCode is the container's as sh reports it (128+n when killed by signal n); `signal` is inferred
 * from an exitCode above 128, so a process that calls exit(130) itself also reads as SIGINT. 0 → Completed, 137 with
 * an OOM kill counted by its memory cgroup during the run → OOMKilled, else Error. A start failure before exec (a
 * mount, the working directory) exits 128 with the reason as message; a lost shim reads 255 with a message saying so.
 *
 * File binds bind the inode: a host file rewritten in place (same inode) is seen inside, one replaced by rename is not.
 * The shim stays in the agent's own cgroup (only the container joins the per-container ones): a service manager that
 * kills the agent's whole cgroup on stop would take the shims with it, so run the agent with KillMode=process.
 *
 * Host side effects (outside the state dir):
 * - cgroup dirs /sys/fs/cgroup/{memory,cpu,pids,freezer}/<cgroupName>/<podUid>/<container> (remove() deletes them);
 * - a missing mount point is created on the host filesystem before mounting (`mkdir -p` for a directory bind or a
 *   tmpfs; for a file bind its directories and an empty file), including the terminationMessagePath (so the
 *   default leaves an empty /dev/termination-log on the host's devtmpfs). Only the empty mount points are visible on
 *   the host: the mounts themselves live in the container's private mount namespace.
 */
import { spawn } from 'node:child_process';
import {
  chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, rmdirSync,
  statSync, writeFileSync,
} from 'node:fs';
import { constants } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { shimScripts, STAGING_ROOT, under } from './shim.ts';
import type { ContainerRecord, ContainerSpec, ContainerState } from './types.ts';

export type { ContainerRecord, ContainerSpec, ContainerState, Mount } from './types.ts';

/** The id of one run of a container: pod uid, container name and restart count. */
export const containerId = (podUid: string, container: string, restartCount: number) => `${podUid}_${container}_${restartCount}`;

const CGROUP_ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['pids', 'memory', 'cpu', 'freezer'] as const;
const TERMINATION_MESSAGE_MAX = 4096;
/** A record whose shim never announced itself within this time is lost (the agent died while starting it). */
const START_GRACE_MS = 10_000;
const SHIM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs containers as process trees in cgroups and private mount namespaces; all state lives in `stateDir`. */
export class Runtime {
  private readonly stateDir: string;
  private readonly cgroupName: string;

  constructor(opts: { stateDir: string; cgroupName: string }) {
    if (!isAbsolute(opts.stateDir)) throw new Error(`kiln runtime: stateDir must be an absolute path, got ${JSON.stringify(opts.stateDir)}`);
    const parts = opts.cgroupName.split('/');
    if (parts.some((p) => !NAME.test(p) || p === '..')) {
      throw new Error(`kiln runtime: cgroupName ${JSON.stringify(opts.cgroupName)} must be /-separated names of [A-Za-z0-9._-] (e.g. kiln/kiln-local-0)`);
    }
    this.stateDir = opts.stateDir;
    this.cgroupName = opts.cgroupName;
  }

  /** Starts a container; resolves once its process exists in its cgroups (or has already exited). Idempotent by id. */
  async start(spec: ContainerSpec): Promise<ContainerRecord> {
    const id = containerId(spec.podUid, spec.container, spec.restartCount);
    const bindIsDir = this.validate(spec, id);
    checkHost();
    const dir = this.dir(id);
    mkdirSync(dirname(dir), { recursive: true });
    try {
      mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A dir without spec.json is a start() cut short (the agent died in it) once it is old, else one in progress.
      if (existsSync(join(dir, 'spec.json')) || Date.now() - mtime(dir).getTime() < START_GRACE_MS) return this.waitStarted(id);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
    }
    let spawnError: Error | undefined;
    try {
      const cgroupDirs = CONTROLLERS.map((c) => this.cgroupDir(c, spec));
      for (const d of cgroupDirs) prepareCgroup(d);
      applyLimits(spec, (c) => this.cgroupDir(c, spec));
      // The baseline of a cgroup dir that could not be recreated (stragglers of an earlier run still in it).
      writeFileSync(join(dir, 'oom.base'), readHead(join(this.cgroupDir('memory', spec), 'memory.oom_control'), 4096));
      const scripts = shimScripts(spec, { dir, cgroupDirs, memoryCgroup: this.cgroupDir('memory', spec), bindIsDir });
      writeFileSync(join(dir, 'shim.sh'), scripts.shim);
      writeFileSync(join(dir, 'enter.sh'), scripts.enter);
      writeFileSync(join(dir, 'mounts.sh'), scripts.mounts);
      writeFileSync(join(dir, 'termination-log'), '');
      if (spec.user !== undefined) chownSync(join(dir, 'termination-log'), spec.user.uid, spec.user.gid);
      // spec.json last: its presence makes the record visible to get().
      writeFileSync(join(dir, 'spec.json.tmp'), JSON.stringify(spec));
      renameSync(join(dir, 'spec.json.tmp'), join(dir, 'spec.json'));
      const logFd = openSync(join(dir, 'log'), 'a');
      try {
        const child = spawn('/bin/sh', [join(dir, 'shim.sh')], {
          detached: true, stdio: ['ignore', logFd, logFd], env: { PATH: SHIM_PATH }, cwd: '/',
        });
        child.on('error', (e) => { spawnError = e; });
        child.unref();
      } finally {
        closeSync(logFd);
      }
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`kiln runtime: cannot start ${spec.podKey} container ${spec.container}: ${(e as Error).message}`);
    }
    return this.waitStarted(id, () => spawnError);
  }

  /** The record of a container from the state dir, or undefined when unknown (or still being started). */
  get(id: string): ContainerRecord | undefined {
    const dir = this.dir(id);
    let spec: ContainerSpec;
    try {
      spec = JSON.parse(readFileSync(join(dir, 'spec.json'), 'utf8')) as ContainerSpec;
    } catch {
      return undefined;
    }
    const exited = () => ({ id, spec, status: this.exitedStatus(dir) });
    if (readExit(dir) !== undefined) return exited();
    const shim = readPidFile(join(dir, 'shim'));
    if (shim === undefined) {
      if (Date.now() - mtime(join(dir, 'spec.json')).getTime() < START_GRACE_MS) return undefined;
      this.markLost(dir, `the shim of ${spec.podKey} container ${spec.container} never started (the agent died while starting it?)`);
      return exited();
    }
    if (!alive(shim)) {
      // The shim writes `exit` before it dies: look again now that it is gone.
      if (readExit(dir) === undefined) {
        this.markLost(dir, `the shim (pid ${shim.pid}) of ${spec.podKey} container ${spec.container} is gone without recording an exit (machine trouble?)`);
      }
      return exited();
    }
    const pid = readPidFile(join(dir, 'pid'));
    if (pid === undefined) return undefined;
    return { id, spec, status: { state: 'running', pid: pid.pid, startedAt: mtime(join(dir, 'pid')) } };
  }

  /** Every container this state dir knows (what a restarted agent adopts). */
  list(): ContainerRecord[] {
    let ids: string[];
    try {
      ids = readdirSync(join(this.stateDir, 'containers'));
    } catch {
      return [];
    }
    return ids.sort().map((id) => this.get(id)).filter((r): r is ContainerRecord => r !== undefined);
  }

  /**
   * SIGTERM to the container's process group; after graceSeconds SIGKILL to every process in its cgroups (also those
   * that left the group); resolves once the exit is recorded.
   */
  async stop(id: string, graceSeconds: number): Promise<void> {
    let rec = this.get(id);
    if (rec === undefined) {
      if (!existsSync(this.dir(id))) throw new Error(`kiln runtime: stop(${id}): no such container in ${this.stateDir}`);
      rec = await this.waitStarted(id);
    }
    const spec = rec.spec;
    if (rec.status.state === 'running') {
      const pid = readPidFile(join(this.dir(id), 'pid'));
      if (pid !== undefined && alive(pid)) signalGroup(pid.pid, 'SIGTERM');
      const deadline = Date.now() + Math.max(0, graceSeconds) * 1000;
      while (Date.now() < deadline && this.get(id)?.status.state !== 'exited') await sleep(20);
    }
    if (this.get(id)?.status.state !== 'exited') await this.killCgroups(spec);
    for (let i = 0; this.get(id)?.status.state !== 'exited'; i++) {
      if (i === 1500) throw new Error(`kiln runtime: stop(${id}): the container's processes are killed but its shim recorded no exit in 30 s; see ${this.logFile(id)}`);
      await sleep(20);
    }
    await this.killCgroups(spec); // leftovers, e.g. of a lost shim
  }

  /** Forgets an exited container: its state dir (log included) and its cgroup dirs. */
  remove(id: string): void {
    const rec = this.get(id);
    if (rec?.status.state === 'running') throw new Error(`kiln runtime: remove(${id}): the container is still running; stop() it first`);
    rmSync(this.dir(id), { recursive: true, force: true });
    if (rec === undefined) return;
    const spec = rec.spec;
    const sameCgroup = this.list().some((r) => r.spec.podUid === spec.podUid && r.spec.container === spec.container);
    if (sameCgroup) return; // another run of this container still uses the cgroup dirs
    for (const c of CONTROLLERS) {
      const d = this.cgroupDir(c, spec);
      for (const p of [d, dirname(d)]) {
        try {
          rmdirSync(p);
        } catch {
          // ENOENT, or the pod dir still holds other containers' cgroups
        }
      }
    }
  }

  /** The container's combined stdout and stderr, raw bytes. */
  logFile(id: string): string {
    return join(this.dir(id), 'log');
  }

  /** What the container wrote at its terminationMessagePath (at most 4096 bytes; '' when nothing). */
  readTerminationMessage(id: string): string {
    return readHead(join(this.dir(id), 'termination-log'), TERMINATION_MESSAGE_MAX);
  }

  private dir(id: string): string {
    if (!NAME.test(id)) throw new Error(`kiln runtime: ${JSON.stringify(id)} is not a container id (containerId(podUid, container, restartCount))`);
    return join(this.stateDir, 'containers', id);
  }

  private cgroupDir(controller: string, spec: ContainerSpec): string {
    return join(CGROUP_ROOT, controller, this.cgroupName, spec.podUid, spec.container);
  }

  private async waitStarted(id: string, spawnError: () => Error | undefined = () => undefined): Promise<ContainerRecord> {
    for (let i = 0; ; i++) {
      const rec = this.get(id);
      if (rec !== undefined) return rec;
      const e = spawnError();
      if (e !== undefined) throw new Error(`kiln runtime: cannot spawn the shim of ${id}: ${e.message}`);
      if (i > 5000) throw new Error(`kiln runtime: container ${id} did not start in 10 s; see ${this.logFile(id)}`);
      await sleep(i < 50 ? 1 : 5);
    }
  }

  private exitedStatus(dir: string): ContainerState {
    const exitCode = readExit(dir) ?? 255;
    const sig = exitCode > 128 ? signalName(exitCode - 128) : undefined;
    const lost = readHead(join(dir, 'lost'), TERMINATION_MESSAGE_MAX);
    const startError = readHead(join(dir, 'start-error'), TERMINATION_MESSAGE_MAX);
    const message = lost !== '' ? lost : startError !== '' ? startError : readHead(join(dir, 'termination-log'), TERMINATION_MESSAGE_MAX);
    const reason = exitCode === 0 ? 'Completed' : exitCode === 137 && lost === '' && oomKilled(dir) ? 'OOMKilled' : 'Error';
    const startedAt = existsSync(join(dir, 'pid')) ? mtime(join(dir, 'pid')) : mtime(join(dir, 'spec.json'));
    return { state: 'exited', exitCode, ...(sig === undefined ? {} : { signal: sig }), reason, message, startedAt, finishedAt: mtime(join(dir, 'exit')) };
  }

  private markLost(dir: string, message: string): void {
    writeFileSync(join(dir, 'lost'), message);
    writeFileSync(join(dir, 'exit.lost'), '255\n');
    renameSync(join(dir, 'exit.lost'), join(dir, 'exit'));
  }

  /** SIGKILL to every process in the container's cgroups (frozen meanwhile, so none forks away), until they are empty. */
  private async killCgroups(spec: ContainerSpec): Promise<void> {
    const freezer = this.cgroupDir('freezer', spec);
    const procs = () => new Set(CONTROLLERS.flatMap((c) => readPids(join(this.cgroupDir(c, spec), 'cgroup.procs'))));
    for (let round = 0; ; round++) {
      const pids = procs();
      if (pids.size === 0) return;
      if (round === 250) throw new Error(`kiln runtime: processes ${[...pids].join(' ')} of ${spec.podKey} container ${spec.container} survive SIGKILL (in uninterruptible sleep?)`);
      const frozen = writeIfExists(join(freezer, 'freezer.state'), 'FROZEN');
      try {
        for (let i = 0; frozen && i < 50 && readHead(join(freezer, 'freezer.state'), 64).trim() !== 'FROZEN'; i++) await sleep(2);
        for (const p of procs()) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      } finally {
        if (frozen) writeIfExists(join(freezer, 'freezer.state'), 'THAWED');
      }
      await sleep(round < 10 ? 2 : 20);
    }
  }

  /** Checks a spec before anything is created; returns per mount whether a bind's host path is a directory. */
  private validate(spec: ContainerSpec, id: string): boolean[] {
    const bad = (what: string) => new Error(`kiln runtime: ${spec.podKey} container ${spec.container}: ${what}`);
    if (!NAME.test(spec.podUid) || !NAME.test(spec.container) || !NAME.test(id)) {
      throw bad(`podUid ${JSON.stringify(spec.podUid)} and container ${JSON.stringify(spec.container)} must be names of [A-Za-z0-9._-]`);
    }
    if (!Number.isInteger(spec.restartCount) || spec.restartCount < 0) throw bad(`restartCount must be a non-negative integer, got ${spec.restartCount}`);
    const argv0 = spec.argv[0];
    if (argv0 === undefined || argv0 === '') throw bad('argv is empty: give the command to run');
    if (argv0.includes('=')) throw bad(`argv[0] ${JSON.stringify(argv0)} holds '=', which env(1) would take for a variable: give the command by a path without '='`);
    for (const k of Object.keys(spec.env)) {
      if (k === '' || k.includes('=')) throw bad(`env name ${JSON.stringify(k)} is not a variable name (empty or with '=')`);
    }
    for (const [what, p] of [['workingDir', spec.workingDir], ['terminationMessagePath', spec.terminationMessagePath]] as const) {
      if (!isAbsolute(p)) throw bad(`${what} must be an absolute path, got ${JSON.stringify(p)}`);
    }
    if (spec.netns !== undefined && !existsSync(spec.netns)) throw bad(`network namespace ${spec.netns} does not exist (was the pod's sandbox created?)`);
    if (spec.user !== undefined && ![spec.user.uid, spec.user.gid].every((n) => Number.isInteger(n) && n >= 0)) {
      throw bad(`user uid and gid must be non-negative integers, got ${JSON.stringify(spec.user)}`);
    }
    for (const [k, v] of Object.entries(spec.limits)) {
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw bad(`limits.${k} must be a positive integer, got ${v}`);
    }
    return spec.mounts.map((m, i) => {
      if (!isAbsolute(m.containerPath)) throw bad(`mount ${i}: containerPath must be absolute, got ${JSON.stringify(m.containerPath)}`);
      if (m.kind === 'tmpfs') {
        if (m.sizeBytes !== undefined && !(Number.isInteger(m.sizeBytes) && m.sizeBytes > 0)) throw bad(`mount ${i} (tmpfs at ${m.containerPath}): sizeBytes must be a positive integer`);
        return true;
      }
      const src = m.hostPath;
      if (src === undefined || !isAbsolute(src)) throw bad(`mount ${i} (bind at ${m.containerPath}): hostPath must be an absolute path`);
      // Mounts are made in the container's view of the same filesystem: a source an earlier mount would hide is
      // held at STAGING_ROOT first (shim.ts), which no mount may cover.
      const covering = spec.mounts.slice(0, i).some((e) => under(src, e.containerPath)) ? spec.mounts.find((e) => under(STAGING_ROOT, e.containerPath)) : undefined;
      if (covering !== undefined) throw bad(`mount ${i}: hostPath ${src} lies under an earlier mount, and the mount at ${covering.containerPath} covers ${STAGING_ROOT} where the runtime would hold it: reorder the mounts or move the source`);
      try {
        return statSync(src).isDirectory();
      } catch {
        throw bad(`mount ${i} (bind at ${m.containerPath}): hostPath ${src} does not exist`);
      }
    });
  }
}

function checkHost(): void {
  if (process.getuid?.() !== 0) throw new Error('kiln runtime: needs root (cgroups, mount namespaces): run the local node agent as root');
  for (const c of CONTROLLERS) {
    if (!existsSync(join(CGROUP_ROOT, c, 'cgroup.procs'))) {
      throw new Error(`kiln runtime: the cgroup v1 ${c} hierarchy is not mounted at ${join(CGROUP_ROOT, c)} (mount -t cgroup -o ${c} cgroup ${join(CGROUP_ROOT, c)})`);
    }
  }
}

/** A cgroup dir left by an earlier run of the same container is recreated when empty, so its counters start at 0. */
function prepareCgroup(d: string): void {
  try {
    rmdirSync(d);
  } catch {
    // absent, or busy with a previous run's stragglers: reuse it
  }
  mkdirSync(d, { recursive: true });
}

function applyLimits(spec: ContainerSpec, dir: (controller: string) => string): void {
  const { memoryBytes, cpuMillis, pids } = spec.limits;
  const mem = dir('memory');
  writeIfExists(join(mem, 'memory.memsw.limit_in_bytes'), '-1');
  writeFileSync(join(mem, 'memory.limit_in_bytes'), memoryBytes === undefined ? '-1' : String(memoryBytes));
  // No swap either: the same limit for memory+swap, so a container over its limit is OOM-killed, not swapped.
  if (memoryBytes !== undefined) writeIfExists(join(mem, 'memory.memsw.limit_in_bytes'), String(memoryBytes));
  const cpu = dir('cpu');
  writeFileSync(join(cpu, 'cpu.cfs_period_us'), '100000');
  writeFileSync(join(cpu, 'cpu.cfs_quota_us'), cpuMillis === undefined ? '-1' : String(Math.max(1000, cpuMillis * 100)));
  writeFileSync(join(dir('pids'), 'pids.max'), pids === undefined ? 'max' : String(pids));
}

function writeIfExists(path: string, value: string): boolean {
  try {
    writeFileSync(path, value, { flag: 'r+' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** The exit status the shim recorded, or undefined while none is. */
function readExit(dir: string): number | undefined {
  const t = readHead(join(dir, 'exit'), 64);
  return /^\d+\n$/.test(t) ? Number(t) : undefined;
}

/** A "<pid> <starttime>" file; undefined while absent or not fully written. */
function readPidFile(path: string): { pid: number; start: string } | undefined {
  const m = /^(\d+) (\d+)\n$/.exec(readHead(path, 64));
  return m === null ? undefined : { pid: Number(m[1]), start: m[2] ?? '' };
}

/** Field 22 (starttime) of /proc/<pid>/stat, or undefined when there is no such process. */
function procStartTime(pid: number): string | undefined {
  const stat = readHead(`/proc/${pid}/stat`, 4096);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

/** Alive, and the same process as recorded (not a recycled pid); a zombie counts as gone. */
function alive(p: { pid: number; start: string }): boolean {
  const stat = readHead(`/proc/${p.pid}/stat`, 4096);
  if (stat === '') return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X' && procStartTime(p.pid) === p.start;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone already
  }
}

function signalName(n: number): string | undefined {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
}

/** The memory cgroup counted an OOM kill during this run (counters copied by the shim at exit, less the baseline). */
function oomKilled(dir: string): boolean {
  const counters = (file: string) => new Map(
    readHead(join(dir, file), 4096).split('\n').map((l) => l.split(' ')).map(([k, v]) => [k ?? '', Number(v)] as const),
  );
  const now = counters('oom');
  const base = counters('oom.base');
  const kills = now.get('oom_kill');
  // Kernels before 4.13 have no oom_kill count: then a hit of the limit with SIGKILL is the best evidence.
  return kills !== undefined && !Number.isNaN(kills) ? kills > (base.get('oom_kill') ?? 0) : (now.get('failcnt') ?? 0) > 0;
}

function readPids(path: string): number[] {
  return readHead(path, 1 << 20).split('\n').filter((l) => l !== '').map(Number);
}

function mtime(path: string): Date {
  try {
    return statSync(path).mtime;
  } catch {
    return new Date();
  }
}

/** At most `max` bytes of a file as UTF-8; '' when it does not exist. */
function readHead(path: string, max: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    for (let r = -1; r !== 0 && n < max; n += r) r = readSync(fd, buf, n, max - n, null);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}
