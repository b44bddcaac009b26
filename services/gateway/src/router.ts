/**
 * Canary routing: each request goes to one upstream, chosen by weight among the ready ones and sticky per key.
 *
 * The choice is weighted rendezvous hashing: upstream i scores `-w_i / ln(h(key, i))` with h a stable hash in
 * (0, 1), and the highest score wins. Over many keys each upstream gets its weight's share of the ready weight;
 * the same key always lands on the same upstream while the set of ready upstreams stays the same; and when an
 * upstream stops being ready, only its own keys move (spread over the others by weight), and they come back to it
 * when it is ready again.
 *
 * Readiness: every upstream's `/v2/health/ready` and model ready are polled every interval (a probe that times
 * out counts only twice in a row); a connection refused during a request also marks it not ready at once (the next
 * poll can bring it back).
 */
import { createHash } from 'node:crypto';
import { TritonUpstream } from './upstream.ts';

/** The stable hash of a (key, upstream) pair, in (0, 1). */
function unitHash(key: string, upstream: string): number {
  const d = createHash('sha256').update(key).update('\0').update(upstream).digest();
  // 52 bits, shifted off 0 and 1.
  const hi = d.readUInt32BE(0) >>> 12;
  const lo = d.readUInt32BE(4);
  return (hi * 2 ** 32 + lo + 0.5) / 2 ** 52;
}

export interface RouterOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Told when an upstream's readiness changes. */
  readonly onChange?: (upstream: string, ready: boolean) => void;
}

export type Pick = { readonly upstream: TritonUpstream } | { readonly error: 'unknown_upstream' | 'not_ready' | 'none_ready'; readonly message: string };

export class Router {
  readonly upstreams: readonly TritonUpstream[];
  private readonly readyState = new Map<string, boolean>();
  private readonly misses = new Map<string, number>();
  private readonly o: RouterOptions;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  /** Sticky choices by key, valid for one readiness generation. */
  private cache = new Map<string, TritonUpstream>();

  constructor(upstreams: readonly TritonUpstream[], o: RouterOptions) {
    this.upstreams = upstreams;
    this.o = o;
    for (const u of upstreams) this.readyState.set(u.name, false);
  }

  /** Polls every upstream once (so the first requests are routed on facts), then every interval. */
  async start(): Promise<void> {
    await this.poll();
    const loop = () => {
      if (this.closed) return;
      this.timer = setTimeout(() => {
        this.polling = this.poll().finally(loop);
      }, this.o.intervalMs);
      this.timer.unref();
    };
    loop();
  }

  async poll(): Promise<void> {
    const results = await Promise.all(this.upstreams.map(async (u) => [u, await u.ready(this.o.timeoutMs)] as const));
    if (this.closed) return;
    for (const [u, probe] of results) {
      // A refused connection or a "not ready" answer counts at once; a probe that timed out (a busy server, a
      // loaded node) only the second time in a row, so one slow answer does not move every key of an upstream.
      const misses = probe === 'timeout' ? (this.misses.get(u.name) ?? 0) + 1 : 0;
      this.misses.set(u.name, misses);
      if (probe === 'ready') this.set(u.name, true);
      else if (probe === 'not_ready' || misses >= 2) this.set(u.name, false);
    }
  }

  isReady(name: string): boolean {
    return this.readyState.get(name) ?? false;
  }

  get anyReady(): boolean {
    return [...this.readyState.values()].some(Boolean);
  }

  /** Marks an upstream not ready now (a refused connection), until a poll finds it ready again. */
  markDown(name: string): void {
    this.set(name, false);
  }

  /** The upstream for a request from `key`, or `pinned` (a name) when the request names one. */
  pick(key: string, pinned?: string, exclude?: string): Pick {
    if (pinned !== undefined) {
      const u = this.upstreams.find((x) => x.name === pinned);
      if (!u) return { error: 'unknown_upstream', message: `no upstream is named "${pinned}"` };
      if (!this.isReady(u.name)) return { error: 'not_ready', message: `upstream "${pinned}" is not ready` };
      return { upstream: u };
    }
    const cached = exclude === undefined ? this.cache.get(key) : undefined;
    if (cached) return { upstream: cached };
    let best: TritonUpstream | undefined;
    let bestScore = -Infinity;
    for (const u of this.upstreams) {
      if (u.weight <= 0 || u.name === exclude || !this.isReady(u.name)) continue;
      const score = -u.weight / Math.log(unitHash(key, u.name));
      if (score > bestScore) {
        bestScore = score;
        best = u;
      }
    }
    if (!best) return { error: 'none_ready', message: exclude === undefined ? 'no upstream is ready' : `no upstream but "${exclude}" could take the request, and it cannot be reached` };
    if (exclude === undefined) {
      if (this.cache.size >= 100_000) this.cache.clear();
      this.cache.set(key, best);
    }
    return { upstream: best };
  }

  /** Each ready upstream's share of unpinned traffic (its weight over the ready weights). */
  shares(): Record<string, number> {
    const ready = this.upstreams.filter((u) => this.isReady(u.name) && u.weight > 0);
    const total = ready.reduce((s, u) => s + u.weight, 0);
    return Object.fromEntries(this.upstreams.map((u) => [u.name, total > 0 && ready.includes(u) ? u.weight / total : 0]));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.polling?.catch(() => undefined);
    await Promise.all(this.upstreams.map((u) => u.close()));
  }

  private set(name: string, ready: boolean): void {
    if (this.readyState.get(name) === ready) return;
    this.readyState.set(name, ready);
    this.cache = new Map();
    this.o.onChange?.(name, ready);
  }
}
