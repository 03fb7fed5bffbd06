/**
 * Property-based fuzzing in CI: fixed seed, few runs per property (the long run is `npm run fuzz`,
 * scripts/fuzz.ts). The invariants are in fuzz-properties.ts. A failure prints fast-check's seed and
 * path, which `npm run fuzz -- --seed <seed> --path <path> --only <property>` replays.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { property, type PropertyName } from './fuzz-properties.js';
import { assertHealthy, startFuzzWorld, type RunningFuzzWorld } from './fuzz-world.js';

const SEED = 42;
const RUNS: Record<PropertyName, number> = {
  register: 400,
  authorize: 300,
  callback: 200,
  token: 300,
  revoke: 200,
  introspect: 200,
  proxy: 400,
};

describe('input hardening: property-based fuzzing (fast-check, seed 42)', () => {
  let world: RunningFuzzWorld;
  beforeAll(async () => {
    world = await startFuzzWorld();
  });
  afterAll(async () => {
    await world?.close();
  });

  for (const name of Object.keys(RUNS) as PropertyName[]) {
    it(`${name}: any input gets a 4xx or a legitimate answer, never a 5xx or an unearned code/token`, { timeout: 60_000 }, async () => {
      await fc.assert(property(world, name), { seed: SEED, numRuns: RUNS[name], endOnFailure: true });
    });
  }

  it('the gateway is still healthy afterwards: /health 200, a proxied request and a registration work', async () => {
    await assertHealthy(world);
  });
});
