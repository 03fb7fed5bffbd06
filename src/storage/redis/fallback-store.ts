/**
 * The explicit, loud exception to "an unreachable back-end is an error": with `storage.redis.fallback:
 * memory`, a Redis that is unreachable AT START yields this in-memory store. Its `backend` and `health()`
 * say so. It never switches back to Redis: restart the gateway once Redis is reachable.
 */
import { MemoryStore } from '../memory/memory-store.js';
import type { SetOptions, Store, StoreHealth } from '../store.js';

export class RedisFallbackStore implements Store {
  readonly backend = 'memory (redis fallback)';
  readonly #mem = new MemoryStore();
  readonly #reason: string;

  constructor(reason: string) {
    this.#reason = reason;
  }

  get = <T>(key: string) => this.#mem.get<T>(key);
  set = (key: string, value: unknown, options?: SetOptions) => this.#mem.set(key, value, options);
  setIfAbsent = (key: string, value: unknown, options?: SetOptions) => this.#mem.setIfAbsent(key, value, options);
  delete = (key: string) => this.#mem.delete(key);
  consume = (key: string) => this.#mem.consume(key);
  take = <T>(key: string) => this.#mem.take<T>(key);
  listByIndex = (tag: string) => this.#mem.listByIndex(tag);
  deleteByIndex = (tag: string) => this.#mem.deleteByIndex(tag);
  list = <T>(prefix: string, options?: { limit?: number }) => this.#mem.list<T>(prefix, options);
  close = () => this.#mem.close();

  /** ok (the store works), but the detail says loudly that it is not Redis. */
  async health(): Promise<StoreHealth> {
    return { ok: true, backend: this.backend, detail: `DEGRADED: ${this.#reason}` };
  }
}
