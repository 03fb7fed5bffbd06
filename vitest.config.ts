import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    // Tests start their own servers on free loopback ports; files run in parallel on both cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
