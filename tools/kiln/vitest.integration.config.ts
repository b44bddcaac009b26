import { defineConfig } from 'vitest/config';

// Integration tests run against the local cluster (real API server, scheduler, controllers; kwok pods)
// and the real Pulumi CLI. The global set-up brings the cluster up once, or reuses a healthy one.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    globalSetup: ['test/integration/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
