/**
 * Vault back-end: HashiCorp Vault KV v2 over plain HTTP (client.ts). Suited to what changes rarely and
 * matters most (clients, signing keys, consents), or to everything at low volume: every operation is one
 * to three HTTPS round trips and every write creates a KV version. For busy deployments use
 * `storage.vault.short_lived` to keep codes, sessions, interactions and markers elsewhere (split-store.ts).
 *
 * Layout under `<mount_point>` (P = `path_prefix`; key encoding in path.ts):
 *   P/r/<encoded key>          record: data = {v: value, exp?: ms, c?: consumedAt ms, idx?: tags, t?: tombstone ms}
 *   P/i/<enc tag>/<enc key>    index entry: data = {exp?: ms}; listByIndex is one LIST of P/i/<enc tag>/
 *
 * KV v2 has no TTL: `exp` is checked on every read and a sweep (every `sweep_interval` seconds) hard-deletes
 * expired records, tombstones and orphaned index entries.
 *
 * Atomicity comes from check-and-set (`options.cas`): setIfAbsent writes with `cas` = the version it saw
 * (0 = "must not exist"); consume re-writes the record with `c` set and `cas` = the version it read; take and
 * delete first write a tombstone with `cas` (exactly one caller wins) and then delete all versions
 * (`DELETE .../metadata/...`). A CAS conflict (HTTP 400 "check-and-set parameter did not match the current
 * version") means another writer won: we re-read and decide again. Plain `set` is last-writer-wins.
 * Known window: a `set` that lands between another caller's tombstone and its metadata delete is lost.
 */
