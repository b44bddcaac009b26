/**
 * The read end of the training progress channel. Rank 0 of a train stage prints one kiln.progress/v1 JSON
 * line per log interval on stdout (schemas/stages/progress-line.schema.json); this reader fetches the tail of
 * the rank-0 pod's log through the API server's pods/log and keeps the last valid line per pod.
 *
 * reconcile is synchronous and reads only caches, so the reader is one more cache: `progress()` answers from
 * what was last read and, when that is older than the minimum interval, starts a read in the background
 * (a few at a time). A read that brings new numbers wakes the run. A read that fails is never an error of the
 * reconcile: the last numbers stay, with a note saying why they may be stale.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { apiMessage, httpStatus, type RunningAttempt } from '@kiln/cluster';
import { lastProgressLine, progressOfLine, type Progress } from '@kiln/stage';
import type { Clock } from './clock.ts';

/** Reads a pod's log tail as text (readPodLog in production; anything that speaks pods/log in tests). */
export type LogTail = (namespace: string, pod: string, q: { container: string; tailLines: number; limitBytes: number }) => Promise<string>;

export interface ProgressReaderOptions {
  readonly readLog: LogTail;
  readonly clock: Clock;
  /** Called with the run's key (`namespace/name`) when a read brought new progress. */
  readonly wake: (runKey: string) => void;
  /** A pod's log is read at most this often, ms. Default 5000. */
  readonly minIntervalMs?: number;
  /** Log reads in flight at once, over all runs. Default 4. */
  readonly concurrency?: number;
  /** Lines of the tail read each time. Default 200 (progress lines are ~350 bytes; stderr is interleaved). */
  readonly tailLines?: number;
  /** Bytes at most per read. Default 128 KiB. */
  readonly limitBytes?: number;
  /** Entries of pods not asked about for this long are forgotten, ms. Default 10 minutes. */
  readonly forgetAfterMs?: number;
  readonly log?: (line: string) => void;
}

interface Entry {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
  runKey: string;
  /** When the last read started (-Infinity: never). */
  readAt: number;
  /** When `progress()` last asked about this pod. */
  askedAt: number;
  inFlight: boolean;
  /** Whether a read has finished (with or without a line). */
  read: boolean;
  line?: Progress;
  error?: string;
}

const INDEX = 'batch.kubernetes.io/job-completion-index';

/** Rank 0 of a training attempt: the pod of completion index 0 (an Indexed Job), the newest if several, once it runs. */
export function rankZero(pods: readonly V1Pod[]): V1Pod | undefined {
  const zero = pods.filter((p) => (p.metadata?.annotations?.[INDEX] ?? '0') === '0' && p.status?.phase !== 'Pending' && p.status?.phase !== undefined);
  // Listed pods carry Dates, watched ones strings: compare times, not spellings.
  const created = (p: V1Pod) => {
    const t = p.metadata?.creationTimestamp as Date | string | undefined;
    return t instanceof Date ? t.getTime() : Date.parse(t ?? '') || 0;
  };
  return zero.sort((a, b) => created(a) - created(b)).at(-1);
}

export class ProgressReader {
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: Entry[] = [];
  private active = 0;
  private readonly o: ProgressReaderOptions;
  constructor(o: ProgressReaderOptions) {
    this.o = o;
  }

  /** Reads in flight or waiting (for tests and the stats line). */
  get pending(): number {
    return this.active + this.waiting.length;
  }

  /** A running train attempt's progress, from the last read of its rank-0 log; starts a read when due. */
  progress(a: RunningAttempt): Progress | undefined {
    if (a.stage.kind !== 'train') return undefined;
    const now = this.o.clock.now();
    this.forget(now);
    const pod = rankZero(a.pods);
    if (!pod?.metadata?.name) return undefined;
    const namespace = pod.metadata.namespace ?? a.run.metadata.namespace;
    const key = `${namespace}/${pod.metadata.name}/${pod.metadata.uid ?? ''}`;
    let e = this.entries.get(key);
    if (!e) {
      e = { namespace, pod: pod.metadata.name, container: pod.spec?.containers[0]?.name ?? a.stage.kind, runKey: `${a.run.metadata.namespace}/${a.run.metadata.name}`, readAt: -Infinity, askedAt: now, inFlight: false, read: false };
      this.entries.set(key, e);
    }
    e.askedAt = now;
    if (!e.inFlight && now - e.readAt >= (this.o.minIntervalMs ?? 5000)) this.enqueue(e, now);
    if (!e.read) return undefined;
    const budget = a.stage.config.training.token_budget;
    const base: Progress = e.line ?? { done: 0, total: budget, unit: 'tokens', note: `no kiln.progress/v1 line from rank 0 (pod ${e.pod}) yet` };
    return e.error ? { ...base, note: `${e.line ? 'stale: ' : ''}cannot read rank 0's log (pod ${e.pod}): ${e.error}` } : base;
  }

  private enqueue(e: Entry, now: number): void {
    e.inFlight = true;
    e.readAt = now;
    this.waiting.push(e);
    this.pump();
  }

  private pump(): void {
    while (this.active < (this.o.concurrency ?? 4) && this.waiting.length) {
      const e = this.waiting.shift()!;
      this.active++;
      void this.readOne(e).finally(() => {
        this.active--;
        e.inFlight = false;
        this.pump();
      });
    }
  }

  private async readOne(e: Entry): Promise<void> {
    const before = JSON.stringify([e.read, e.line, e.error]);
    try {
      const text = await this.o.readLog(e.namespace, e.pod, { container: e.container, tailLines: this.o.tailLines ?? 200, limitBytes: this.o.limitBytes ?? 128 * 1024 });
      const line = lastProgressLine(text);
      if (line) e.line = progressOfLine(line);
      e.error = undefined;
    } catch (err) {
      const status = httpStatus(err);
      const why = `${status !== undefined ? `HTTP ${status}: ` : ''}${apiMessage(err)}`.slice(0, 200);
      if (why !== e.error) this.o.log?.(`progress: cannot read the log of pod ${e.namespace}/${e.pod}: ${why}`);
      e.error = why;
    }
    e.read = true;
    // Only what changes the status wakes the run: an unchanged tail is not news.
    if (JSON.stringify([e.read, e.line, e.error]) !== before) this.o.wake(e.runKey);
  }

  private forget(now: number): void {
    const after = this.o.forgetAfterMs ?? 600_000;
    for (const [k, e] of this.entries) if (!e.inFlight && now - e.askedAt > after) this.entries.delete(k);
  }
}
