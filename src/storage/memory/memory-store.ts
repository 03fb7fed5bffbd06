/**
 * In-memory back-end: tests and throw-away runs. Values are kept as their JSON text (what the SQLite and
 * Redis back-ends store too) and parsed on every read, so callers can never mutate stored state by
 * reference; serialising once in and parsing once out costs about half of two structuredClone copies.
 * Expired records are dropped lazily and by a sweep.
 */
import {
  assertValidKey,
  expiryFromTtl,
  type ListedRecord,
  type SetOptions,
  type Store,
  type StoredRecord,
  type StoreHealth,
} from '../store.js';

interface Entry {
  /** JSON text of the value. */
  json: string;
  expiresAt?: number;
  consumedAt?: number;
  indexes: readonly string[];
}

export class MemoryStore implements Store {
  readonly backend = 'memory';
  #data = new Map<string, Entry>();
  #index = new Map<string, Set<string>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { sweepIntervalMs?: number } = {}) {
    const every = options.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.#timer = setInterval(() => this.sweep(), every);
      this.#timer.unref();
    }
  }

  #live(key: string, now = Date.now()): Entry | undefined {
    const e = this.#data.get(key);
    if (!e) return undefined;
    if (e.expiresAt !== undefined && e.expiresAt <= now) {
      this.#remove(key, e);
      return undefined;
    }
    return e;
  }

  #remove(key: string, e: Entry): void {
    this.#data.delete(key);
    for (const tag of e.indexes) {
      const s = this.#index.get(tag);
      if (s) {
        s.delete(key);
        if (s.size === 0) this.#index.delete(tag);
      }
    }
  }

  #record<T>(e: Entry): StoredRecord<T> {
    const r: StoredRecord<T> = { value: JSON.parse(e.json) as T };
    if (e.expiresAt !== undefined) r.expiresAt = e.expiresAt;
    if (e.consumedAt !== undefined) r.consumedAt = e.consumedAt;
    return r;
  }

  async get<T>(key: string): Promise<StoredRecord<T> | undefined> {
    assertValidKey(key);
    const e = this.#live(key);
    return e ? this.#record<T>(e) : undefined;
  }

  #write(key: string, value: unknown, options?: SetOptions): void {
    const indexes = [...new Set(options?.indexes ?? [])];
    for (const tag of indexes) assertValidKey(tag, 'index tag');
    const expiresAt = expiryFromTtl(options?.ttlSeconds);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError('value must be JSON-serialisable');
    const old = this.#data.get(key);
    if (old) this.#remove(key, old);
    const entry: Entry = { json, indexes };
    if (expiresAt !== undefined) entry.expiresAt = expiresAt;
    this.#data.set(key, entry);
    for (const tag of indexes) {
      let s = this.#index.get(tag);
      if (!s) this.#index.set(tag, (s = new Set()));
      s.add(key);
    }
  }

  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    assertValidKey(key);
    this.#write(key, value, options);
  }

  async setIfAbsent(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    assertValidKey(key);
    if (this.#live(key)) return false;
    this.#write(key, value, options);
    return true;
  }

  async delete(key: string): Promise<boolean> {
    assertValidKey(key);
    const e = this.#live(key);
    if (!e) return false;
    this.#remove(key, e);
    return true;
  }

  async consume(key: string): Promise<boolean> {
    assertValidKey(key);
    const e = this.#live(key);
    if (!e || e.consumedAt !== undefined) return false;
    e.consumedAt = Date.now();
    return true;
  }

  async take<T>(key: string): Promise<T | undefined> {
    assertValidKey(key);
    const e = this.#live(key);
    if (!e) return undefined;
    this.#remove(key, e);
    return JSON.parse(e.json) as T;
  }

  async listByIndex(tag: string): Promise<string[]> {
    assertValidKey(tag, 'index tag');
    const s = this.#index.get(tag);
    if (!s) return [];
    return [...s].filter((k) => this.#live(k) !== undefined).sort();
  }

  async deleteByIndex(tag: string): Promise<number> {
    const keys = await this.listByIndex(tag);
    let n = 0;
    for (const k of keys) {
      const e = this.#data.get(k);
      if (e) {
        this.#remove(k, e);
        n++;
      }
    }
    return n;
  }

  async list<T>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]> {
    const limit = options?.limit ?? 1000;
    const now = Date.now();
    const keys = [...this.#data.keys()].filter((k) => k.startsWith(prefix)).sort();
    const out: ListedRecord<T>[] = [];
    for (const k of keys) {
      if (out.length >= limit) break;
      const e = this.#live(k, now);
      if (e) out.push({ key: k, ...this.#record<T>(e), indexes: [...e.indexes].sort() });
    }
    return out;
  }

  async health(): Promise<StoreHealth> {
    return { ok: true, backend: this.backend };
  }

  sweep(now = Date.now()): number {
    let n = 0;
    for (const [k, e] of this.#data) {
      if (e.expiresAt !== undefined && e.expiresAt <= now) {
        this.#remove(k, e);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
