import { describe, expect, it } from 'vitest';
import { loadText } from '../src/index.ts';

/** A valid spec on 8 GPUs with the given `training` lines. */
const specWith = (training: string) => `apiVersion: kiln.dev/v1alpha1
metadata: { name: m }
data:
  sources: [{ type: local, name: src, path: ./code }]
model: { preset: 125m }
training:
  resources: { gpu_type: h100-80gb, gpus_per_node: 8, nodes: 1 }
${training}
`;

const problems = (text: string) => loadText(text).diagnostics.map((d) => ({ code: d.code, line: d.line, message: d.message, hint: d.hint }));

describe('training.micro_batch: auto', () => {
  it('GIVEN micro_batch auto WHEN loaded THEN the spec keeps "auto" and has no gradient accumulation (the trainer finds it)', () => {
    const r = loadText(specWith('  global_batch: { sequences: 256 }\n  micro_batch: auto'));
    expect(r.diagnostics).toEqual([]);
    const t = r.spec!.training;
    expect(t.micro_batch).toBe('auto');
    expect('gradient_accumulation' in t).toBe(false);
    expect(t.steps).toBe(Math.ceil(t.token_budget / t.global_batch.tokens));
  });

  it('GIVEN an integer micro batch WHEN loaded THEN the accumulation is derived as before', () => {
    const t = loadText(specWith('  global_batch: { sequences: 256 }\n  micro_batch: 4')).spec!.training;
    expect([t.micro_batch, t.gradient_accumulation]).toEqual([4, 8]);
    expect(loadText(specWith('  global_batch: { sequences: 256 }')).spec!.training).toMatchObject({ micro_batch: 8, gradient_accumulation: 4 });
  });

  it('GIVEN another word or a fraction WHEN validated THEN the error names the integer-or-"auto" choice, with a suggestion for a typo', () => {
    expect(problems(specWith('  micro_batch: fast'))).toEqual([
      expect.objectContaining({ code: 'KL204', line: 8, message: 'training.micro_batch must be an integer or "auto"; got the string "fast"', hint: expect.stringContaining('`auto`') }),
    ]);
    expect(problems(specWith('  micro_batch: atuo'))).toEqual([expect.objectContaining({ code: 'KL204', hint: 'did you mean "auto"?' })]);
    expect(problems(specWith('  micro_batch: AUTO'))).toEqual([expect.objectContaining({ code: 'KL204', hint: 'did you mean "auto"?' })]);
    expect(problems(specWith('  micro_batch: 2.5'))).toEqual([expect.objectContaining({ code: 'KL203', message: 'training.micro_batch must be an integer or "auto", not number 2.5' })]);
    expect(problems(specWith('  micro_batch: 0'))).toEqual([expect.objectContaining({ code: 'KL206', message: 'training.micro_batch must be >= 1; got number 0' })]);
  });

  it('GIVEN auto WHEN the global batch divides over the GPUs but not over 8 × the GPUs THEN it is valid (KL302 asks only for a share per GPU)', () => {
    // 72 sequences = 9 per GPU: micro_batch 8 × 8 GPUs does not divide it; auto picks a divisor of the 9 (1, 3 or 9).
    expect(problems(specWith('  global_batch: { sequences: 72 }\n  micro_batch: 8')).map((p) => p.code)).toEqual(['KL302']);
    expect(problems(specWith('  global_batch: { sequences: 72 }\n  micro_batch: auto'))).toEqual([]);
  });

  it('GIVEN auto WHEN the global batch does not divide over the GPUs THEN KL302 says so at the batch and offers a batch that does', () => {
    expect(problems(specWith('  global_batch: { sequences: 100 }\n  micro_batch: auto'))).toEqual([
      {
        code: 'KL302',
        line: 8,
        message: 'global batch of 100 sequences is not divisible by 8 GPUs (data-parallel ranks; micro_batch is auto)',
        hint: 'use a global batch of 104 sequences',
      },
    ]);
  });

  it('GIVEN auto and a batch in tokens that is not whole sequences WHEN validated THEN the hint divides over the GPUs alone', () => {
    expect(problems(specWith('  global_batch: { tokens: 10000 }\n  micro_batch: auto'))).toEqual([
      expect.objectContaining({ code: 'KL302', hint: 'use `sequences: 8` (16384 tokens), which also divides over 8 GPUs (data-parallel ranks; micro_batch is auto)' }),
    ]);
  });

  it('GIVEN a stack overlay WHEN it sets micro_batch auto, or deletes it THEN the stack resolves to auto, or to the default 8', () => {
    const text = specWith('  micro_batch: 4') + 'stacks:\n  dev: { training: { micro_batch: auto } }\n  prod: { training: { micro_batch: null } }\n';
    const dev = loadText(text, 'kiln.yaml', { stack: 'dev' });
    expect(dev.diagnostics).toEqual([]);
    expect(dev.spec!.training.micro_batch).toBe('auto');
    expect(dev.spec!.training.gradient_accumulation).toBeUndefined();
    expect(loadText(text, 'kiln.yaml', { stack: 'prod' }).spec!.training).toMatchObject({ micro_batch: 8, gradient_accumulation: 4 });
  });
});
