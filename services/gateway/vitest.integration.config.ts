import { defineConfig } from 'vitest/config';

// Integration tests run the gateway in front of the real Triton (tritonserver serving the tiny trained model, the
// triton branch's services/trainer/scripts/serve.mjs). The first run builds the serving environment and the tiny
// export (minutes); later runs reuse both.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 1_800_000,
    fileParallelism: false,
  },
});
