/**
 * SQLite back-end (better-sqlite3): the embedded default. One file, WAL journal, prepared statements,
 * expired rows swept periodically. better-sqlite3 is synchronous; every statement here is a single indexed
 * read or write that takes microseconds, and atomicity comes for free because the event loop runs one
 * statement at a time (consume/take use one UPDATE/DELETE ... RETURNING each).
 *
 * One writer process per file: several gateway instances need Redis.
 */
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';
import {
  assertValidKey,
  expiryFromTtl,
  type ListedRecord,
  type SetOptions,
  type Store,
  type StoredRecord,
  type StoreHealth,
} from '../store.js';

interface Row {
  key: string;
  value: string;
  expires_at: number | null;
  consumed_at: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  expires_at INTEGER,
  consumed_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS kv_index (
  tag TEXT NOT NULL,
  key TEXT NOT NULL REFERENCES kv(key) ON DELETE CASCADE,
  PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_index_key ON kv_index(key);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', '1');
`;

/**
 * better-sqlite3's Database and Statement objects are node::ObjectWrap instances. On Node 24.19 and later,
 * an ObjectWrap destroyed by the garbage collector without a JavaScript context aborts the process
 * (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook; nodejs/node#65446, open), when
 * better-sqlite3 was compiled against those Node headers. So no wrapper of ours is ever left to the
 * collector: the pragmas run through `exec` (no Statement object), the prepared statements live as long as
 * their store, and a closed store's database and statements are kept here (a few small objects per store
 * ever opened in the process; the SQLite resources themselves are released by `close`). The rule for
 * code here: no `db.pragma()`, no throwaway `prepare()`, no `.iterate()` (its iterator is such an object).
 */
const closedDatabases: unknown[] = [];

export class SqliteStore implements Store {
  readonly backend = 'sqlite';
  readonly file: string;
  #db: Database.Database;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #stmt: ReturnType<SqliteStore['prepare']>;

  private constructor(file: string, db: Database.Database, sweepIntervalMs: number) {
    this.file = file;
    this.#db = db;
    this.#stmt = this.prepare();
    this.#tx = db.transaction(this.#write);
    if (sweepIntervalMs > 0) {
      this.#timer = setInterval(() => {
        try {
          this.sweep();
        } catch {
          /* a failed sweep is retried at the next tick */
        }
      }, sweepIntervalMs);
      this.#timer.unref();
    }
  }

  /** Opens (creating folder, file and schema as needed). `:memory:` gives a private in-memory database. */
  static open(path: string, options: { baseDir?: string; sweepIntervalMs?: number } = {}): SqliteStore {
    const file = path === ':memory:' || isAbsolute(path) ? path : resolve(options.baseDir ?? process.cwd(), path);
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    try {
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;');
      db.exec(SCHEMA);
      return new SqliteStore(file, db, options.sweepIntervalMs ?? 60_000);
    } catch (err) {
      // Not a database, or one with another schema: closed and kept too, or the collector would abort.
      db.close();
      closedDatabases.push(db);
      throw err;
    }
  }

  private prepare() {
    const db = this.#db;
    return {
      get: db.prepare<[string, number], Row>(
        'SELECT key, value, expires_at, consumed_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)',
      ),
      upsert: db.prepare<[string, string, number | null]>(
        'INSERT INTO kv(key, value, expires_at, consumed_at) VALUES (?, ?, ?, NULL) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, consumed_at = NULL',
      ),
      deleteExpiredOne: db.prepare<[string, number]>('DELETE FROM kv WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?'),
      insertNew: db.prepare<[string, string, number | null]>(
        'INSERT OR IGNORE INTO kv(key, value, expires_at, consumed_at) VALUES (?, ?, ?, NULL)',
      ),
      clearIndexes: db.prepare<[string]>('DELETE FROM kv_index WHERE key = ?'),
      addIndex: db.prepare<[string, string]>('INSERT OR IGNORE INTO kv_index(tag, key) VALUES (?, ?)'),
      delete: db.prepare<[string, number]>('DELETE FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)'),
      deleteAny: db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      consume: db.prepare<[number, string, number]>(
        'UPDATE kv SET consumed_at = ? WHERE key = ? AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > ?)',
      ),
      take: db.prepare<[string, number], { value: string }>(
        'DELETE FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?) RETURNING value',
      ),
      byIndex: db.prepare<[string, number], { key: string }>(
        'SELECT i.key AS key FROM kv_index i JOIN kv ON kv.key = i.key WHERE i.tag = ? AND (kv.expires_at IS NULL OR kv.expires_at > ?) ORDER BY i.key',
      ),
      deleteByIndex: db.prepare<[string, number]>(
        'DELETE FROM kv WHERE key IN (SELECT key FROM kv_index WHERE tag = ?) AND (expires_at IS NULL OR expires_at > ?)',
      ),
      deleteIndexTag: db.prepare<[string]>('DELETE FROM kv_index WHERE tag = ?'),
      // Tags come from the same statement (one indexed sub-select per row inside SQLite), not one query per
      // row from JavaScript: the revocation poll lists every second (tags cannot contain control characters).
      list: db.prepare<[string, string, number, number], Row & { tags: string | null }>(
        'SELECT key, value, expires_at, consumed_at, (SELECT group_concat(tag, char(31)) FROM kv_index WHERE kv_index.key = kv.key) AS tags FROM kv WHERE key >= ? AND key < ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?',
      ),
      sweep: db.prepare<[number]>('DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?'),
      ping: db.prepare('SELECT 1 AS ok'),
    };
  }

  #check(): void {
    if (this.#closed) throw new Error('SQLite store is closed');
  }

  async get<T>(key: string): Promise<StoredRecord<T> | undefined> {
    assertValidKey(key);
    this.#check();
    const row = this.#stmt.get.get(key, Date.now());
    return row ? toRecord<T>(row) : undefined;
  }

  #write = (key: string, json: string, expiresAt: number | null, indexes: readonly string[], onlyIfAbsent: boolean): boolean => {
    const now = Date.now();
    if (onlyIfAbsent) {
      this.#stmt.deleteExpiredOne.run(key, now);
      if (this.#stmt.insertNew.run(key, json, expiresAt).changes === 0) return false;
    } else {
      this.#stmt.upsert.run(key, json, expiresAt);
      this.#stmt.clearIndexes.run(key);
    }
    for (const tag of indexes) this.#stmt.addIndex.run(tag, key);
    return true;
  };

  #tx: (key: string, json: string, expiresAt: number | null, indexes: readonly string[], onlyIfAbsent: boolean) => boolean;

  #doWrite(key: string, value: unknown, options: SetOptions | undefined, onlyIfAbsent: boolean): boolean {
    assertValidKey(key);
    this.#check();
    const indexes = [...new Set(options?.indexes ?? [])];
    for (const tag of indexes) assertValidKey(tag, 'index tag');
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError('value must be JSON-serialisable');
    const expiresAt = expiryFromTtl(options?.ttlSeconds) ?? null;
    return this.#tx(key, json, expiresAt, indexes, onlyIfAbsent);
  }

  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    this.#doWrite(key, value, options, false);
  }

  async setIfAbsent(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#doWrite(key, value, options, true);
  }

  async delete(key: string): Promise<boolean> {
    assertValidKey(key);
    this.#check();
    const now = Date.now();
    const n = this.#stmt.delete.run(key, now).changes;
    if (n === 0) this.#stmt.deleteExpiredOne.run(key, now);
    return n > 0;
  }

  async consume(key: string): Promise<boolean> {
    assertValidKey(key);
    this.#check();
    const now = Date.now();
    return this.#stmt.consume.run(now, key, now).changes === 1;
  }

  async take<T>(key: string): Promise<T | undefined> {
    assertValidKey(key);
    this.#check();
    const row = this.#stmt.take.get(key, Date.now());
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  async listByIndex(tag: string): Promise<string[]> {
    assertValidKey(tag, 'index tag');
    this.#check();
    return this.#stmt.byIndex.all(tag, Date.now()).map((r) => r.key);
  }

  async deleteByIndex(tag: string): Promise<number> {
    assertValidKey(tag, 'index tag');
    this.#check();
    return this.#db.transaction(() => {
      const n = this.#stmt.deleteByIndex.run(tag, Date.now()).changes;
      this.#stmt.deleteIndexTag.run(tag);
      return n;
    })();
  }

  async list<T>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]> {
    this.#check();
    const limit = options?.limit ?? 1000;
    // Range scan on the primary key: [prefix, prefix + U+FFFF).
    const rows = this.#stmt.list.all(prefix, `${prefix}\uffff`, Date.now(), limit);
    return rows.map((r) => ({ key: r.key, ...toRecord<T>(r), indexes: r.tags ? r.tags.split('\u001f').sort() : [] }));
  }

  async health(): Promise<StoreHealth> {
    try {
      this.#check();
      this.#stmt.ping.get();
      return { ok: true, backend: this.backend };
    } catch (err) {
      return { ok: false, backend: this.backend, detail: (err as Error).message };
    }
  }

  /** Deletes expired rows (their index rows cascade). */
  sweep(now = Date.now()): number {
    this.#check();
    return this.#stmt.sweep.run(now).changes;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#closed = true;
    this.#db.close();
    closedDatabases.push(this.#db, this.#stmt);
  }
}

function toRecord<T>(row: Row): StoredRecord<T> {
  const r: StoredRecord<T> = { value: JSON.parse(row.value) as T };
  if (row.expires_at !== null) r.expiresAt = row.expires_at;
  if (row.consumed_at !== null) r.consumedAt = row.consumed_at;
  return r;
}
