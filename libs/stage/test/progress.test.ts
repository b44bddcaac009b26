import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lastProgressLine, parseProgressLine, progressOfLine, type ProgressLine } from '../src/index.ts';

// Lines a real train stage printed (see fixtures/train-progress.README.md for the command).
const REAL = readFileSync(new URL('./fixtures/train-progress.log', import.meta.url), 'utf8');
const line = (done: number, extra: Partial<ProgressLine> = {}) =>
  JSON.stringify({ kind: 'kiln.progress/v1', progress: { done, total: 1000, unit: 'tokens', updatedAt: '2026-12-01T00:00:00+00:00' }, step: done / 10, steps: 100, loss: 3.1, lr: 1e-4, grad_norm: 0.9, tokens_per_s: 250, eta_s: (1000 - done) / 250, ...extra });

describe('reading the training progress channel (kiln.progress/v1 lines)', () => {
  it('GIVEN the log of a real train stage WHEN read THEN every progress line validates and the last one wins', () => {
    const lines = REAL.split('\n').filter((l) => l.includes('kiln.progress/v1'));
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(parseProgressLine(l), l).toBeDefined();
    expect(lastProgressLine(REAL)).toEqual(JSON.parse(lines.at(-1)!));
  });

  it('GIVEN a tail with junk, a torn last line, another kind and an invalid line WHEN read THEN the last valid progress line wins', () => {
    const log = [
      'checkpoint /ckpt/step-10 (sha256:ab)',
      line(100),
      line(200),
      '{"kind":"kiln.progress/v1","progress":{"done":300,"total":1000,"unit":"tokens"},"step":30', // torn: the tail ended mid-line
      JSON.stringify({ kind: 'kiln.progress/v2', progress: { done: 900, total: 1000, unit: 'tokens' } }),
      line(400, { loss: 'high' as unknown as number }), // a kiln.progress/v1 line that does not validate
      'warning: loss spike',
      '',
    ].join('\n');
    expect(lastProgressLine(log)?.progress.done).toBe(200);
    expect(lastProgressLine('no progress here\n')).toBeUndefined();
    expect(lastProgressLine(`${line(300).slice(20)}\n`)).toBeUndefined(); // a tail that began mid-line
  });

  it('GIVEN a line WHEN shown as status progress THEN it carries the tokens and the training metrics, MFU only where the line has it', () => {
    const p = parseProgressLine(line(500, { mfu: 0.52 }))!;
    expect(progressOfLine(p)).toEqual({ done: 500, total: 1000, unit: 'tokens', updatedAt: '2026-12-01T00:00:00+00:00', step: 50, steps: 100, loss: 3.1, lr: 1e-4, grad_norm: 0.9, tokens_per_s: 250, eta_s: 2, mfu: 0.52 });
    expect(progressOfLine(parseProgressLine(line(500))!)).not.toHaveProperty('mfu');
  });
});
