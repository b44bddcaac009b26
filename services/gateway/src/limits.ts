/**
 * Per-key rate limits: requests per minute and tokens per minute, each a token bucket that holds a minute's worth
 * and refills continuously. A completion reserves its prompt's estimated tokens plus max_tokens × n up front; when
 * it ends, the reservation is corrected to what the upstream reported, so a short answer gives tokens back.
 */

/** A refused request: why, and when a retry can succeed (null: never, the request itself is too large). */
export interface Refusal {
  readonly limit: 'requests' | 'tokens';
  readonly message: string;
  readonly retryAfterS: number | null;
}

export interface Reservation {
  /** Corrects the tokens reserved to the tokens used (prompt + completion, as the upstream counted them). */
  settle(usedTokens: number): void;
}

interface Bucket {
  level: number;
  at: number;
}

/** Prompt tokens before the upstream has counted them: about 3 characters a token for code (byte-level BPE). */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / 3);
}

export interface LimiterOptions {
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
  /** The clock (ms), for tests. */
  readonly now?: () => number;
}

export class RateLimiter {
  private readonly rpm: number | null;
  private readonly tpm: number | null;
  private readonly now: () => number;
  private readonly requests = new Map<string, Bucket>();
  private readonly tokens = new Map<string, Bucket>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(o: LimiterOptions) {
    this.rpm = o.requestsPerMinute;
    this.tpm = o.tokensPerMinute;
    this.now = o.now ?? Date.now;
    // Full buckets carry no state worth keeping: drop them, so a million one-off keys cost no memory.
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  get enabled(): boolean {
    return this.rpm !== null || this.tpm !== null;
  }

  /** Takes one request and `tokens` tokens from `key`'s buckets, or says why not (taking nothing). */
  take(key: string, tokens: number): Reservation | Refusal {
    const t = this.now();
    const req = this.rpm === null ? undefined : this.level(this.requests, key, this.rpm, t);
    const tok = this.tpm === null ? undefined : this.level(this.tokens, key, this.tpm, t);
    if (req && req.level < 1) {
      return { limit: 'requests', message: `Rate limit reached: ${this.rpm} requests per minute for this API key. Retry after the time in the Retry-After header.`, retryAfterS: secondsUntil(1 - req.level, this.rpm!) };
    }
    if (tok && this.tpm !== null) {
      if (tokens > this.tpm) {
        return { limit: 'tokens', message: `This request needs about ${tokens} tokens (prompt estimate + max_tokens × n), more than this API key's limit of ${this.tpm} tokens per minute: lower max_tokens or n, or shorten the prompt.`, retryAfterS: null };
      }
      if (tok.level < tokens) {
        return { limit: 'tokens', message: `Rate limit reached: ${this.tpm} tokens per minute for this API key (this request reserves about ${tokens}). Retry after the time in the Retry-After header.`, retryAfterS: secondsUntil(tokens - tok.level, this.tpm) };
      }
    }
    if (req) req.level -= 1;
    if (tok) tok.level -= tokens;
    let settled = false;
    return {
      settle: (used: number) => {
        if (settled || !tok || this.tpm === null) return;
        settled = true;
        const b = this.level(this.tokens, key, this.tpm, this.now());
        b.level = Math.min(this.tpm, b.level + tokens - used);
      },
    };
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** The bucket of `key`, refilled to time `t`. */
  private level(map: Map<string, Bucket>, key: string, perMinute: number, t: number): Bucket {
    let b = map.get(key);
    if (!b) {
      b = { level: perMinute, at: t };
      map.set(key, b);
      return b;
    }
    b.level = Math.min(perMinute, b.level + ((t - b.at) * perMinute) / 60_000);
    b.at = t;
    return b;
  }

  private sweep(): void {
    const t = this.now();
    for (const [map, per] of [
      [this.requests, this.rpm],
      [this.tokens, this.tpm],
    ] as const) {
      if (per === null) continue;
      for (const [k, b] of map) if (b.level + ((t - b.at) * per) / 60_000 >= per) map.delete(k);
    }
  }
}

export function isRefusal(r: Reservation | Refusal): r is Refusal {
  return 'limit' in r;
}

/** Whole seconds until a bucket refilling `perMinute` a minute has gained `missing`. */
function secondsUntil(missing: number, perMinute: number): number {
  return Math.max(1, Math.ceil((missing * 60) / perMinute));
}
