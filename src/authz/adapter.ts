/**
 * oidc-provider's storage adapter on top of the gateway Store, so every back-end (memory, sqlite, redis,
 * vault) carries clients, grants, codes, refresh tokens, sessions and interactions.
 *
 * Keys: `oidc:<Model>:<id>`. Index tags: `grant:<grantId>` for every record carrying a grantId (so
 * `revokeByGrantId` is one `deleteByIndex`), `uid:<uid>` for Session (`findByUid`), `usercode:<code>`
 * (`findByUserCode`). `consume` is the Store's atomic consume; `find` reports it as `consumed`.
 */
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Store } from '../storage/store.js';

export interface AdapterHooks {
  /** Called once per grant revocation (code replay, refresh-token reuse, RFC 7009, operator). */
  onGrantRevoked(grantId: string): Promise<void>;
  /** Lifetime of dynamically registered clients in seconds (0: forever). */
  clientTtlSeconds: number;
  /** Whether a grant is already revoked (the RevocationList): records of such a grant are never written. */
  isGrantRevoked?(grantId: string): boolean;
}

const key = (model: string, id: string) => `oidc:${model}:${id}`;

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
    await this.store.set(key(this.model, id), payload, { ttlSeconds, indexes });
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const rec = await this.store.get<AdapterPayload>(key(this.model, id));
    if (!rec) return undefined;
    if (rec.consumedAt !== undefined) return { ...rec.value, consumed: Math.floor(rec.consumedAt / 1000) };
    return rec.value;
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
    return first ? this.find(first.slice(prefix.length)) : undefined;
  }

  /**
   * Atomic: of concurrent redemptions exactly one wins. The loser is a replay, so (as oidc-provider does
   * for a sequential replay) the whole grant is revoked, and the request fails with `invalid_grant`.
   */
  async consume(id: string): Promise<void> {
    const k = key(this.model, id);
    if (await this.store.consume(k)) return;
    if (SINGLE_USE.has(this.model)) {
      const rec = await this.store.get<AdapterPayload>(k);
      const grantId = rec?.value.grantId;
      if (typeof grantId === 'string') await this.revokeByGrantId(grantId);
    }
    throw new errors.InvalidGrant(`${this.model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }

  async destroy(id: string): Promise<void> {
    await this.store.delete(key(this.model, id));
  }

  /** Marks the grant revoked first (so no racing write re-creates a record), then deletes its records. */
  async revokeByGrantId(grantId: string): Promise<void> {
    await this.hooks.onGrantRevoked(grantId);
    await this.store.deleteByIndex(`grant:${grantId}`);
  }
}
