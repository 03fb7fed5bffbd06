/**
 * Two stores behind one: records whose key starts with one of `prefixes` live in `secondary` (the
 * short-lived, high-churn ones: codes, sessions, interactions, revocation markers), everything else in
 * `primary` (Vault). Each record, with its index tags, lives in exactly one back-end, so single-record
 * operations keep the atomicity of that back-end; tag lookups and listings query both and merge.
 *
 * Pub/sub (`publish`/`subscribe`) is delegated to the secondary when it has it (Redis).
 */
import type { ListedRecord, SetOptions, Store, StoredRecord, StoreHealth } from '../store.js';

export class SplitStore implements Store {
  readonly backend: string;
  readonly #primary: Store;
  readonly #secondary: Store;
  readonly #prefixes: readonly string[];
  publish?: Store['publish'];
  subscribe?: Store['subscribe'];

  constructor(primary: Store, secondary: Store, prefixes: readonly string[]) {
    this.#primary = primary;
    this.#secondary = secondary;
    this.#prefixes = prefixes;
    this.backend = `${primary.backend}+${secondary.backend}`;
    if (secondary.publish && secondary.subscribe) {
      this.publish = secondary.publish.bind(secondary);
      this.subscribe = secondary.subscribe.bind(secondary);
    }
  }

  /**
   * The secondary's Redis client, when it is Redis: rate-limit counters (`gw:ratelimit:` is a short-lived
   * prefix) are then shared by every instance, and the availability probe sees that connection.
   */
  get redisClient(): unknown {
    return (this.#secondary as { redisClient?: unknown }).redisClient;
  }

  #route(key: string): Store {
    return this.#prefixes.some((p) => key.startsWith(p)) ? this.#secondary : this.#primary;
  }

  get<T>(key: string): Promise<StoredRecord<T> | undefined> {
    return this.#route(key).get<T>(key);
  }
  set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    return this.#route(key).set(key, value, options);
  }
  setIfAbsent(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#route(key).setIfAbsent(key, value, options);
  }
  delete(key: string): Promise<boolean> {
    return this.#route(key).delete(key);
  }
  consume(key: string): Promise<boolean> {
    return this.#route(key).consume(key);
  }
  take<T>(key: string): Promise<T | undefined> {
    return this.#route(key).take<T>(key);
  }

  async listByIndex(tag: string): Promise<string[]> {
    const [a, b] = await Promise.all([this.#primary.listByIndex(tag), this.#secondary.listByIndex(tag)]);
    return [...new Set([...a, ...b])].sort();
  }

  async deleteByIndex(tag: string): Promise<number> {
    const [a, b] = await Promise.all([this.#primary.deleteByIndex(tag), this.#secondary.deleteByIndex(tag)]);
    return a + b;
  }

  async list<T>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]> {
    const limit = options?.limit ?? 1000;
    const [a, b] = await Promise.all([this.#primary.list<T>(prefix, { limit }), this.#secondary.list<T>(prefix, { limit })]);
    return [...a, ...b].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)).slice(0, limit);
  }

  async health(): Promise<StoreHealth> {
    const [p, s] = await Promise.all([this.#primary.health(), this.#secondary.health()]);
    const details = [
      p.ok ? undefined : `${p.backend}: ${p.detail ?? 'down'}`,
      s.ok ? undefined : `${s.backend}: ${s.detail ?? 'down'}`,
      s.detail && s.ok ? `${s.backend}: ${s.detail}` : undefined,
    ].filter(Boolean);
    return { ok: p.ok && s.ok, backend: this.backend, ...(details.length && { detail: details.join('; ') }) };
  }

  async close(): Promise<void> {
    await Promise.all([this.#primary.close(), this.#secondary.close()]);
  }
}
