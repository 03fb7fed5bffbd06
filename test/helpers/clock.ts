/**
 * A controlled clock for TTL tests of in-process state (memory and SQLite stores, oidc-provider's own
 * expiry checks, which read `Date.now()`): only `Date` is faked and it keeps advancing with real time, so
 * timers, sockets and the servers under test behave normally; `elapse(ms)` jumps it forward instead of
 * sleeping. Back-ends with a server-side clock (Redis TTLs, the Vault stand-in's sweeps) still need real
 * time: do not use this for them.
 */
import { onTestFinished, vi } from 'vitest';

export interface ControlledClock {
  /** Moves `Date.now()` forward by `ms` at once. */
  elapse(ms: number): void;
}

/** Starts the controlled clock for the current test; the real clock is back when the test finishes. */
export function controlledClock(): ControlledClock {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  onTestFinished(() => {
    vi.useRealTimers();
  });
  return { elapse: (ms) => vi.setSystemTime(new Date(Date.now() + ms)) };
}
