import { describe, expect, it } from 'vitest';
import { isRefusal, RateLimiter } from '../src/limits.ts';

describe('the rate limiter', () => {
  it('allows a minute of requests at once, then one more each 60/rpm seconds', () => {
    let t = 0;
    const l = new RateLimiter({ requestsPerMinute: 6, tokensPerMinute: null, now: () => t });
    for (let i = 0; i < 6; i++) expect(isRefusal(l.take('k', 0))).toBe(false);
    const r = l.take('k', 0);
    expect(isRefusal(r) && r.retryAfterS).toBe(10);
    expect(isRefusal(l.take('other', 0))).toBe(false);
    t = 10_000;
    expect(isRefusal(l.take('k', 0))).toBe(false);
    expect(isRefusal(l.take('k', 0))).toBe(true);
    l.close();
  });

  it('reserves tokens up front and gives back what the completion did not use', () => {
    let t = 0;
    const l = new RateLimiter({ requestsPerMinute: null, tokensPerMinute: 1000, now: () => t });
    const a = l.take('k', 600);
    expect(isRefusal(a)).toBe(false);
    const b = l.take('k', 600);
    expect(isRefusal(b) && [b.limit, b.retryAfterS]).toEqual(['tokens', 12]);
    if (!isRefusal(a)) a.settle(100);
    expect(isRefusal(l.take('k', 600))).toBe(false);
    const huge = l.take('k2', 1001);
    expect(isRefusal(huge) && huge.retryAfterS).toBeNull();
    t = 60_000;
    expect(isRefusal(l.take('k', 1000))).toBe(false);
    l.close();
  });
});
