/**
 * Redis back-end (ioredis 6): standalone, Sentinel or Cluster. Several gateway instances can share it.
 *
 * Key layout (P = `key_prefix`, default `gw:`):
 *   P r:<key>   hash {v, e, c, i}: the record (see scripts.ts), native TTL via PEXPIRE
 *   P i:<tag>   set of keys carrying index tag <tag>; its TTL is stretched to its longest-lived member
 *   P _keys     sorted set (all scores 0) of every key: `list(prefix)` is a ZRANGEBYLEX, never KEYS/SCAN
 *   P _exp      sorted set key -> expiresAt: lets the sweep drop expired keys from `_keys`
 *   P ch:<name> pub/sub channel
 *
 * Atomicity: every Lua script touches ONE key, so single-record operations (setIfAbsent, consume, take,
 * delete) are atomic in every topology, and no hash tags are needed. Operations that span a record and
 * its index entries (set, delete, deleteByIndex) are a sequence of single-key steps: index sets and
 * `_keys` may briefly hold stale members, which is harmless because every read verifies the record
 * (it must exist, be unexpired and still carry the tag) and cleans what it finds stale.
 * `deleteByIndex` is therefore not one atomic step: a record tagged concurrently with the call may survive.
 *
 * Cluster note: `_keys` and `_exp` live in one slot each (one node); that bounds the write rate of the
 * key listing to one node's capacity, far beyond what an authorization server needs.
 */
import { GatewayError } from '../../errors.js';
import { storageSchema, type StorageConfig } from '../../config/schema.js';
import type { StoreFactoryOptions } from '../index.js';
import {
  assertValidKey,
  expiryFromTtl,
  type ListedRecord,
  type SetOptions,
  type Store,
  type StoredRecord,
  type StoreHealth,
} from '../store.js';
import { buildClient, connectClient, describeTarget, redact, type RedisClient } from './connection.js';
import { RedisFallbackStore } from './fallback-store.js';
import { quit, RedisSubscriptions } from './pubsub.js';
import * as lua from './scripts.js';

export { RedisFallbackStore } from './fallback-store.js';

/** Extra margin on index-set TTLs so a set never expires before its member. */
const INDEX_TTL_SLACK_MS = 1000;
const SWEEP_BATCH = 500;

interface Scripted {
  gwSet(key: string, value: string, expiresAt: string, ttlMs: string, tags: string, onlyIfAbsent: string): Promise<[number, string]>;
  gwConsume(key: string, now: string): Promise<number>;
  gwTake(key: string, now: string, wantValue: '0' | '1'): Promise<[number, string, string]>;
  gwDeleteIfTagged(key: string, tag: string, now: string): Promise<[number, string]>;
  gwIndexAdd(key: string, member: string, ttlMs: string): Promise<number>;
}

export interface RedisStoreOptions {
  keyPrefix?: string;
  /** Seconds between sweeps of the key listing (0 disables). */
  sweepIntervalSeconds?: number;
  /** Timeout of the health PING in ms. */
  healthTimeoutMs?: number;
  /**
   * Seconds between background PINGs (0 disables). A PING that times out forces a reconnect: that is how a
   * half-open TCP connection (peer gone without a RST) is noticed before the OS keep-alive would.
   */
  heartbeatSeconds?: number;
  /** Timeout of a command in ms (heartbeat PINGs use it). */
  commandTimeoutMs?: number;
  onWarning?: (message: string) => void;
  /** Human-readable target for messages (no credentials). */
  target?: string;
  redactor?: (message: string) => string;
}

export class RedisStore implements Store {
  readonly backend = 'redis';
  readonly #client: RedisClient;
  readonly #cmd: RedisClient & Scripted;
  readonly #p: string;
  readonly #opts: RedisStoreOptions;
  readonly #subs: RedisSubscriptions;
  #timer: NodeJS.Timeout | undefined;
  #beat: NodeJS.Timeout | undefined;
  #closed = false;
  #lastWarn = 0;
  #down = false;

