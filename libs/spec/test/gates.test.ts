import { describe, expect, it } from 'vitest';
import { gatePasses, parseGate } from '../src/index.ts';

describe('gatePasses: the one gate evaluation', () => {
  it('GIVEN each operator WHEN read against values around the threshold THEN it compares as written', () => {
    const at = (expr: string, v: number) => gatePasses(parseGate(expr, 'humaneval')!, v);
    expect([at('pass@1 >= 0.2', 0.2), at('pass@1 >= 0.2', 0.19)]).toEqual([true, false]);
    expect([at('pass@1 > 0.2', 0.2), at('pass@1 > 0.2', 0.21)]).toEqual([false, true]);
    expect([at('pass@1 <= 0.2', 0.2), at('pass@1 <= 0.2', 0.21)]).toEqual([true, false]);
    expect([at('pass@1 < 0.2', 0.2), at('pass@1 < 0.2', 0.1)]).toEqual([false, true]);
    expect([at('pass@1 == 0.5', 0.5), at('pass@1 == 0.5', 0.4)]).toEqual([true, false]);
  });

  it('GIVEN no value, or one that is not a finite number WHEN read THEN it is unknown (null), not failed', () => {
    const g = parseGate('humaneval.pass@1 >= 0.2')!;
    for (const v of [undefined, null, NaN, Infinity]) expect(gatePasses(g, v)).toBeNull();
  });
});
