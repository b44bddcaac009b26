import { describe, expect, it } from 'vitest';
import { Router } from '../src/router.ts';
import { TritonUpstream } from '../src/upstream.ts';

/** A router over unreachable upstreams whose readiness the test sets. */
function router(weights: Record<string, number>): Router {
  const r = new Router(
    Object.entries(weights).map(([name, weight]) => new TritonUpstream({ name, url: 'http://127.0.0.1:9', weight, tritonModel: 'ensemble' })),
    { intervalMs: 1e9, timeoutMs: 1 },
  );
  for (const name of Object.keys(weights)) (r as unknown as { set(n: string, v: boolean): void }).set(name, true);
  return r;
}

const keys = Array.from({ length: 10_000 }, (_, i) => `key-${i}`);
const nameOf = (r: Router, k: string) => {
  const p = r.pick(k);
  return 'upstream' in p ? p.upstream.name : p.error;
};

describe('the router', () => {
  it('gives each upstream its normalised weight over 10,000 keys, within 3 points', () => {
    const r = router({ a: 0.7, b: 0.2, c: 0.1 });
    const counts: Record<string, number> = {};
    for (const k of keys) counts[nameOf(r, k)] = (counts[nameOf(r, k)] ?? 0) + 1;
    expect(Math.abs(counts.a! / 1e4 - 0.7)).toBeLessThan(0.03);
    expect(Math.abs(counts.b! / 1e4 - 0.2)).toBeLessThan(0.03);
    expect(Math.abs(counts.c! / 1e4 - 0.1)).toBeLessThan(0.03);
  });

  it("moves only a down upstream's keys, spread by weight, and gives its share to the others", () => {
    const r = router({ a: 1, b: 1, c: 2 });
    const before = keys.map((k) => nameOf(r, k));
    r.markDown('c');
    expect(r.shares()).toEqual({ a: 0.5, b: 0.5, c: 0 });
    const after = keys.map((k) => nameOf(r, k));
    keys.forEach((_, i) => {
      if (before[i] !== 'c') expect(after[i]).toBe(before[i]);
      else expect(after[i]).not.toBe('c');
    });
    r.markDown('a');
    r.markDown('b');
    expect(nameOf(r, 'x')).toBe('none_ready');
  });

  it('pins by name, and a weight of 0 takes only pinned requests', () => {
    const r = router({ a: 1, shadow: 0 });
    expect(keys.slice(0, 500).every((k) => nameOf(r, k) === 'a')).toBe(true);
    const p = r.pick('k', 'shadow');
    expect('upstream' in p && p.upstream.name).toBe('shadow');
    r.markDown('shadow');
    expect((r.pick('k', 'shadow') as { error: string }).error).toBe('not_ready');
  });
});
