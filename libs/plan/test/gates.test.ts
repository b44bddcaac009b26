import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileFile, evalSuites, evaluateGates, type Plan } from '../src/index.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
function plan(file: string): Plan {
  const r = compileFile(configs + file);
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.plan;
}
const tiny = plan('tiny.yaml'); // one suite: humaneval
const fim = plan('fim.yaml'); // two suites: humaneval, multipl-e
const withGates = (p: Plan, gates: Record<string, string[]>): Plan => ({ ...p, gates });

describe('evalSuites', () => {
  it("names the suites of the plan's eval stages, in order", () => {
    expect(evalSuites(tiny)).toEqual(['humaneval']);
    expect(evalSuites(fim)).toEqual(['humaneval', 'multipl-e']);
  });
});

describe('evaluateGates', () => {
  it('is pending while the suite has not reported the metric', () => {
    // GIVEN a gate on humaneval.pass@1 WHEN no metrics are in
    const v = evaluateGates(withGates(tiny, { dev: ['humaneval.pass@1 >= 0.1'] }), {});
    // THEN the verdict and the result are pending
    expect(v.dev?.passed).toBeNull();
    expect(v.dev?.results[0]).toMatchObject({ suite: 'humaneval', metric: 'pass@1', value: null, passed: null });
  });

  it('is pending when the suite reported other metrics only', () => {
    const v = evaluateGates(withGates(tiny, { dev: ['humaneval.pass@10 >= 0.1'] }), { humaneval: { 'pass@1': 0.5 } });
    expect(v.dev?.passed).toBeNull();
  });

  it.each([
    ['>=', 0.2, 0.2, true],
    ['>=', 0.2, 0.19, false],
    ['>', 0.2, 0.2, false],
    ['>', 0.2, 0.21, true],
    ['<=', 0.2, 0.2, true],
    ['<=', 0.2, 0.21, false],
    ['<', 0.2, 0.2, false],
    ['<', 0.2, 0.1, true],
    ['==', 0.5, 0.5, true],
    ['==', 0.5, 0.4, false],
  ] as const)('reads "pass@1 %s %s" against %s as passed=%s', (op, threshold, value, passed) => {
    const v = evaluateGates(withGates(tiny, { dev: [`humaneval.pass@1 ${op} ${threshold}`] }), { humaneval: { 'pass@1': value } });
    expect(v.dev?.results[0]).toMatchObject({ op, threshold, value, passed });
    expect(v.dev?.passed).toBe(passed);
  });

  it('implies the suite of a gate that names none when the plan has one suite', () => {
    const v = evaluateGates(withGates(tiny, { dev: ['pass@1 >= 0.1'] }), { humaneval: { 'pass@1': 0.12 } });
    expect(v.dev?.results[0]).toMatchObject({ suite: 'humaneval', value: 0.12, passed: true });
  });

  it('implies no suite when the plan has several, so such a gate stays pending', () => {
    const v = evaluateGates(withGates(fim, { dev: ['pass@1 >= 0.1'] }), { humaneval: { 'pass@1': 0.5 }, 'multipl-e': { 'pass@1': 0.5 } });
    expect(v.dev?.results[0]).toMatchObject({ suite: '', passed: null });
  });

  it('reads each gate against its own suite', () => {
    const v = evaluateGates(fim, { humaneval: { 'pass@1': 0.5 }, 'multipl-e': { 'pass@1': 0.01 } });
    expect(v.prod?.results.map((r) => [r.suite, r.passed])).toEqual([
      ['humaneval', true],
      ['multipl-e', false],
    ]);
  });

  it('fails an environment when one gate fails, even while another is pending', () => {
    const v = evaluateGates(fim, { humaneval: { 'pass@1': 0.01 } });
    expect(v.prod?.passed).toBe(false);
  });

  it('keeps an environment pending while some gates pass and others are pending', () => {
    const v = evaluateGates(fim, { humaneval: { 'pass@1': 0.5 } });
    expect(v.prod?.passed).toBeNull();
    expect(v.staging?.passed).toBe(true);
  });

  it('judges every environment separately', () => {
    const v = evaluateGates(withGates(tiny, { staging: ['humaneval.pass@1 >= 0.1'], prod: ['humaneval.pass@1 >= 0.3'] }), { humaneval: { 'pass@1': 0.2 } });
    expect([v.staging?.passed, v.prod?.passed]).toEqual([true, false]);
  });

  it('treats a non-finite metric as not reported', () => {
    const v = evaluateGates(withGates(tiny, { dev: ['humaneval.pass@1 >= 0'] }), { humaneval: { 'pass@1': Number.NaN } });
    expect(v.dev?.results[0]?.value).toBeNull();
    expect(v.dev?.passed).toBeNull();
  });

  it('fails a gate it cannot parse rather than letting it pass', () => {
    const v = evaluateGates(withGates(tiny, { dev: ['accuracy is high'] }), { humaneval: { 'pass@1': 1 } });
    expect(v.dev?.passed).toBe(false);
  });

  it('gives no verdicts for a plan without gates', () => {
    expect(evaluateGates(withGates(tiny, {}), { humaneval: { 'pass@1': 1 } })).toEqual({});
  });
});
