import { describe, expect, it } from 'vitest';
import { main } from '../src/index.ts';

describe('kiln-local-node', () => {
  it('refuses to run before it is built', async () => {
    expect(await main([])).toBe(1);
  });
});
