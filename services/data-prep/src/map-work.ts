/**
 * The per-record work of the map step: language, heuristic filters, parse filter, content hash,
 * decontamination, redaction and MinHash band keys. It depends on nothing but the record, so it runs in
 * worker threads; the order-dependent decisions (exact dedup keeps the first copy, candidates are numbered
 * in input order) stay with the caller, which takes results in input order. Output is therefore identical
 * whatever the number of workers.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Decontaminator, type BenchmarkText, type DecontaminationConfig } from './decontaminate.ts';
import { check, type FilterConfig } from './filters.ts';
import { detectLanguage, normalizeLanguage } from './language.ts';
import { bandKeys, signatureOfTokens, tokenHashes, type MinHashConfig } from './minhash.ts';
import { ParseFilter } from './parse.ts';
import { PII_KINDS, redact, type PiiKind, type RedactOptions } from './pii.ts';

/** Everything the work needs; plain data, so it can be handed to a worker. */
export interface WorkConfig {
  readonly filters: FilterConfig;
  readonly parseLanguages: readonly string[];
  readonly pii: RedactOptions | false;
  readonly near: Required<MinHashConfig> | null;
  readonly lsh: { readonly bands: number; readonly rows: number } | null;
  readonly benchmarks: readonly BenchmarkText[];
  readonly decontamination?: DecontaminationConfig;
}

export interface WorkInput {
  readonly path: string;
  readonly content: string;
  readonly language?: string;
}

export type WorkOutput =
  | { readonly drop: string }
  | {
      /** sha256 (base64) of the content as read: exact dedup compares it. */
      readonly hash: string;
      readonly contaminated: boolean;
      /** The content after redaction; absent when redaction changed nothing (the input's content stands). */
      readonly content?: string;
      readonly language: string | null;
      readonly pii: Readonly<Partial<Record<PiiKind, number>>>;
      /** Band keys; absent when near dedup is off or the text is shorter than one shingle. */
      readonly keys?: Uint32Array;
    };

export class RecordWork {
  private readonly cfg: WorkConfig;
  private readonly parser: ParseFilter | undefined;
  private readonly decon: Decontaminator | undefined;

  private constructor(cfg: WorkConfig, parser: ParseFilter | undefined) {
    this.cfg = cfg;
    this.parser = parser;
    this.decon = cfg.benchmarks.length ? new Decontaminator(cfg.benchmarks, cfg.decontamination) : undefined;
  }

  static async create(cfg: WorkConfig): Promise<RecordWork> {
    return new RecordWork(cfg, cfg.parseLanguages.length ? await ParseFilter.create(cfg.parseLanguages) : undefined);
  }

  process(r: WorkInput): WorkOutput {
    const language = normalizeLanguage(r.language) ?? detectLanguage(r.path, r.content.slice(0, 200));
    const verdict = check({ path: r.path, content: r.content, ...(language ? { language } : {}) }, this.cfg.filters);
    if (!verdict.keep) return { drop: verdict.reason };
    if (this.parser?.parses(r.content, language, r.path) === false) return { drop: 'unparseable' };
    const hash = createHash('sha256').update(r.content).digest('base64');
    // Token hashes once: decontamination reads the content as read, MinHash the content after redaction, and
    // these are the same text unless redaction found something.
    let tokens = this.decon || this.cfg.near ? tokenHashes(r.content) : undefined;
    const contaminated = this.decon ? this.decon.checkTokens(tokens!) !== undefined : false;
    if (contaminated) return { hash, contaminated, language: language ?? null, pii: {} };
    let content: string | undefined;
    const pii: Partial<Record<PiiKind, number>> = {};
    if (this.cfg.pii !== false) {
      const red = redact(r.content, this.cfg.pii);
      if (red.text !== r.content) {
        content = red.text;
        tokens = undefined;
      }
      for (const k of PII_KINDS) if (red.counts[k]) pii[k] = red.counts[k];
    }
    const sig = this.cfg.near ? signatureOfTokens(tokens ?? tokenHashes(content ?? r.content), this.cfg.near) : undefined;
    const keys = sig && this.cfg.lsh ? bandKeys(sig, this.cfg.lsh.bands, this.cfg.lsh.rows) : undefined;
    // Unchanged content is not sent back: the caller has it (a worker would copy it across threads again).
    return { hash, contaminated, ...(content !== undefined ? { content } : {}), language: language ?? null, pii, ...(keys ? { keys } : {}) };
  }
}

/** CPUs this process may use: the cgroup's quota (a pod's CPU limit) when lower than the cores it sees. */
export function usableCpus(cpuMax = '/sys/fs/cgroup/cpu.max'): number {
  const cores = availableParallelism();
  try {
    const [quota, period] = readFileSync(cpuMax, 'utf8').trim().split(/\s+/);
    if (quota && quota !== 'max' && Number(period) > 0) return Math.max(1, Math.min(cores, Math.ceil(Number(quota) / Number(period))));
  } catch {
    // No cgroup v2 quota here.
  }
  return cores;
}

/**
 * Workers to use by default: `KILN_WORKERS` if set, else one per usable CPU (the main thread only reads,
 * decides and writes), at most 8; none on one CPU.
 */
export function defaultWorkers(env: NodeJS.ProcessEnv = process.env): number {
  if (env.KILN_WORKERS !== undefined && /^\d+$/.test(env.KILN_WORKERS)) return Number(env.KILN_WORKERS);
  const cpus = usableCpus();
  return cpus > 1 ? Math.min(cpus, 8) : 0;
}

/**
 * Runs batches of records through `RecordWork`, in `workers` threads (0: in this thread). Results come back
 * per batch; the caller awaits batches in the order it submitted them.
 */
export class WorkPool {
  private readonly threads: { worker: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, { resolve: (o: WorkOutput[]) => void; reject: (e: Error) => void }>();
  private local: RecordWork | undefined;
  private next = 0;
  private failed: Error | undefined;

  private constructor() {}

  /** Threads doing the work (0: this one). */
  get size(): number {
    return this.threads.length;
  }

  static async create(cfg: WorkConfig, workers: number): Promise<WorkPool> {
    const pool = new WorkPool();
    if (workers <= 0) {
      pool.local = await RecordWork.create(cfg);
      return pool;
    }
    const ready: Promise<void>[] = [];
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(new URL('./map-worker.ts', import.meta.url), { workerData: cfg });
      const t = { worker, busy: 0 };
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.once('message', (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error ?? 'worker failed to start'))));
          worker.once('error', reject);
        }),
      );
      worker.on('message', (m: { id?: number; outputs?: WorkOutput[]; error?: string }) => {
        if (m.id === undefined) return;
        t.busy--;
        const p = pool.pending.get(m.id);
        pool.pending.delete(m.id);
        if (m.error) p?.reject(new Error(m.error));
        else p?.resolve(m.outputs!);
      });
      worker.on('error', (e) => pool.fail(e));
      worker.on('exit', (code) => {
        if (code !== 0) pool.fail(new Error(`a data-prep worker exited with code ${code}`));
      });
      pool.threads.push(t);
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Processes one batch; records keep their order within it. */
  submit(batch: readonly WorkInput[]): Promise<WorkOutput[]> {
    if (this.local) {
      const local = this.local;
      return Promise.resolve(batch.map((r) => local.process(r)));
    }
    if (this.failed) return Promise.reject(this.failed);
    const t = this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.next++;
    t.busy++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      t.worker.postMessage({ id, records: batch });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    this.threads.length = 0;
  }
}
