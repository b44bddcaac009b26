import { fileURLToPath } from 'node:url';
import { compileFile } from '@kiln/plan';
import { check } from '@kiln/stage';
import { describe, expect, it } from 'vitest';
import { simulatedSummary } from '../src/simulation.ts';

describe('simulated summaries', () => {
  const plan = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'dev' }).plan!;

  it.each(plan.stages.map((s) => [s.name, s] as const))('GIVEN the %s stage WHEN its pod is simulated THEN its summary conforms to the summary schema, marked simulated', (_name, stage) => {
    for (const attempt of [1, 2]) {
      const s = simulatedSummary(plan, stage, attempt, { metrics: { 'eval-humaneval': { 'pass@1': 0.3 } } });
      expect(check('summary', s)).toEqual([]);
      expect(s).toMatchObject({ simulated: true, attempt });
    }
  });
});
