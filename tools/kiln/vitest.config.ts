import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/*.test.ts'],
    // These tests run the CLI as processes (data prep, the sandbox); on 2 loaded cores one can take over 5 s.
    testTimeout: 60_000,
    // beforeAll hooks run nx (the project graph) or build fixtures: 10 s was not enough under a cold CI's load.
    hookTimeout: 120_000,
  },
});