  /** Takes ownership of a connected client. */
  constructor(client: RedisClient, options: RedisStoreOptions = {}) {
    this.#client = client;
    this.#p = options.keyPrefix ?? 'gw:';
    this.#opts = options;
    client.defineCommand('gwSet', { numberOfKeys: 1, lua: lua.SET });
    client.defineCommand('gwConsume', { numberOfKeys: 1, lua: lua.CONSUME });
    client.defineCommand('gwTake', { numberOfKeys: 1, lua: lua.TAKE });
    client.defineCommand('gwDeleteIfTagged', { numberOfKeys: 1, lua: lua.DELETE_IF_TAGGED });
    client.defineCommand('gwIndexAdd', { numberOfKeys: 1, lua: lua.INDEX_ADD });
    this.#cmd = client as RedisClient & Scripted;
    this.#subs = new RedisSubscriptions(client, (m) => this.#warn(m));
    // ioredis emits 'error' on every failed (re)connect; without a listener it prints to stderr.
    client.on('error', (err: Error) => this.#warn(`Redis connection error: ${err.message}`));
    client.on('reconnecting', () => {
      this.#down = true;
      this.#warn(`Redis at ${this.#opts.target ?? 'redis'} connection lost; reconnecting (commands fail until it is back)`);
    });
    client.on('ready', () => {
      if (!this.#down) return;
      this.#down = false;
      this.#opts.onWarning?.(`Redis at ${this.#opts.target ?? 'redis'} connection restored`);
    });
    const beat = (options.heartbeatSeconds ?? 0) * 1000;
    if (beat > 0) {
      this.#beat = setInterval(() => void this.#heartbeat(), beat);
      this.#beat.unref();
    }
    const every = (options.sweepIntervalSeconds ?? 60) * 1000;
    if (every > 0) {
      this.#timer = setInterval(() => {
        this.sweep().catch((err: Error) => this.#warn(`Redis sweep failed: ${err.message}`));
      }, every);
      this.#timer.unref();
    }
  }

  /**
   * The command connection, for counters that live outside the record contract (the rate limiter's own
   * Lua script, src/http/rate-limit.ts). Do not use it for records; the store owns and closes it.
   */
  get redisClient(): RedisClient {
    return this.#client;
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed || (this.#client as { status?: string }).status !== 'ready') return;
    const ms = this.#opts.commandTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      // ioredis rejects a command that outlives `commandTimeout` with "Command timed out".
      this.#client.ping().then(
        () => false,
        (err: Error) => /timed out/i.test(err.message),
      ),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms))),
    ]);
    clearTimeout(timer);
    if (timedOut && !this.#closed) {
      this.#warn(`Redis at ${this.#opts.target ?? 'redis'} did not answer a PING within ${ms} ms; reconnecting`);
      this.#client.disconnect(true);
    }
  }

  #warn(message: string): void {
    const now = Date.now();
    if (now - this.#lastWarn < 10_000) return; // one line per 10 s while Redis is down, not one per retry
    this.#lastWarn = now;
    this.#opts.onWarning?.(this.#redact(message));
  }

  #redact(message: string): string {
    return this.#opts.redactor ? this.#opts.redactor(message) : message;
  }

  #rk = (key: string) => `${this.#p}r:${key}`;
  #ik = (tag: string) => `${this.#p}i:${tag}`;
  get #keys() {
    return `${this.#p}_keys`;
  }
  get #exp() {
    return `${this.#p}_exp`;
  }

  /** Runs a Redis call, turning connection-level failures into GW_ERR_STORE_UNAVAILABLE. */
  async #run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new GatewayError('GW_ERR_STORE_UNAVAILABLE', 'Redis store is closed');
    try {
      return await fn();
    } catch (err) {
      if (err instanceof TypeError) throw err;
      const msg = this.#redact((err as Error).message);
      throw new GatewayError('GW_ERR_STORE_UNAVAILABLE', `Redis at ${this.#opts.target ?? 'redis'} failed: ${msg}`, { cause: err });
    }
  }

  async get<T>(key: string): Promise<StoredRecord<T> | undefined> {
    assertValidKey(key);
    const [v, e, c] = await this.#run(() => this.#client.hmget(this.#rk(key), 'v', 'e', 'c'));
    return toRecord<T>(v, e, c);
  }

  async #write(key: string, value: unknown, options: SetOptions | undefined, onlyIfAbsent: boolean): Promise<boolean> {
    assertValidKey(key);
    const tags = [...new Set(options?.indexes ?? [])].sort();
    for (const t of tags) assertValidKey(t, 'index tag');
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError('value must be JSON-serialisable');
    const expiresAt = expiryFromTtl(options?.ttlSeconds);
    const ttlMs = expiresAt === undefined ? 0 : Math.max(1, expiresAt - Date.now());
    return this.#run(async () => {
      if (onlyIfAbsent && (await this.#client.exists(this.#rk(key))) === 1) return false;
      // Index entries first: a reader that sees the tag before the record just filters it out.
      await Promise.all(tags.map((t) => this.#cmd.gwIndexAdd(this.#ik(t), key, String(ttlMs === 0 ? 0 : ttlMs + INDEX_TTL_SLACK_MS))));
      const [wrote, oldTags] = await this.#cmd.gwSet(
        this.#rk(key),
        json,
        expiresAt === undefined ? '' : String(expiresAt),
        String(ttlMs),
        JSON.stringify(tags),
        onlyIfAbsent ? '1' : '0',
      );
      if (wrote !== 1) return false;
      await Promise.all([
        this.#client.zadd(this.#keys, 0, key),
        expiresAt === undefined ? this.#client.zrem(this.#exp, key) : this.#client.zadd(this.#exp, expiresAt, key),
        ...parseTags(oldTags)
          .filter((t) => !tags.includes(t))
          .map((t) => this.#client.srem(this.#ik(t), key)),
      ]);
      return true;
    });
  }

  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    await this.#write(key, value, options, false);
  }

  async setIfAbsent(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#write(key, value, options, true);
  }

  /** Cleans the side structures of records that are gone. */
  async #forget(key: string, tagsJson: string): Promise<void> {
    await Promise.all([...parseTags(tagsJson).map((t) => this.#client.srem(this.#ik(t), key)), this.#unlist([key])]);
  }

  /**
   * Removes keys from `_keys`/`_exp`, then re-adds any whose record exists again: a concurrent `set`
   * that ran between our check and our ZREM stays listed.
   */
  async #unlist(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await Promise.all([this.#client.zrem(this.#keys, ...keys), this.#client.zrem(this.#exp, ...keys)]);
    const [present, expiry] = await Promise.all([
      Promise.all(keys.map((k) => this.#client.hexists(this.#rk(k), 'v'))),
      Promise.all(keys.map((k) => this.#client.hget(this.#rk(k), 'e'))),
    ]);
    await Promise.all(
      keys.flatMap((k, n) => {
        if (present[n] !== 1) return [];
        const e = expiry[n];
        return [this.#client.zadd(this.#keys, 0, k), ...(e ? [this.#client.zadd(this.#exp, Number(e), k)] : [])];
      }),
    );
  }

  async delete(key: string): Promise<boolean> {
    assertValidKey(key);
    return this.#run(async () => {
      const [live, , tags] = await this.#cmd.gwTake(this.#rk(key), String(Date.now()), '0');
      if (tags !== '') await this.#forget(key, tags);
      return live === 1;
    });
  }

  async consume(key: string): Promise<boolean> {
    assertValidKey(key);
    return (await this.#run(() => this.#cmd.gwConsume(this.#rk(key), String(Date.now())))) === 1;
  }

  async take<T>(key: string): Promise<T | undefined> {
    assertValidKey(key);
    return this.#run(async () => {
      const [live, value, tags] = await this.#cmd.gwTake(this.#rk(key), String(Date.now()), '1');
      if (tags !== '') await this.#forget(key, tags);
      return live === 1 ? (JSON.parse(value) as T) : undefined;
    });
  }

  async listByIndex(tag: string): Promise<string[]> {
    assertValidKey(tag, 'index tag');
    return this.#run(async () => {
      const members = await this.#client.smembers(this.#ik(tag));
      const now = Date.now();
      const rows = await Promise.all(members.map((k) => this.#client.hmget(this.#rk(k), 'i', 'e')));
      const keep: string[] = [];
      const stale: string[] = [];
      members.forEach((k, n) => {
        const [i, e] = rows[n] ?? [null, null];
        const tagged = i !== null && i !== undefined && parseTags(i).includes(tag);
        if (!tagged) stale.push(k);
        else if (!(e && Number(e) <= now)) keep.push(k);
      });
      if (stale.length > 0) await this.#client.srem(this.#ik(tag), ...stale);
      return keep.sort();
    });
  }

  async deleteByIndex(tag: string): Promise<number> {
    assertValidKey(tag, 'index tag');
    return this.#run(async () => {
      const members = await this.#client.smembers(this.#ik(tag));
      const now = String(Date.now());
      const results = await Promise.all(members.map((k) => this.#cmd.gwDeleteIfTagged(this.#rk(k), tag, now)));
      let n = 0;
      const cleanups: Promise<void>[] = [];
      members.forEach((k, idx) => {
        const [deleted, tags] = results[idx] ?? [0, ''];
        if (deleted === 1) n++;
        if (tags !== '') cleanups.push(this.#forget(k, tags));
      });
      await Promise.all(cleanups);
      if (members.length > 0) await this.#client.srem(this.#ik(tag), ...members);
      return n;
    });
  }

  async list<T>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]> {
    const limit = options?.limit ?? 1000;
    if (limit <= 0) return [];
    // Lexicographic range [prefix, prefix + 0xFF): UTF-8 never contains the byte 0xFF.
    const min = prefix === '' ? '-' : Buffer.from(`[${prefix}`, 'utf8');
    const max = prefix === '' ? '+' : Buffer.concat([Buffer.from(`(${prefix}`, 'utf8'), Buffer.from([0xff])]);
    const batch = Math.min(Math.max(limit, 50), 1000);
    return this.#run(async () => {
      const out: ListedRecord<T>[] = [];
      for (let offset = 0; out.length < limit; offset += batch) {
        const keys = await this.#client.zrangebylex(this.#keys, min, max, 'LIMIT', offset, batch);
        const now = Date.now();
        const rows = await Promise.all(keys.map((k) => this.#client.hmget(this.#rk(k), 'v', 'e', 'c', 'i')));
        const gone: string[] = [];
        keys.forEach((k, n) => {
          const [v, e, c, i] = rows[n] ?? [];
          const rec = toRecord<T>(v ?? null, e ?? null, c ?? null, now);
          if (!rec) {
            if (v === null || v === undefined) gone.push(k);
            return;
          }
          if (out.length < limit) out.push({ key: k, ...rec, indexes: parseTags(i ?? '') });
        });
        if (gone.length > 0) await this.#unlist(gone);
        if (keys.length < batch) break;
      }
      return out;
    });
  }

  /**
   * Drops keys whose records expired from `_keys`/`_exp` (Redis itself already deleted the records and
   * index sets shrink via their own TTL or the next lookup). Returns how many were dropped.
   */
  async sweep(now = Date.now()): Promise<number> {
    return this.#run(async () => {
      let total = 0;
      for (;;) {
        const due = await this.#client.zrangebyscore(this.#exp, '-inf', now, 'LIMIT', 0, SWEEP_BATCH);
        if (due.length === 0) break;
        await this.#unlist(due);
        total += due.length;
        if (due.length < SWEEP_BATCH) break;
      }
      return total;
    });
  }

  async health(): Promise<StoreHealth> {
    if (this.#closed) return { ok: false, backend: this.backend, detail: 'closed' };
    const status = (this.#client as { status?: string }).status;
    if (status !== 'ready')
      return {
        ok: false,
        backend: this.backend,
        detail: `Redis at ${this.#opts.target ?? 'redis'} is not connected (${status ?? 'unknown'})`,
      };
    const ms = this.#opts.healthTimeoutMs ?? 1000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#client.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`PING timed out after ${ms} ms`)), ms);
        }),
      ]);
      return { ok: true, backend: this.backend };
    } catch (err) {
      return {
        ok: false,
        backend: this.backend,
        detail: this.#redact(`Redis at ${this.#opts.target ?? 'redis'}: ${(err as Error).message}`),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async publish(channel: string, message: string): Promise<void> {
    assertValidKey(channel, 'channel');
    await this.#run(() => this.#client.publish(`${this.#p}ch:${channel}`, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    assertValidKey(channel, 'channel');
    return this.#run(() => this.#subs.subscribe(`${this.#p}ch:${channel}`, handler));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#beat) clearInterval(this.#beat);
    await Promise.all([quit(this.#client), this.#subs.close()]);
  }
}

function parseTags(json: string | null | undefined): string[] {
  if (!json) return [];
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

function toRecord<T>(
  v: string | null | undefined,
  e: string | null | undefined,
  c: string | null | undefined,
  now = Date.now(),
): StoredRecord<T> | undefined {
  if (v === null || v === undefined) return undefined;
  const rec: StoredRecord<T> = { value: JSON.parse(v) as T };
  if (e) {
    rec.expiresAt = Number(e);
    if (rec.expiresAt <= now) return undefined;
  }
  if (c) rec.consumedAt = Number(c);
  return rec;
}

/** `storage.redis` → a connected RedisStore, or (with `fallback: memory`) a loud in-memory stand-in. */
export async function createRedisStore(config: StorageConfig, options: StoreFactoryOptions): Promise<Store> {
  // No storage.redis section: the schema's defaults (localhost:6379).
  const cfg = config.redis ?? storageSchema.parse({ type: 'redis', redis: {} }).redis!;
  const target = describeTarget(cfg);
  const client = await buildClient(cfg);
  try {
    await connectClient(client, cfg);
  } catch (err) {
    if (cfg.fallback !== 'memory') throw err;
    const message = `${(err as Error).message}. storage.redis.fallback is "memory": running on IN-MEMORY storage. Data is lost on restart and NOT shared between instances.`;
    options.onWarning?.(`WARNING: ${message}`);
    return new RedisFallbackStore(message);
  }
  return new RedisStore(client, {
    keyPrefix: cfg.key_prefix,
    sweepIntervalSeconds: cfg.sweep_interval,
    healthTimeoutMs: Math.min(1000, Math.round(cfg.socket_timeout * 1000)),
    heartbeatSeconds: cfg.health_check_interval,
    commandTimeoutMs: Math.round(cfg.socket_timeout * 1000),
    onWarning: options.onWarning,
    target,
    redactor: (m) => redact(m, cfg),
  });
}
