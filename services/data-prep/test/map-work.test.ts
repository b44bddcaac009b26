import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_FILTERS } from '../src/filters.ts';
import { defaultWorkers, RecordWork, usableCpus, WorkPool, type WorkConfig } from '../src/map-work.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-map-work-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cfg: WorkConfig = { filters: DEFAULT_FILTERS, parseLanguages: ['python'], pii: {}, near: { numPerm: 64, ngram: 5, threshold: 0.7, seed: 42 }, lsh: { bands: 8, rows: 8 }, benchmarks: [] };
const code = (i: number) => `"""Module ${i}."""\n\nimport os\n\n\ndef total_${i}(values):\n    """Sum the values that are set."""\n    result = 0\n    for v in values:\n        if v is not None:\n            result += v * ${i}\n    return result\n\nOWNER = "team${i}@example-corp.io"\n`;

describe('how many workers', () => {
  it("reads a pod's CPU limit from the cgroup, and KILN_WORKERS wins", () => {
    const f = join(dir, 'cpu.max');
    writeFileSync(f, '150000 100000\n');
    expect(usableCpus(f)).toBe(Math.min(availableParallelism(), 2));
    writeFileSync(f, 'max 100000\n');
    expect(usableCpus(f)).toBe(availableParallelism());
    expect(usableCpus(join(dir, 'none'))).toBe(availableParallelism());
    expect(defaultWorkers({ KILN_WORKERS: '3' })).toBe(3);
    expect(defaultWorkers({ KILN_WORKERS: '0' })).toBe(0);
  });
});

describe('the per-record work', () => {
  it('gives the same results in worker threads as in this thread, batch by batch and in order', { timeout: 30_000 }, async () => {
    const records = [...Array.from({ length: 40 }, (_, i) => ({ path: `m${i}.py`, content: code(i) })), { path: 'broken.py', content: 'def f(:\n' + 'x = 1\n'.repeat(20) }, { path: 'tiny.json', content: '{"a": 1}' }];
    const local = await RecordWork.create(cfg);
    const expected = records.map((r) => local.process(r));
    const pool = await WorkPool.create(cfg, 2);
    try {
      expect(pool.size).toBe(2);
      const batches = [records.slice(0, 15), records.slice(15, 30), records.slice(30)];
      const got = (await Promise.all(batches.map((b) => pool.submit(b)))).flat();
      expect(got).toEqual(expected);
    } finally {
      await pool.close();
    }
    expect(expected.at(-2)).toEqual({ drop: 'unparseable' });
    expect(expected.at(-1)).toEqual({ drop: 'too-small' });
    const kept = expected[0] as { content: string; pii: Record<string, number>; keys?: Uint32Array };
    expect(kept.content).not.toContain('team0@example-corp.io');
    expect(kept.pii.email).toBe(1);
    expect(kept.keys).toHaveLength(16);
  });
});
