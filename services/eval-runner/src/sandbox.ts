/**
 * The eval runner's sandbox: runs untrusted programs (a model's completion glued to a benchmark's tests), one
 * at a time per slot, contained, and reports how each ended. How much is contained depends on what the
 * machine allows; docs/sandbox.md describes each isolation mode, what it contains and what it does not.
 *
 * This module holds the slots and their queue, and puts the parts together: `sandbox/probe.ts` (which modes
 * this machine allows), `sandbox/mounts.ts` (the namespace's mount layout, pure), `sandbox/procfs.ts` (which
 * processes carry a slot's identity), `sandbox/leases.ts` (slot uids and base dirs shared with other
 * sandboxes), `sandbox/workdir.ts` (a run's work directory), `sandbox/spawn.ts` (the command line, the
 * spawn and the capture of one step), `sandbox/zygote.ts` and `zygote.py` (the warm Python of a slot).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { claimUids, ownerText, removeStale, UID_BLOCK, UID_BLOCK_START } from './sandbox/leases.ts';
import { fstab, isUnder, sampleMounts, setupScript, writableMounts, type Cover, type FstabInput } from './sandbox/mounts.ts';
import { candidateModes, closedAncestor, findTools, hasSlotUids, hostCovers, isNamespaced, missingTools, modeWarnings, SYSTEM_DIRS, type Tools } from './sandbox/probe.ts';
import { pidsOf, readMountinfo, tasksOfMyUid, TAG_VARIABLE } from './sandbox/procfs.ts';
import { commandLine, runProcess, stepRlimits } from './sandbox/spawn.ts';
import { makeWorkDir, removeTree } from './sandbox/workdir.ts';
import { Zygote, zygoteCommand, ZygoteDied } from './sandbox/zygote.ts';
import { DEFAULT_LIMITS, SandboxError, type Isolation, type IsolationMode, type Limits, type PythonStats, type RunRequest, type RunResult, type RunStep, type SandboxOptions, type StepsRequest } from './sandbox/types.ts';

export { findExecutable } from './sandbox/probe.ts';
export * from './sandbox/types.ts';

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
  /** The slot's warm Python (full mode), started on its first Python step. */
  zygote?: Zygote;
  /** What the last step's own sweep found: 0 = none of its processes left (a zygote step), else unknown. */
  swept?: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
  /** Python steps go through the slots' zygotes (until one fails to start: then `zygoteProblem`). */
  private readonly zygoteOn: boolean;
  private zygoteProblem: string | undefined;
  private readonly preload: readonly string[];
  /** Bumped by each fstab change: a zygote set up from an older one is replaced. */
  private fstabGeneration = 0;
  private stats = { zygoteStarts: 0, zygoteSteps: 0, spawnSteps: 0 };
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
    const mountinfo = this.namespaced ? readMountinfo() : undefined;
    this.readOnly = !this.namespaced ? [] : mountinfo === undefined ? ['/'] : writableMounts(mountinfo);
    this.nprocBaseline = mode === 'none' ? tasksOfMyUid() + 32 : 0;
    this.preload = opts.zygotePreload ?? [];
    // The zygote path gives a sample what `full` gives it (namespaces, uid, rlimits per sample); the other modes
    // start a fresh interpreter per step (docs/sandbox.md#the-python-zygote).
    this.zygoteOn = (opts.zygote ?? true) && mode === 'full';
    if (opts.zygote === true && mode !== 'full') this.warnings.push(`the Python zygote needs full isolation (have ${mode}): each Python step starts a fresh interpreter`);
  }

  /** Probes what the machine allows (strongest mode first) and makes the slots. */
  static async create(opts: SandboxOptions = {}): Promise<Sandbox> {
    for (const m of opts.zygotePreload ?? []) if (!/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/.test(m)) throw new SandboxError(`zygotePreload: not a module name: ${m}`);
    const tools = findTools();
    const isRoot = process.getuid?.() === 0;
    const forced = opts.isolation && opts.isolation !== 'auto' ? opts.isolation : undefined;
    const warnings: string[] = [];
    for (const mode of candidateModes(forced, isRoot)) {
      const missing = missingTools(mode, tools, isRoot);
      if (missing) {
        warnings.push(`${mode} isolation unavailable: ${missing}`);
        if (forced) throw new SandboxError(warnings.join('; '));
        continue;
      }
      const root = path.resolve(opts.baseDir ?? os.tmpdir());
      if (['/dev/shm', '/proc', '/sys'].some((d) => isUnder(root, d)) && isNamespaced(mode)) {
        warnings.push(`${mode} isolation unavailable: the base dir may not be under /dev/shm, /proc or /sys`);
        continue;
      }
      await mkdir(root, { recursive: true });
      await removeStale(root);
      const baseDir = await mkdtemp(path.join(root, 'kiln-sandbox-'));
      await writeFile(path.join(baseDir, '.owner'), ownerText());
      const sb = new Sandbox(mode, baseDir, opts, tools, [...warnings]);
      try {
        await sb.init(opts);
        const problem = await sb.probe();
        if (!problem) {
          sb.warnings.push(...modeWarnings(mode, isRoot, tools));
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

  private get namespaced(): boolean {
    return isNamespaced(this.mode);
  }

  private get perSlotUid(): boolean {
    return hasSlotUids(this.mode);
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
      const { covers, hidden } = hostCovers(this.limits.tmpBytes, opts.hide ?? []);
      for (const c of covers) this.covers.set(c.path, c);
      this.hidden.push(...hidden);
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
      pythonSteps: this.zygoteOn && !this.zygoteProblem ? 'zygote' : 'spawn',
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

  private fstabInput(slot: Slot, writableCache: boolean): FstabInput {
    return { slotDir: slot.dir, cacheDir: slot.cacheDir, tmpBytes: this.limits.tmpBytes, exposed: [...this.exposed], covers: [...this.covers.values()], seeds: [...this.seeds], writableCache };
  }

  private fstab(slot: Slot, writableCache: boolean): string {
    return fstab(this.fstabInput(slot, writableCache));
  }

  private async writeFstabs(): Promise<void> {
    if (!this.namespaced) return;
    this.fstabGeneration++;
    for (const slot of this.slots) {
      for (const [file, rw] of [[slot.fstabRw, true], [slot.fstabRo, false]] as const) {
        const tmp = `${file}.${randomBytes(4).toString('hex')}`;
        await writeFile(tmp, this.fstab(slot, rw), { mode: 0o600 });
        await rename(tmp, file);
      }
    }
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
    const results: RunResult[] = [];
    const make = () => makeWorkDir(work, req.files, { tmpDir: !this.namespaced, ...(this.perSlotUid ? { owner: { uid: slot.uid, gid: slot.gid } } : {}) });
    // Whether every step swept up after itself: a zygote step is swept inside the slot's PID namespace, which
    // holds all a sample can start; any other step, or one its zygote could not vouch for, gets the host's sweep.
    let vouched = false;
    try {
      await make();
      let all = true;
      for (const step of req.steps) {
        const r = await this.runStep(slot, work, step, make);
        all &&= slot.swept === 0;
        results.push(r);
        if (r.exitCode !== 0) break;
      }
      vouched = all;
    } finally {
      // Namespaced: the PID namespace dies with its init, but the kernel tears it down asynchronously (a fork
      // bomb's thousands of processes take a while). The slot is not reused until all of them are gone.
      if (!vouched) await this.killSlot(slot);
      await removeTree(work);
    }
    return results;
  }

  /** How the Python steps ran so far: through zygotes or fresh interpreters. */
  pythonStats(): PythonStats {
    return { ...this.stats };
  }

  /** Runs one step; `remake` makes the work dir afresh (for a Python step whose zygote died under it). */
  private async runStep(slot: Slot, work: string, step: RunStep, remake: () => Promise<void>): Promise<RunResult> {
    const limits: Limits = { ...this.limits, ...step.limits };
    slot.swept = undefined;
    if (step.python) {
      for (let attempt = 0; this.zygoteOn && !this.zygoteProblem && !step.writableCache; attempt++) {
        const z = await this.zygoteFor(slot, step.python.executable);
        if (!z) break;
        if (attempt === 0) this.stats.zygoteSteps++;
        try {
          const r = await this.zygoteStep(z, slot, work, step, limits);
          slot.swept = z.lastSurvivors;
          return r;
        } catch (e) {
          // A zygote killed from outside before the sample said anything: once more, afresh, with a new zygote.
          if (!(e instanceof ZygoteDied) || !e.unheard || attempt > 0) throw e;
          await removeTree(work);
          await remake();
        }
      }
      this.stats.spawnSteps++;
    }
    return this.spawnStep(slot, work, step, limits);
  }

  private zygoteStep(z: Zygote, slot: Slot, work: string, step: RunStep, limits: Limits): Promise<RunResult> {
    const python = step.python!;
    return z.run(
      {
        work,
        uid: slot.uid,
        gid: slot.gid,
        // As the spawn path's setup shell leaves them (it cds into the work dir).
        env: { ...this.stepEnv(slot, work, step), PWD: work, OLDPWD: work },
        ...(step.stdin !== undefined ? { stdin: step.stdin } : {}),
        main: python.main,
        path: python.path ?? [],
        rlimits: stepRlimits(limits, this.nprocBaseline),
        mounts: sampleMounts(this.fstabInput(slot, false)),
      },
      limits,
    );
  }

  private spawnStep(slot: Slot, work: string, step: RunStep, limits: Limits): Promise<RunResult> {
    const argv = commandLine({
      mode: this.mode,
      tools: this.tools,
      argv: step.argv,
      limits,
      nprocBaseline: this.nprocBaseline,
      uid: slot.uid,
      gid: slot.gid,
      ...(this.namespaced ? { setup: { script: setupScript(this.tools.mount!, this.readOnly, [...this.covers.keys()]), fstab: step.writableCache ? slot.fstabRw : slot.fstabRo, work } } : {}),
    });
    return runProcess({
      argv,
      cwd: work,
      env: this.stepEnv(slot, work, step),
      ...(step.stdin !== undefined ? { stdin: step.stdin } : {}),
      limits,
      namespaced: this.namespaced,
      onChild: (child) => (slot.child = child),
      killIdentity: () => this.killSlot(slot),
    });
  }

  /** A step's environment: nothing of the runner's but PATH and LANG, plus what the step sets. */
  private stepEnv(slot: Slot, work: string, step: RunStep): Record<string, string> {
    const subst = (v: string) => v.replaceAll('{work}', work).replaceAll('{cache}', slot.cacheDir);
    const env: Record<string, string> = {
      PATH: this.searchPath,
      HOME: work,
      TMPDIR: this.namespaced ? '/tmp' : path.join(work, '.tmp'),
      LANG: 'C.UTF-8',
      [TAG_VARIABLE]: slot.tag,
    };
    for (const [k, v] of Object.entries(step.env ?? {})) env[k] = subst(v);
    return env;
  }

  /**
   * The slot's zygote for `python`, started (again) when there is none, it died, it runs another interpreter or
   * the slot's mounts changed since it started. Undefined when zygotes cannot start here: Python then spawns.
   */
  private async zygoteFor(slot: Slot, python: string): Promise<Zygote | undefined> {
    const z = slot.zygote;
    if (z?.alive && z.python === python && z.generation === this.fstabGeneration) return z;
    if (z) {
      z.kill();
      await z.closed;
      slot.zygote = undefined;
    }
    const argv = zygoteCommand({
      tools: this.tools,
      setupScript: setupScript(this.tools.mount!, this.readOnly, [...this.covers.keys()]),
      fstab: slot.fstabRo,
      slotDir: slot.dir,
      python,
      preload: this.preload,
    });
    try {
      slot.zygote = await Zygote.start(argv, { PATH: this.searchPath, HOME: slot.dir, LANG: 'C.UTF-8' }, slot.dir, python, this.fstabGeneration);
      this.stats.zygoteStarts++;
      return slot.zygote;
    } catch (e) {
      this.zygoteProblem = (e as Error).message;
      this.warnings.push(`${this.zygoteProblem}: each Python step starts a fresh interpreter`);
      return undefined;
    }
  }

  /** Pids of processes that carry a slot's identity (its uid in root modes, its environment tag otherwise). */
  private slotPids(slot: Slot): number[] {
    return pidsOf(this.perSlotUid ? { uid: slot.uid } : { tag: slot.tag });
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
    for (const s of this.slots) {
      s.zygote?.kill();
      await s.zygote?.closed;
      s.zygote = undefined;
    }
    for (const s of this.slots) await this.killSlot(s);
    process.off('exit', this.onExit);
    await removeTree(this.baseDir);
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
