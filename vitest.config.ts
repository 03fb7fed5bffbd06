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
    // expect.poll waits for asynchronous effects (metrics, revocations); on a loaded 2-core CI machine the
    // default 1 s is too tight. These are upper bounds, not timings: a poll ends as soon as it passes.
    expect: { poll: { timeout: 5000, interval: 25 } },
  },
});
