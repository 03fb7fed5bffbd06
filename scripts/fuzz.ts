/**
 * Long fuzz run over the gateway's HTTP surface (the CI run is test/security/fuzz.test.ts, seed 42).
 *
 *   npm run fuzz                                   # random seed, 2000 runs per property
 *   npm run fuzz -- --seed 1234 --runs 10000       # reproducible, longer
 *   npm run fuzz -- --only register,proxy          # some properties only
 *   npm run fuzz -- --seed 42 --only register --path "12:3"   # replay a reported counterexample
 *   FUZZ_SLOW_MS=2000 npm run fuzz                 # report requests slower than this (hangs)
 *
 * Exit code 1 on the first property that fails (with fast-check's report: seed, path, counterexample).
 */
import fc from 'fast-check';
import { properties, property, type PropertyName } from '../test/security/fuzz-properties.js';
import { assertHealthy, startFuzzWorld } from '../test/security/fuzz-world.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seed = Number(arg('seed') ?? process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const runs = Number(arg('runs') ?? process.env.FUZZ_RUNS ?? 2000);
const path = arg('path');
const only = arg('only')?.split(',');
const slowMs = Number(process.env.FUZZ_SLOW_MS ?? 5000);

// Watchdog: a request that takes longer than FUZZ_SLOW_MS is printed (a hang is a finding too).
const realFetch = globalThis.fetch;
globalThis.fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
  const timer = setTimeout(
    () =>
      console.warn(`slow request (> ${slowMs} ms): ${init?.method ?? 'GET'} ${String(input)} ${String(init?.body ?? '').slice(0, 200)}`),
    slowMs,
  );
  try {
    return await realFetch(input, init);
  } finally {
    clearTimeout(timer);
  }
}) as typeof fetch;

const world = await startFuzzWorld();
let failed = false;
try {
  const props = properties(world);
  for (const name of Object.keys(props) as PropertyName[]) {
    if (only && !only.includes(name)) continue;
    const started = Date.now();
    const result = await fc.check(property(world, name), { seed, numRuns: runs, ...(path ? { path } : {}) });
    if (result.failed) {
      failed = true;
      console.error(`✗ ${name}\n${fc.defaultReportMessage(result)}`);
      break;
    }
    console.log(`✓ ${name}: ${result.numRuns} runs in ${Date.now() - started} ms (seed ${seed})`);
  }
  if (!failed) {
    await assertHealthy(world);
    console.log('✓ still healthy: /health 200, proxied request and registration work');
  }
} finally {
  await world.close();
}
process.exit(failed ? 1 : 0);
