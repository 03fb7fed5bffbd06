/**
 * oidc-provider's storage adapter on top of the gateway Store, so every back-end (memory, sqlite, redis,
 * vault) carries clients, grants, codes, refresh tokens, sessions and interactions.
 *
 * Keys: `oidc:<Model>:<id>`. Index tags: `grant:<grantId>` for every record carrying a grantId (so
 * `revokeByGrantId` is one `deleteByIndex`), `uid:<uid>` for Session (`findByUid`), `usercode:<code>`
 * (`findByUserCode`). `consume` is the Store's atomic consume; `find` reports it as `consumed`.
 */
import { hash } from 'node:crypto';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { MAX_KEY_LENGTH, type Store, type StoredRecord } from '../storage/store.js';
import { revokeGrant } from '../kernel/revocation.js';
import { HANDLE_PREFIX } from './structured-tokens.js';

export interface AdapterHooks {
  /** Called once per grant revocation (code replay, refresh-token reuse, RFC 7009, operator). */
  onGrantRevoked(grantId: string): Promise<void>;
  /** Lifetime of dynamically registered clients in seconds (0: forever). */
  clientTtlSeconds: number;
  /** Whether a grant is already revoked (the RevocationList): records of such a grant are never written. */
  isGrantRevoked?(grantId: string): boolean;
  /** The record of a wrapped JWT access token at revocation/introspection (structured-tokens.ts). */
  structuredAccessToken?(handle: string): Promise<AdapterPayload | undefined>;
  /**
   * Whether a consumed refresh token is still inside `tokens.refresh_reuse_grace` (src/authz/refresh-grace.ts):
   * then `find` does not report it consumed, so oidc-provider reaches the grace hook instead of revoking.
   */
  refreshReuseCovered?(refreshToken: string): Promise<boolean>;
}

const key = (model: string, id: string) => `oidc:${model}:${id}`;

/**
 * Models whose id IS the bearer secret a client holds (the authorization code or opaque token value).
 * Secrets at rest are hashes (docs/security.md, What is stored at rest). Their records are keyed by SHA-256(id) and stored without the
 * payload's `jti` copy (restored from the presented value on `find`), so a storage dump holds no usable
 * code or refresh token. The ids are >= 256-bit random values, so an unsalted hash cannot be reversed.
 * Not hashed: Session and Interaction ids (only usable inside cookies signed with keys derived from
 * `session_secret`), Grant and Client ids (identifiers, not credentials).
 */
const HASHED_ID_MODELS = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'AccessToken',
  'ClientCredentials',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'RegistrationAccessToken',
  'InitialAccessToken',
]);

// eslint-disable-next-line no-control-regex
const usableKey = (k: string) => k.length <= MAX_KEY_LENGTH && !/[\u0000-\u001f\u007f]/.test(k);

export function hashedId(id: string): string {
  return `sha256.${hash('sha256', id, 'base64url')}`;
}

/** Models whose second `consume` means replay: RFC 9700 §4.14 (refresh) and RFC 6749 §4.1.2 (code). */
const SINGLE_USE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

export function createAdapterFactory(store: Store, hooks: AdapterHooks): (model: string) => Adapter {
  return (model) => new StoreAdapter(model, store, hooks);
}

