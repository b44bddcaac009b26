import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadText } from '@kiln/spec';
import { describe, expect, it } from 'vitest';
import { summarise } from '../src/render/summary.ts';

const tiny = readFileSync(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), 'utf8');
const trainingRow = (text: string) => {
  const r = loadText(text, 'tiny.yaml');
  if (!r.spec) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return Object.fromEntries(summarise(r.spec)).training!;
};

describe("kiln demo's training row", () => {
  it('GIVEN an integer micro batch WHEN summarised THEN it shows the micro batch and the accumulation the plan derived', () => {
    expect(trainingRow(tiny)).toContain('tokens per step, micro batch 4, accumulation 2, 489 steps');
  });

  it('GIVEN micro_batch auto WHEN summarised THEN it says auto and shows no accumulation (the trainer finds both)', () => {
    const row = trainingRow(tiny.replace('micro_batch: 4', 'micro_batch: auto'));
    expect(row).toContain('tokens per step, micro batch auto (the largest that fits), 489 steps');
    expect(row).not.toContain('accumulation');
  });
});
