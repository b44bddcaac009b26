/**
 * A per-key work queue in the manner of client-go's: a key waits at most once, is never processed by two
 * workers at the same time, and a key added while it is processed runs again afterwards. Failed keys come
 * back after a per-key exponential backoff; `addAfter` schedules a key (requeueAfter).
 */
import type { Clock } from './clock.ts';

export interface QueueOptions {
  /** First retry delay of a failing key, ms. Default 50. */
  readonly baseDelayMs?: number;
  /** Longest retry delay, ms. Default 30 000. */
  readonly maxDelayMs?: number;
}

export class WorkQueue {
  private readonly waiting: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; cancel: () => void }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: (() => void)[] = [];
  private shut = false;

  private readonly clock: Clock;
  private readonly opts: QueueOptions;
  constructor(clock: Clock, opts: QueueOptions = {}) {
    this.clock = clock;
    this.opts = opts;
  }

  get length(): number {
    return this.waiting.length;
  }

  add(key: string): void {
    if (this.shut) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.waiting.push(key);
    this.waiters.shift()?.();
  }

  /** Adds the key after `ms`; an earlier pending schedule of the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shut) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const t = this.timers.get(key);
    if (t && t.at <= at) return;
    t?.cancel();
    const cancel = this.clock.setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, cancel });
  }

  /** Adds the key after its backoff, which doubles with every failure until `forget`. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min((this.opts.baseDelayMs ?? 50) * 2 ** n, this.opts.maxDelayMs ?? 30_000);
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded: its next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to process, waiting for one; undefined once the queue is shut down. */
  async get(): Promise<string | undefined> {
    while (!this.waiting.length) {
      if (this.shut) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const key = this.waiting.shift()!;
    this.queued.delete(key);
    this.processing.add(key);
    return key;
  }

  /** The worker finished the key; if it was added meanwhile, it waits again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutdown(): void {
    this.shut = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w();
  }
}
