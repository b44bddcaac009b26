import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/*.test.ts'],
    // HTTP tests on 2 loaded cores: a few seconds each at worst.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
