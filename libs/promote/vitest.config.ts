import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/*.test.ts'],
    // Every test runs real git in a temp repository; on 2 loaded cores a test of several commits can take over 5 s.
    testTimeout: 60_000,
  },
});
