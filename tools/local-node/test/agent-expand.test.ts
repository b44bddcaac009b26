/** Kubernetes' $(VAR) expansion as the agent applies it to env, command and args. */
import { describe, expect, it } from 'vitest';
import { expand, expandAll } from '../src/agent/expand.ts';

const vars = { NODE_RANK: '2', A: 'x', EMPTY: '' };
const look = (n: string) => (Object.hasOwn(vars, n) ? vars[n as keyof typeof vars] : undefined);

describe('$(VAR) expansion', () => {
  it('replaces a defined variable, also inside a flag (the train stage: --node-rank=$(NODE_RANK))', () => {
    expect(expand('--node-rank=$(NODE_RANK)', look)).toBe('--node-rank=2');
    expect(expand('$(A)$(A)-$(EMPTY)|', look)).toBe('xx-|');
  });
  it('keeps a reference to an undefined variable as written', () => {
    expect(expand('--x=$(NOPE) $(A)', look)).toBe('--x=$(NOPE) x');
  });
  it('reads $$ as an escaped $, so $$(A) is the literal $(A)', () => {
    expect(expand('$$(A) $$ $$$(A)', look)).toBe('$(A) $ $x');
  });
  it('keeps a lone $, a shell $VAR and an unclosed reference', () => {
    expect(expand('cost $5 $HOME $(A', look)).toBe('cost $5 $HOME $(A');
    expect(expand('end$', look)).toBe('end$');
  });
  it('expands every element of a list against a map', () => {
    expect(expandAll(['a=$(A)', '$(NODE_RANK)'], vars)).toEqual(['a=x', '2']);
  });
});
