import { describe, expect, it } from 'vitest';
import { findRun, parseSummary, type ModelRun } from '../src/index.ts';

describe('parseSummary', () => {
  it('parses a JSON object summary', () => {
    expect(parseSummary('{"metrics":{"loss":2.4},"artifacts":[]}')).toEqual({ metrics: { loss: 2.4 }, artifacts: [] });
  });

  it('keeps text that is not JSON as the message, trimmed', () => {
    expect(parseSummary('Traceback (most recent call last):\n  OSError: disk full\n')).toEqual({ message: 'Traceback (most recent call last):\n  OSError: disk full' });
  });

  it('keeps JSON that is not an object as a message', () => {
    expect(parseSummary('[1,2]')).toEqual({ message: '[1,2]' });
    expect(parseSummary('42')).toEqual({ message: '42' });
  });

  it('keeps only the end of a long log tail', () => {
    const s = parseSummary(`${'x'.repeat(3000)}the error`);
    expect(s?.message).toHaveLength(1024);
    expect(String(s?.message).endsWith('the error')).toBe(true);
  });

  it('gives nothing for an empty or blank message', () => {
    expect(parseSummary('')).toBeUndefined();
    expect(parseSummary('  \n')).toBeUndefined();
    expect(parseSummary(undefined)).toBeUndefined();
  });
});

describe('findRun', () => {
  const run = (name: string, runId: string): ModelRun => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'ModelRun', metadata: { name, namespace: 'ns' }, spec: { runId } as ModelRun['spec'] });
  const runs = [run('tiny-r-aaa111', 'r-aaa111'), run('tiny-r-aab222', 'r-aab222'), run('fim-r-ccc333', 'r-ccc333')];
  const name = (r: ModelRun | { error: string }) => ('error' in r ? r.error : r.metadata.name);

  it('finds a run by its object name', () => {
    expect(name(findRun(runs, 'fim-r-ccc333'))).toBe('fim-r-ccc333');
  });

  it('finds a run by its run id', () => {
    expect(name(findRun(runs, 'r-aab222'))).toBe('tiny-r-aab222');
  });

  it('finds a run by a unique prefix of its name or run id', () => {
    expect(name(findRun(runs, 'fim'))).toBe('fim-r-ccc333');
    expect(name(findRun(runs, 'r-aaa'))).toBe('tiny-r-aaa111');
  });

  it('prefers an exact match over a prefix of other runs', () => {
    const withPrefixed = [run('tiny', 'r-1'), run('tiny-2', 'r-2')];
    expect(name(findRun(withPrefixed, 'tiny'))).toBe('tiny');
  });

  it('refuses an ambiguous prefix, listing the runs it matches', () => {
    const r = findRun(runs, 'tiny-r-aa');
    expect('error' in r && r.error).toContain('matches 2 runs: tiny-r-aaa111, tiny-r-aab222');
  });

  it('says which runs exist when none matches', () => {
    const r = findRun(runs, 'nope');
    expect('error' in r && r.error).toContain('no run "nope"; runs: tiny-r-aaa111, tiny-r-aab222, fim-r-ccc333');
  });

  it('says there are no runs at all when there are none', () => {
    const r = findRun([], 'tiny');
    expect('error' in r && r.error).toContain('there are no ModelRuns');
  });
});

describe('API errors', () => {
  it("give the HTTP status of client-node's ApiException, and nothing for other errors", async () => {
    const { httpStatus } = await import('../src/index.ts');
    expect(httpStatus(Object.assign(new Error('x'), { code: 422 }))).toBe(422);
    expect(httpStatus(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBeUndefined();
    expect(httpStatus(undefined)).toBeUndefined();
  });

  it("say what the API server said (its Status message), else the error's own message", async () => {
    const { apiMessage } = await import('../src/index.ts');
    expect(apiMessage({ body: '{"kind":"Status","message":"nodes \\"x\\" is forbidden"}' })).toBe('nodes "x" is forbidden');
    expect(apiMessage({ body: { message: 'already exists' } })).toBe('already exists');
    expect(apiMessage(new Error('socket hang up'))).toBe('socket hang up');
  });
});

describe('the simulated mark of a summary', () => {
  it('is set only by `simulated: true`', async () => {
    const { isSimulatedSummary } = await import('../src/index.ts');
    expect(isSimulatedSummary({ simulated: true, metrics: {} })).toBe(true);
    // A summary read off a pod is unchecked JSON: only the literal true marks it.
    expect(isSimulatedSummary(JSON.parse('{"simulated": "yes"}'))).toBe(false);
    expect(isSimulatedSummary({ metrics: {} })).toBe(false);
    expect(isSimulatedSummary(undefined)).toBe(false);
  });
});