import type { StorageConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
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
import { CAS_MISMATCH, errorsOf, trimSlashes, VaultClient, type VaultConfig, type VaultResponse } from './client.js';
import { decodeSegment, encodeSegment, keyToPath } from './path.js';

interface Doc {
  v?: unknown;
  exp?: number;
  c?: number;
  idx?: string[];
  /** Tombstone: set by take/delete just before the hard delete. */
  t?: number;
}

interface Read {
  version: number;
  doc: Doc | undefined;
}

const CAS_ATTEMPTS = 20;
const PARALLEL = 8;

const live = (d: Doc | undefined, now = Date.now()): boolean => !!d && d.t === undefined && (d.exp === undefined || d.exp > now);

export interface VaultStoreOptions {
  mountPoint: string;
  pathPrefix: string;
  /** Seconds between sweeps (0 disables). */
  sweepIntervalSeconds?: number;
  onWarning?: (message: string) => void;
}

export class VaultStore implements Store {
  readonly backend = 'vault';
  readonly #vault: VaultClient;
  readonly #data: string;
  readonly #meta: string;
  readonly #warn: (m: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(vault: VaultClient, options: VaultStoreOptions) {
    this.#vault = vault;
    const mount = trimSlashes(options.mountPoint).split('/').map(encodeURIComponent).join('/');
    const prefix = trimSlashes(options.pathPrefix).split('/').map(encodeURIComponent).join('/');
    this.#data = `/v1/${mount}/data/${prefix}/`;
    this.#meta = `/v1/${mount}/metadata/${prefix}/`;
    this.#warn = options.onWarning ?? (() => undefined);
    const every = (options.sweepIntervalSeconds ?? 300) * 1000;
    if (every > 0) {
      this.#timer = setInterval(() => {
        this.sweep().catch((err: Error) => this.#warn(`Vault sweep failed: ${err.message}`));
      }, every);
      this.#timer.unref();
    }
  }

  #check(): void {
    if (this.#closed) throw new GatewayError('GW_ERR_STORE_UNAVAILABLE', 'Vault store is closed');
  }

  // ---- raw KV helpers ----------------------------------------------------------------------------

  async #read(rel: string): Promise<Read> {
    const res = await this.#vault.call('GET', this.#data + rel);
    const data = res.body?.data as { data?: unknown; metadata?: { version?: number } } | undefined;
    const version = typeof data?.metadata?.version === 'number' ? data.metadata.version : 0;
    if (res.status === 404) return { version, doc: undefined }; // absent, or soft-deleted (version kept)
    const doc = data?.data;
    return { version, doc: doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Doc) : undefined };
  }

  /** Writes; with `cas`, returns false when another writer got there first. */
  async #write(rel: string, doc: Doc, cas?: number): Promise<boolean> {
    const res = await this.#vault.call('POST', this.#data + rel, { data: doc, ...(cas !== undefined && { options: { cas } }) });
    if (isCasMismatch(res)) return false;
    if (res.status === 404)
      throw new GatewayError('GW_ERR_STORE_UNAVAILABLE', 'Vault write failed with HTTP 404: is a KV v2 engine mounted at mount_point?');
    return true;
  }

  async #destroy(rel: string): Promise<void> {
    await this.#vault.call('DELETE', this.#meta + rel);
  }

  /** Names in a folder (`rel` ends with `/` or is empty); [] when the folder does not exist. */
  async #listFolder(rel: string): Promise<string[]> {
    const res = await this.#vault.call('GET', `${this.#meta}${rel}?list=true`);
    if (res.status === 404) return [];
    const keys = (res.body?.data as { keys?: unknown } | undefined)?.keys;
    return Array.isArray(keys) ? keys.filter((k): k is string => typeof k === 'string') : [];
  }

  #rec = (key: string) => `r/${keyToPath(key)}`;
  #idx = (tag: string, key: string) => `i/${encodeSegment(tag)}/${encodeSegment(key)}`;

  // ---- Store -------------------------------------------------------------------------------------

  async get<T>(key: string): Promise<StoredRecord<T> | undefined> {
    assertValidKey(key);
    this.#check();
    const { doc } = await this.#read(this.#rec(key));
    return doc && live(doc) ? toRecord<T>(doc) : undefined;
  }

  async #put(key: string, value: unknown, options: SetOptions | undefined, onlyIfAbsent: boolean): Promise<boolean> {
    assertValidKey(key);
    const tags = [...new Set(options?.indexes ?? [])].sort();
    for (const t of tags) assertValidKey(t, 'index tag');
    if (JSON.stringify(value) === undefined) throw new TypeError('value must be JSON-serialisable');
    const exp = expiryFromTtl(options?.ttlSeconds);
    this.#check();
    const doc: Doc = { v: value, ...(exp !== undefined && { exp }), ...(tags.length && { idx: tags }) };
    const rel = this.#rec(key);
    let old: Doc | undefined;
    if (onlyIfAbsent) {
      let won = false;
      for (let attempt = 0; attempt < CAS_ATTEMPTS && !won; attempt++) {
        const cur = await this.#read(rel);
        if (live(cur.doc)) return false;
        old = cur.doc;
        won = await this.#write(rel, doc, cur.version);
      }
      if (!won) throw contention('setIfAbsent');
    } else {
      old = (await this.#read(rel)).doc;
      await this.#write(rel, doc);
    }
    // Index entries after the record: a reader verifies the record anyway.
    await pool(tags, (t) => this.#write(this.#idx(t, key), exp === undefined ? {} : { exp }));
    const stale = (old?.idx ?? []).filter((t) => !tags.includes(t));
    await pool(stale, (t) => this.#destroy(this.#idx(t, key)));
    return true;
  }

  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    await this.#put(key, value, options, false);
  }

  async setIfAbsent(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#put(key, value, options, true);
  }

  /** Tombstones the record with CAS (one winner), then hard-deletes it. Returns the live doc removed. */
  async #remove(key: string): Promise<Doc | undefined> {
    const rel = this.#rec(key);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const cur = await this.#read(rel);
      if (!cur.doc) return undefined;
      if (!live(cur.doc)) return undefined; // expired or tombstoned: the sweep removes it
      if (await this.#write(rel, { ...cur.doc, t: Date.now() }, cur.version)) {
        await this.#cleanup(key, cur.doc);
        return cur.doc;
      }
    }
    throw contention('delete/take');
  }

  async #cleanup(key: string, doc: Doc): Promise<void> {
    await this.#destroy(this.#rec(key));
    await pool(doc.idx ?? [], (t) => this.#destroy(this.#idx(t, key)));
  }

  async delete(key: string): Promise<boolean> {
    assertValidKey(key);
    this.#check();
    return (await this.#remove(key)) !== undefined;
  }

  async take<T>(key: string): Promise<T | undefined> {
    assertValidKey(key);
    this.#check();
    return (await this.#remove(key))?.v as T | undefined;
  }

  async consume(key: string): Promise<boolean> {
    assertValidKey(key);
    this.#check();
    const rel = this.#rec(key);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const cur = await this.#read(rel);
      if (!cur.doc || !live(cur.doc) || cur.doc.c !== undefined) return false;
      if (await this.#write(rel, { ...cur.doc, c: Date.now() }, cur.version)) return true;
    }
    throw contention('consume');
  }

  async listByIndex(tag: string): Promise<string[]> {
    assertValidKey(tag, 'index tag');
    this.#check();
    const folder = `i/${encodeSegment(tag)}/`;
    const keys = (await this.#listFolder(folder))
      .filter((n) => !n.endsWith('/'))
      .map((n) => decodeSegment(n))
      .filter((k): k is string => k !== undefined);
    const now = Date.now();
    const docs = await pool(keys, async (k) => (await this.#read(this.#rec(k))).doc);
    const out: string[] = [];
    const stale: string[] = [];
    keys.forEach((k, n) => {
      const d = docs[n];
      const tagged = !!d && d.t === undefined && (d.idx ?? []).includes(tag);
      if (!tagged) stale.push(k);
      else if (live(d, now)) out.push(k);
    });
    await pool(stale, (k) => this.#destroy(this.#idx(tag, k)));
    return out.sort();
  }

  /** Not one atomic step: each record is removed atomically, but a record tagged meanwhile may survive. */
  async deleteByIndex(tag: string): Promise<number> {
    const keys = await this.listByIndex(tag);
    const removed = await pool(keys, (k) => this.#remove(k));
    return removed.filter((d) => d !== undefined).length;
  }

  async list<T>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]> {
    this.#check();
    const limit = options?.limit ?? 1000;
    if (limit <= 0) return [];
    const keys: string[] = [];
    await this.#walk('r/', '', prefix, keys);
    keys.sort();
    const out: ListedRecord<T>[] = [];
    for (let i = 0; i < keys.length && out.length < limit; i += PARALLEL) {
      const chunk = keys.slice(i, i + PARALLEL);
      const docs = await pool(chunk, async (k) => (await this.#read(this.#rec(k))).doc);
      const now = Date.now();
      chunk.forEach((k, n) => {
        const d = docs[n];
        if (d && out.length < limit && live(d, now)) out.push({ key: k, ...toRecord<T>(d), indexes: [...(d.idx ?? [])].sort() });
      });
    }
    return out;
  }

  /** Collects record keys under folder `rel` (whose decoded key so far is `sofar`) that start with `prefix`. */
  async #walk(rel: string, sofar: string, prefix: string | undefined, out: string[]): Promise<void> {
    const names = await this.#listFolder(rel);
    const folders: [string, string][] = [];
    for (const name of names) {
      const isFolder = name.endsWith('/');
      const part = decodeSegment(isFolder ? name.slice(0, -1) : name);
      if (part === undefined) continue; // not ours
      const full = sofar + part;
      if (isFolder) {
        if (prefix === undefined || full.startsWith(prefix) || prefix.startsWith(full)) folders.push([`${rel}${name}`, full]);
      } else if (prefix === undefined || full.startsWith(prefix)) {
        out.push(full);
      }
    }
    await pool(folders, ([r, f]) => this.#walk(r, f, prefix, out));
  }

  /**
   * Hard-deletes expired records and tombstones, and index entries whose record is gone, expired or no
   * longer carries the tag. Returns how many records were removed.
   */
  async sweep(now = Date.now()): Promise<number> {
    this.#check();
    const keys: string[] = [];
    await this.#walk('r/', '', undefined, keys);
    let removed = 0;
    await pool(keys, async (k) => {
      const rel = this.#rec(k);
      const cur = await this.#read(rel);
      if (!cur.doc || live(cur.doc, now)) return;
      // Tombstone with CAS first: if someone re-wrote the record meanwhile, leave it alone.
      if (cur.doc.t !== undefined || (await this.#write(rel, { ...cur.doc, t: now }, cur.version))) {
        await this.#cleanup(k, cur.doc);
        removed++;
      }
    });
    const tags = (await this.#listFolder('i/')).filter((n) => n.endsWith('/')).map((n) => n.slice(0, -1));
    for (const encTag of tags) {
      const tag = decodeSegment(encTag);
      if (tag !== undefined) await this.listByIndex(tag); // prunes stale entries as a side effect
    }
    return removed;
  }

  /** One LIST of the record folder: fails if the mount is missing or the policy forbids listing. */
  async probe(): Promise<void> {
    this.#check();
    await this.#listFolder('r/');
  }

  async health(): Promise<StoreHealth> {
    if (this.#closed) return { ok: false, backend: this.backend, detail: 'closed' };
    const h = await this.#vault.health(2000);
    return { ok: h.ok, backend: this.backend, ...(h.detail && { detail: h.detail }) };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#vault.close();
  }
}

function isCasMismatch(res: VaultResponse): boolean {
  return res.status === 400 && errorsOf(res).includes(CAS_MISMATCH);
}

function contention(op: string): GatewayError {
  return new GatewayError('GW_ERR_STORE_UNAVAILABLE', `Vault ${op}: gave up after ${CAS_ATTEMPTS} check-and-set conflicts`);
}

function toRecord<T>(d: Doc): StoredRecord<T> {
  const r: StoredRecord<T> = { value: d.v as T };
  if (d.exp !== undefined) r.expiresAt = d.exp;
  if (d.c !== undefined) r.consumedAt = d.c;
  return r;
}

/** Runs `fn` over `items` with at most PARALLEL in flight; results in input order. */
async function pool<I, O>(items: readonly I[], fn: (item: I) => Promise<O>): Promise<O[]> {
  const out = new Array<O>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as I);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return out;
}

/** `storage.vault` → a VaultStore, or a split store when `short_lived` names a second back-end. */
export async function createVaultStore(config: StorageConfig, options: StoreFactoryOptions): Promise<Store> {
  const cfg: VaultConfig | undefined = config.vault;
  if (!cfg) throw new TypeError('storage.type is vault but the storage.vault section is missing');
  const client = await VaultClient.create(cfg, options.onWarning);
  const vault = new VaultStore(client, {
    mountPoint: cfg.mount_point,
    pathPrefix: cfg.path_prefix,
    sweepIntervalSeconds: cfg.sweep_interval,
    onWarning: options.onWarning,
  });
  try {
    await vault.probe();
  } catch (err) {
    await vault.close();
    throw new Error(`cannot use Vault at ${client.baseUrl}: ${(err as Error).message}`, { cause: err });
  }
  if (cfg.short_lived === 'none') return vault;
  try {
    const { createStore } = await import('../index.js');
    const other = await createStore({ ...config, type: cfg.short_lived }, options);
    const { SplitStore } = await import('./split-store.js');
    return new SplitStore(vault, other, cfg.short_lived_prefixes);
  } catch (err) {
    await vault.close();
    throw err;
  }
}
