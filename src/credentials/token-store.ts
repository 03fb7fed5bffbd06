/**
 * The upstream tokens the gateway holds for users, through the `Store` contract (so on memory, SQLite,
 * Redis and Vault alike, shared by every instance):
 *
 *   gw:upstream:idp:<provider>:<user>   the tokens of the user's sign-in at `provider` (passthrough, and the
 *                                       subject token of token_exchange)
 *   gw:upstream:svc:<service>:<user>    a token made for one service (token_exchange), cached until it expires
 *   gw:upstream:oauth:<service>:<user>  the tokens from a backend's own authorization server (mode: oauth)
 *
 * The value holds metadata in clear (who, which provider or service, when, until when, which key) and
 * the tokens themselves only as an AES-256-GCM ciphertext (cipher.ts) bound to the record's key. Every
 * record carries the index tag `upstream-user:<user>` (src/kernel/revocation.ts), by which revoking a
 * grant, the user, or a client's grants deletes them.
 */
import { upstreamTokensIndex } from '../kernel/revocation.js';
import type { Store } from '../storage/store.js';
import { TokenCipher } from './cipher.js';

export const UPSTREAM_PREFIX = 'gw:upstream:';

/** The tokens as the provider issued them (`expires_at` in epoch milliseconds). */
export interface UpstreamTokenSet {
  access_token: string;
  refresh_token?: string | undefined;
  id_token?: string | undefined;
  token_type?: string | undefined;
  scope?: string | undefined;
  expires_at?: number | undefined;
}

export type ConnectionKind = 'sign_in' | 'exchange' | 'oauth';

/** What a record shows without decrypting: never a token. */
export interface ConnectionInfo {
  kind: ConnectionKind;
  user: string;
  /** sign_in: the provider; exchange and oauth: the service. */
  name: string;
  created_at: number;
  updated_at: number;
  expires_at?: number | undefined;
  has_refresh_token: boolean;
  key_id: string | undefined;
}

interface StoredConnection extends Omit<ConnectionInfo, 'key_id'> {
  sealed: string;
}

export function connectionKey(kind: ConnectionKind, name: string, user: string): string {
  return `${UPSTREAM_PREFIX}${kind === 'sign_in' ? 'idp' : kind === 'exchange' ? 'svc' : 'oauth'}:${name}:${user}`;
}

/** How long this instance reuses a record it read (and decrypted): a deletion elsewhere is seen after at most this. */
const LOCAL_CACHE_MS = 2000;
const LOCAL_CACHE_MAX = 10_000;

export class UpstreamTokenStore {
  /** Decrypted records read recently, by storage key: the proxy reads one per request. */
  readonly #recent = new Map<string, { tokens: UpstreamTokenSet; until: number }>();

  constructor(
    private readonly store: Store,
    private readonly cipher: TokenCipher,
    /** Lifetime of sign-in records in storage (seconds): as long as the user's account is kept. */
    private readonly signInTtl: number,
  ) {}

  /** `fromStorage`: skip this instance's recent reads (another instance may have just written). */
  async get(kind: ConnectionKind, name: string, user: string, fromStorage = false): Promise<UpstreamTokenSet | undefined> {
    const key = connectionKey(kind, name, user);
    const now = Date.now();
    const recent = fromStorage ? undefined : this.#recent.get(key);
    if (recent !== undefined && recent.until > now) return recent.tokens;
    const rec = await this.store.get<StoredConnection>(key);
    if (!rec) {
      this.#recent.delete(key);
      return undefined;
    }
    let tokens: UpstreamTokenSet;
    try {
      tokens = JSON.parse(this.cipher.open(rec.value.sealed, key)) as UpstreamTokenSet;
    } catch {
      // Unknown key (removed from upstream_tokens) or a tampered record: unusable, so it is as if absent.
      return undefined;
    }
    this.#remember(key, tokens, now);
    return tokens;
  }

  #remember(key: string, tokens: UpstreamTokenSet, now: number): void {
    if (this.#recent.size >= LOCAL_CACHE_MAX) this.#recent.clear();
    this.#recent.set(key, { tokens, until: Math.min(now + LOCAL_CACHE_MS, tokens.expires_at ?? Infinity) });
  }

  forget(kind: ConnectionKind, name: string, user: string): void {
    this.#recent.delete(connectionKey(kind, name, user));
  }

  /** Forgets every recent read (a grant was revoked somewhere: its user's records are being deleted). */
  forgetAll(): void {
    this.#recent.clear();
  }

  async put(kind: ConnectionKind, name: string, user: string, tokens: UpstreamTokenSet): Promise<void> {
    const key = connectionKey(kind, name, user);
    const now = Date.now();
    const previous = await this.store.get<StoredConnection>(key);
    const value: StoredConnection = {
      kind,
      user,
      name,
      created_at: previous?.value.created_at ?? now,
      updated_at: now,
      expires_at: tokens.expires_at,
      has_refresh_token: Boolean(tokens.refresh_token),
      sealed: this.cipher.seal(JSON.stringify(tokens), key),
    };
    // An exchanged token is only worth keeping while it is valid; a sign-in record as long as the account.
    const ttlSeconds = kind === 'exchange' && tokens.expires_at ? Math.max(1, Math.ceil((tokens.expires_at - now) / 1000)) : this.signInTtl;
    await this.store.set(key, value, { ttlSeconds, indexes: [upstreamTokensIndex(user)] });
    this.#remember(key, tokens, now);
  }

  delete(kind: ConnectionKind, name: string, user: string): Promise<boolean> {
    this.forget(kind, name, user);
    return this.store.delete(connectionKey(kind, name, user));
  }

  /** Every record of the user (all providers and services); returns how many were deleted. */
  deleteUser(user: string): Promise<number> {
    for (const key of this.#recent.keys()) if (key.endsWith(`:${user}`)) this.#recent.delete(key);
    return this.store.deleteByIndex(upstreamTokensIndex(user));
  }
}

/** The connections of one user (or all), as `connections list` shows them. */
export async function listConnections(store: Store, user?: string): Promise<ConnectionInfo[]> {
  const rows = await store.list<StoredConnection>(UPSTREAM_PREFIX, { limit: 100_000 });
  return rows
    .filter((r) => typeof r.value?.sealed === 'string' && (user === undefined || r.value.user === user))
    .map(({ value: { sealed, ...info } }) => ({ ...info, key_id: TokenCipher.keyIdOf(sealed) }));
}
