import { describe, expect, it } from 'vitest';
import { passAtK, scoreResults, type ProblemOutcomes } from '../src/passk.ts';
import type { Outcome, OutcomeStatus } from '../src/types.ts';

/** C(n, k) exactly. */
function choose(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

/** 1 − C(n−c, k)/C(n, k), from exact integers, to 1e-18. */
function exact(n: number, c: number, k: number): number {
  const den = choose(n, k);
  const num = den - choose(n - c, k);
  const scale = 10n ** 18n;
  return Number((num * scale) / den) / 1e18;
}

function outcome(status: OutcomeStatus, reason = status === 'passed' ? 'ok' : 'AssertionError', durationMs = 10): Outcome {
  return { status, reason, exitCode: status === 'passed' ? 0 : 1, signal: null, durationMs, stdout: '', stderr: '' };
}

function problem(id: string, language: string, statuses: readonly OutcomeStatus[]): ProblemOutcomes {
  return { id, language, outcomes: statuses.map((s) => outcome(s)) };
}

const times = (n: number, s: OutcomeStatus): OutcomeStatus[] => Array.from({ length: n }, () => s);

describe('passAtK', () => {
  it('gives the known values: n=200, c=10, k=1 is 0.05; c=0 is 0; n−c<k is 1', () => {
    expect(passAtK(200, 10, 1)).toBeCloseTo(0.05, 14);
    expect(passAtK(10, 3, 1)).toBeCloseTo(0.3, 14);
    expect(passAtK(200, 0, 100)).toBe(0);
    expect(passAtK(10, 5, 6)).toBe(1);
    expect(passAtK(5, 5, 1)).toBe(1);
    // 1 − C(3,2)/C(5,2) = 1 − 3/10
    expect(passAtK(5, 2, 2)).toBeCloseTo(0.7, 14);
  });

  it('matches the exact combinatorial formula for many n, c, k, including n=200 where C(n, k) overflows doubles', () => {
    const cases: [number, number, number][] = [];
    for (const n of [1, 2, 5, 10, 20, 50, 200]) for (const c of [0, 1, 2, Math.floor(n / 3), Math.floor(n / 2), n - 1, n]) for (const k of [1, 2, 5, 10, 100]) if (c >= 0 && c <= n && k <= n) cases.push([n, c, k]);
    cases.push([1000, 17, 100], [1000, 999, 10], [500, 3, 250]);
    expect(cases.length).toBeGreaterThan(80);
    for (const [n, c, k] of cases) expect(Math.abs(passAtK(n, c, k) - exact(n, c, k)), `n=${n} c=${c} k=${k}`).toBeLessThan(1e-12);
  });

  it('refuses k > n, c outside 0..n and non-integers, rather than returning a meaningless 1', () => {
    expect(() => passAtK(5, 0, 10)).toThrow(RangeError);
    expect(() => passAtK(5, 6, 1)).toThrow(/0 ≤ c ≤ n/);
    expect(() => passAtK(5, -1, 1)).toThrow(RangeError);
    expect(() => passAtK(5, 1, 0)).toThrow(RangeError);
    expect(() => passAtK(5.5, 1, 1)).toThrow(/integers/);
  });
});

describe('scoreResults', () => {
  it('averages pass@k over problems, per language and for the suite', () => {
    const s = scoreResults([
      problem('a', 'python', ['passed', 'failed', 'failed', 'failed']), // pass@1 .25, pass@2 = 1 − C(3,2)/C(4,2) = .5
      problem('b', 'python', times(4, 'passed')), // 1, 1
      problem('c', 'javascript', ['failed', 'timeout', 'failed', 'failed']), // 0, 0
    ], [2, 1, 2]);
    expect(s.ks).toEqual([1, 2]);
    expect(s.problems.map((p) => [p.id, p.n, p.c])).toEqual([['a', 4, 1], ['b', 4, 4], ['c', 4, 0]]);
    expect(s.problems[0]!.passAtK).toEqual({ 'pass@1': 0.25, 'pass@2': expect.closeTo(0.5, 12) });
    expect(s.byLanguage.python!.passAtK['pass@1']).toBeCloseTo(0.625, 12);
    expect(s.byLanguage.python!.passAtK['pass@2']).toBeCloseTo(0.75, 12);
    expect(s.byLanguage.javascript!.passAtK).toEqual({ 'pass@1': 0, 'pass@2': 0 });
    expect(s.overall.passAtK['pass@1']).toBeCloseTo(1.25 / 3, 12);
    expect(s.overall.passAtK['pass@2']).toBeCloseTo(1.5 / 3, 12);
    expect(s.overall.counts).toEqual({ passed: 5, failed: 6, timeout: 1, 'no-toolchain': 0 });
    expect(s.overall.omitted).toEqual([]);
  });

  it('omits a k, with the reason, when any problem of the group has fewer than k samples', () => {
    const s = scoreResults([problem('a', 'python', times(10, 'passed')), problem('b', 'python', times(5, 'failed')), problem('c', 'go', times(10, 'failed'))], [1, 10]);
    expect(Object.keys(s.overall.passAtK)).toEqual(['pass@1']);
    expect(s.overall.omitted).toEqual([{ k: 10, reason: '1 of 3 problems have fewer than 10 samples (b has n=5)' }]);
    expect(s.byLanguage.python!.omitted.map((o) => o.k)).toEqual([10]);
    // Go's problems all have 10 samples: its pass@10 is reported.
    expect(s.byLanguage.go!.passAtK).toEqual({ 'pass@1': 0, 'pass@10': 0 });
    expect(s.problems[1]!.passAtK).toEqual({ 'pass@1': 0 });
  });

  it('excludes problems without a toolchain from pass@k, lists them, and never counts them as failures', () => {
    const s = scoreResults([
      problem('a', 'python', ['passed', 'passed']),
      { id: 'r', language: 'rust', outcomes: [outcome('no-toolchain', 'no rustc on PATH'), outcome('no-toolchain', 'no rustc on PATH')] },
    ], [1]);
    expect(s.overall.passAtK).toEqual({ 'pass@1': 1 });
    expect(s.overall.problems).toBe(1);
    expect(s.overall.noToolchain).toBe(1);
    expect(s.noToolchain).toEqual([{ id: 'r', language: 'rust', reason: 'no rustc on PATH' }]);
    expect(s.byLanguage.rust).toMatchObject({ problems: 0, noToolchain: 1, passAtK: {} });
    expect(s.byLanguage.rust!.omitted[0]!.reason).toMatch(/no toolchain/);
    expect(s.overall.counts).toEqual({ passed: 2, failed: 0, timeout: 0, 'no-toolchain': 2 });
    expect(s.problems[1]).toMatchObject({ n: 0, c: 0, scored: false });
  });

  it('rejects results given twice for one problem and k below 1', () => {
    expect(() => scoreResults([problem('a', 'python', ['passed']), problem('a', 'python', ['passed'])], [1])).toThrow(/a given twice/);
    expect(() => scoreResults([], [0])).toThrow(RangeError);
    expect(scoreResults([], [1]).overall.omitted).toEqual([{ k: 1, reason: 'no problems' }]);
  });
});