export class StoreAdapter implements Adapter {
  constructor(
    private readonly model: string,
    private readonly store: Store,
    private readonly hooks: AdapterHooks,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    // A request that raced a revocation (e.g. the winner of concurrent code redemptions, whose grant the
    // losers revoked) must not re-create tokens of the revoked grant after its records were deleted.
    const grantId = this.model === 'Grant' ? id : payload.grantId;
    if (typeof grantId === 'string' && this.hooks.isGrantRevoked?.(grantId)) return;
    const indexes: string[] = [];
    if (typeof payload.grantId === 'string') indexes.push(`grant:${payload.grantId}`);
    if (this.model === 'Grant') indexes.push(`grant:${id}`);
    if (this.model === 'Session' && typeof payload.uid === 'string') indexes.push(`uid:${payload.uid}`);
    if (typeof payload.userCode === 'string') indexes.push(`usercode:${payload.userCode}`);
    let ttlSeconds = expiresIn && expiresIn > 0 ? expiresIn : undefined;
    if (this.model === 'Client' && ttlSeconds === undefined && this.hooks.clientTtlSeconds > 0) ttlSeconds = this.hooks.clientTtlSeconds;
    let stored = payload;
    if (this.#hashed) {
      const { jti: _jti, ...rest } = payload;
      stored = rest;
    }
    if (this.model === 'ReplayDetection') {
      // RFC 7523 §3 item 7: a client assertion's jti is used once. oidc-provider checks with find-then-save;
      // the atomic insert makes the second of two concurrent uses fail too.
      if (!(await this.store.setIfAbsent(this.#key(id), stored, { ttlSeconds, indexes })))
        throw new errors.InvalidClientAuth('client assertion tokens must only be used once');
      return;
    }
    await this.store.set(this.#key(id), stored, { ttlSeconds, indexes });
  }

  get #hashed(): boolean {
    return HASHED_ID_MODELS.has(this.model);
  }

  /**
   * The storage key of a record: the hashed id for secret-valued models, and for any id that cannot be
   * a storage key as it is (control characters, over-long: a `client_id` from the request, a long CIMD
   * URL), so that lookups of such ids find nothing instead of failing with a 500.
   */
  #key(id: string): string {
    const plain = key(this.model, id);
    return this.#hashed || !usableKey(plain) ? key(this.model, hashedId(id)) : plain;
  }

  /**
   * The record of `id` and the key it is stored under. Refresh tokens written before ids were hashed
   * (0.1.0 pre-releases) stay usable: their record is looked up under the plain id when no hashed one
   * exists. Codes and the other models are short-lived. One read in the common case.
   */
  async #lookup(id: string): Promise<{ key: string; rec: StoredRecord<AdapterPayload> | undefined }> {
    const k = this.#key(id);
    const rec = await this.store.get<AdapterPayload>(k);
    const legacy = this.#legacyKey(id, k);
    if (rec || legacy === undefined) return { key: k, rec };
    const old = await this.store.get<AdapterPayload>(legacy);
    return old ? { key: legacy, rec: old } : { key: k, rec: undefined };
  }

  /** The plain-id key a pre-hashing refresh token may live under (undefined for every other model). */
  #legacyKey(id: string, hashedKey: string): string | undefined {
    if (this.model !== 'RefreshToken') return undefined;
    const legacy = key(this.model, id);
    return usableKey(legacy) && legacy !== hashedKey ? legacy : undefined;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (this.model === 'AccessToken' && this.hooks.structuredAccessToken && id.startsWith(HANDLE_PREFIX))
      return this.hooks.structuredAccessToken(id);
    const { rec } = await this.#lookup(id);
    if (!rec) return undefined;
    const value = this.#hashed ? { ...rec.value, jti: id } : rec.value;
    if (rec.consumedAt !== undefined) {
      if (this.model === 'RefreshToken' && (await this.hooks.refreshReuseCovered?.(id))) return value;
      return { ...value, consumed: Math.floor(rec.consumedAt / 1000) };
    }
    return value;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#findByTag(`uid:${uid}`);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findByTag(`usercode:${userCode}`);
  }

  async #findByTag(tag: string): Promise<AdapterPayload | undefined> {
    const prefix = key(this.model, '');
    const keys = (await this.store.listByIndex(tag)).filter((k) => k.startsWith(prefix));
    const first = keys[0];
    // A hashed record cannot give back its id (used only by Session, whose ids are not hashed).
    if (!first || this.#hashed) return undefined;
    return this.find(first.slice(prefix.length));
  }

  /**
   * Atomic: of concurrent redemptions exactly one wins. The loser is a replay, so (as oidc-provider does
   * for a sequential replay) the whole grant is revoked, and the request fails with `invalid_grant`.
   */
  async consume(id: string): Promise<void> {
    const k = this.#key(id);
    if (await this.store.consume(k)) return;
    // Not consumable under its key: consumed already, absent, or a legacy (plain-id) refresh token.
    const { key: at, rec } = await this.#lookup(id);
    if (at !== k && (await this.store.consume(at))) return;
    if (SINGLE_USE.has(this.model)) {
      const grantId = rec?.value.grantId;
      if (typeof grantId === 'string') await this.revokeByGrantId(grantId);
    }
    throw new errors.InvalidGrant(`${this.model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }

  async destroy(id: string): Promise<void> {
    const k = this.#key(id);
    if (await this.store.delete(k)) return;
    const legacy = this.#legacyKey(id, k);
    if (legacy !== undefined) await this.store.delete(legacy);
  }

  /** Marks the grant revoked first (so no racing write re-creates a record), then deletes its records. */
  async revokeByGrantId(grantId: string): Promise<void> {
    await revokeGrant(this.store, grantId, (gid) => this.hooks.onGrantRevoked(gid));
  }
}
