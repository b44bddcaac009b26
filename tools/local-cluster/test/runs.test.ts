import { describe, expect, it } from 'vitest';
import { tinyPlan } from '../src/index.ts';

describe('tinyPlan', () => {
  it('GIVEN a namespace and seeds WHEN planned THEN the run lives in that namespace on file:// storage, one run id per seed', () => {
    const a = tinyPlan('kiln-t-a', 1);
    expect(a.namespace).toBe('kiln-t-a');
    expect(a.stack).toBe('dev');
    // The local cluster binds no volume for pvc:// storage; a file:// prefix needs none.
    expect(a.storagePrefix.startsWith('file:///var/lib/kiln/')).toBe(true);
    expect(tinyPlan('kiln-t-a', 1).runId).toBe(a.runId);
    expect(tinyPlan('kiln-t-a', 2).runId).not.toBe(a.runId);
  });

  it('GIVEN a gate expression WHEN planned THEN it replaces the dev stack gate', () => {
    expect(tinyPlan('kiln-t-b', 1, 'humaneval.pass@1 >= 0.5').gates).toEqual({ dev: ['humaneval.pass@1 >= 0.5'] });
  });
});
