/**
 * The storage contract: one small async interface behind every stateful thing in the gateway
 * (clients, grants, codes, refresh tokens, sessions, consents, signing keys, MCP session bindings).
 *
 * Every back-end (memory, sqlite, redis, vault) implements exactly this, and one contract test suite
 * (test/storage/contract.ts) runs against all of them.
 *
 * Values are JSON-serialisable objects. Keys are non-empty strings without control characters and at
 * most 512 characters long; they are namespaced by the caller (`oidc:Client:<id>`, `gw:consent:<...>`).
 *
 * Secondary indexes: a record may carry index tags (for example `grant:<grantId>` or `uid:<uid>`). Tags let
 * oidc-provider's `revokeByGrantId` and `findByUid` work without scanning. A tag index never outlives
 * its records in a visible way: a lookup only returns keys whose record still exists and is unexpired.
 */
export interface StoredRecord<T = unknown> {
  value: T;
  /** Absolute expiry (epoch milliseconds), if the record has a TTL. */
  expiresAt?: number;
  /** Set once by `consume` (epoch milliseconds). */
  consumedAt?: number;
}

export interface SetOptions {
  /** Lifetime in seconds. Omitted or 0: the record does not expire. */
  ttlSeconds?: number;
  /** Secondary index tags under which the key can be found (`listByIndex`, `deleteByIndex`). */
  indexes?: readonly string[];
}

export interface ListedRecord<T = unknown> extends StoredRecord<T> {
  key: string;
  /**
   * The record's index tags (sorted). Every back-end fills this in `list()` so that a migration
   * (src/storage/migrate.ts) can re-create them; optional only so that older callers need not care.
   */
  indexes?: string[];
}

export interface StoreHealth {
  ok: boolean;
  backend: string;
  detail?: string;
}

export interface Store {
  /** Back-end name: memory, sqlite, redis, vault. */
  readonly backend: string;

  get<T = unknown>(key: string): Promise<StoredRecord<T> | undefined>;

  /** Insert or replace. Replacing clears `consumedAt` and replaces the index tags. */
  set(key: string, value: unknown, options?: SetOptions): Promise<void>;

  /**
   * Inserts only when no live record exists under `key` (an expired one counts as absent). Returns whether
   * this call wrote. Used for first-start races (signing keys) and idempotent markers.
   */
  setIfAbsent(key: string, value: unknown, options?: SetOptions): Promise<boolean>;

  /** Returns whether a live record was deleted. */
  delete(key: string): Promise<boolean>;

  /**
   * Atomic mark-as-consumed: the first caller on a live, unconsumed record gets `true` and the record
   * keeps its value with `consumedAt` set; every other caller (concurrent or later) gets `false`.
   */
  consume(key: string): Promise<boolean>;

  /**
   * Atomic take-once: returns the value and deletes the record in one step. Of any number of concurrent
   * callers exactly one receives the value.
   */
  take<T = unknown>(key: string): Promise<T | undefined>;

  /** Keys of live records carrying this index tag. */
  listByIndex(tag: string): Promise<string[]>;

  /** Deletes every live record carrying this index tag; returns how many. */
  deleteByIndex(tag: string): Promise<number>;

  /** Live records whose key starts with `prefix`, in key order, at most `limit` (default 1000). */
  list<T = unknown>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]>;

  /** Cheap reachability check used by `/ready`. Never throws. */
  health(): Promise<StoreHealth>;

  /** Releases connections and timers. Idempotent. */
  close(): Promise<void>;

  /**
   * Optional cross-instance messaging (Redis only; absent elsewhere). Delivers `message` to every
   * subscriber of `channel` on every instance sharing the back-end, this one included. Fire-and-forget:
   * a message published while an instance is disconnected is not replayed to it, so use it to speed up
   * what storage polling already guarantees (for example revocation), never as the only path.
   */
  publish?(channel: string, message: string): Promise<void>;

  /**
   * Optional (see `publish`). Subscribes `handler` to `channel` on a dedicated connection and returns a
   * function that unsubscribes it. Handlers must not throw; errors they throw are swallowed.
   */
  subscribe?(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
}

export const MAX_KEY_LENGTH = 512;

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Validates a key or index tag; back-ends call this before touching their engine. */
export function assertValidKey(key: string, what = 'key'): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH || CONTROL_CHARS.test(key)) {
    throw new TypeError(
      `invalid storage ${what}: must be a non-empty string of at most ${MAX_KEY_LENGTH} characters without control characters`,
    );
  }
}

/** Converts a TTL in seconds to an absolute expiry, or undefined for "no expiry". */
export function expiryFromTtl(ttlSeconds: number | undefined, now = Date.now()): number | undefined {
  if (ttlSeconds === undefined || ttlSeconds === 0) return undefined;
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 0) throw new TypeError('ttlSeconds must be a non-negative finite number');
  return now + Math.ceil(ttlSeconds * 1000);
}
