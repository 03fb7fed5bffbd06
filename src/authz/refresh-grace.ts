/**
 * Refresh-token reuse grace (`tokens.refresh_reuse_grace`, seconds; 0 = off).
 *
 * RFC 9700 §4.14.2 rotation makes a second use of a refresh token a replay that revokes the grant. Two
 * sessions of one client that share a credential (two windows, two terminals) refresh at the same
 * moment, and one of them then kills the grant for both. Within the grace, the second request gets the
 * SAME new token pair as the first (as Auth0's "reuse interval" and Okta's grace period do); after it,
 * reuse is as strict as without the grace.
 *
 * Design (every step goes through the Store contract, so it holds across instances and back-ends):
 * 1. oidc-provider's refresh_token grant calls `rotateRefreshToken` after client authentication and the
 *    token checks, just before it consumes the old token. There the first request claims the token with
 *    the atomic `setIfAbsent(gw:rt-grace:<hash>)` ("pending", TTL = the grace). Exactly one request
 *    wins; it rotates as usual.
 * 2. After the winner's response is built (a provider middleware), the new pair is stored under that
 *    key, encrypted (AES-256-GCM, a key derived with HKDF from `session_secret` AND the old refresh token,
 *    so neither a storage dump nor the secret alone opens it), for the rest of the grace only. A failed
 *    winner deletes the claim.
 * 3. A request that loses the claim (concurrent, or later within the grace) waits for the stored pair,
 *    answers with it (`expires_in` reduced by the time elapsed) and stops the grant by throwing, so
 *    nothing is consumed, issued or revoked. Different parameters (scope, resource) than the winner's
 *    are not the same request repeated: that is reuse, and revokes the grant.
 * 4. oidc-provider revokes on its own when `find` reports the token consumed (before the hook runs), so
 *    the adapter hides `consumed` while the claim lives (`covers`), for the refresh grant only; once the
 *    claim expires the token is reported consumed again and reuse revokes the grant exactly as before.
 * The new refresh token is never stored in plaintext (secrets at rest are hashes: docs/security.md, What is stored at rest), and the
 * claim is keyed by the old token's hash.
 */
import { createCipheriv, createDecipheriv, createHmac, hash, hkdfSync, randomBytes } from 'node:crypto';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import als from 'oidc-provider/lib/helpers/als.js';
import type { Store } from '../storage/store.js';
import { hashedId } from './adapter.js';

const PREFIX = 'gw:rt-grace:';
/** How long a losing request waits for the winner's response (the winner normally needs milliseconds). */
const WAIT_MS = 5000;
const POLL_MS = 20;

interface Claim {
  /** Epoch ms of the winner's claim. */
  started: number;
  /** SHA-256 over the parameters that shape the response (client, scope, resource). */
  fp: string;
  /** Set once the winner answered: the encrypted response and when it was issued. */
  sealed?: { iv: string; tag: string; data: string; issuedAt: number };
}

type Role = { kind: 'winner'; key: string; token: string; claim: Claim } | { kind: 'replay'; body: Record<string, unknown> };

/** Per request (koa context): what this request is in the grace protocol. */
const roles = new WeakMap<object, Role>();

/** The `error_detail` of the grant stop below: the provider's `grant.error` event audits it (src/authz/events.ts). */
export const ANSWERED_FROM_GRACE = 'refresh token reuse within tokens.refresh_reuse_grace';

/** Thrown to stop the grant for a request answered from the grace; never reaches the client. */
class AnsweredFromGrace extends errors.InvalidGrant {
  constructor() {
    super(ANSWERED_FROM_GRACE);
  }
}

export class RefreshGrace {
  readonly #baseKey: Buffer;

  constructor(
    private readonly store: Store,
    private readonly seconds: number,
    sessionSecret: string,
    /** Revokes a grant as a replay does (the adapter's revokeByGrantId). */
    private readonly revokeGrant: (grantId: string) => Promise<void>,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {
    this.#baseKey = Buffer.from(hkdfSync('sha256', sessionSecret, 'mcp-oauth-gateway', 'refresh reuse grace', 32));
  }

  get enabled(): boolean {
    return this.seconds > 0;
  }

  static key(refreshToken: string): string {
    return PREFIX + hashedId(refreshToken);
  }

  /**
   * The adapter asks this for a consumed refresh token: is its reuse still inside the grace? Only for a
   * refresh grant presenting that very token; introspection and revocation keep seeing it consumed.
   */
  async covers(refreshToken: string): Promise<boolean> {
    if (!this.enabled) return false;
    const koa = als.getStore() as KoaContextWithOIDC | undefined;
    const params = koa?.oidc?.params;
    if (koa?.oidc?.route !== 'token' || params?.grant_type !== 'refresh_token' || params.refresh_token !== refreshToken) return false;
    return (await this.store.get(RefreshGrace.key(refreshToken))) !== undefined;
  }

  /** Step 1 / 3, from `rotateRefreshToken`: claim the token, or answer from the winner's response. */
  async beforeRotation(koa: KoaContextWithOIDC): Promise<void> {
    if (!this.enabled) return;
    const token = String(koa.oidc.params?.refresh_token);
    const key = RefreshGrace.key(token);
    const claim: Claim = { started: Date.now(), fp: fingerprint(koa) };
    if (await this.store.setIfAbsent(key, claim, { ttlSeconds: this.seconds })) {
      roles.set(koa, { kind: 'winner', key, token, claim });
      return;
    }
    const won = await this.#awaitSealed(key);
    if (!won) throw new errors.InvalidGrant('refresh token already used');
    if (won.fp !== claim.fp) {
      const grantId = (koa.oidc.entities.RefreshToken as { grantId?: string } | undefined)?.grantId;
      if (grantId) await this.revokeGrant(grantId);
      throw new errors.InvalidGrant('refresh token already used');
    }
    const body = this.#open(token, key, won.sealed!);
    if (!body) throw new errors.InvalidGrant('refresh token already used');
    if (typeof body.expires_in === 'number')
      body.expires_in = Math.max(0, body.expires_in - Math.floor((Date.now() - won.sealed!.issuedAt) / 1000));
    roles.set(koa, { kind: 'replay', body });
    throw new AnsweredFromGrace();
  }

  /** Step 2 / 3, a provider middleware around the token endpoint. */
  middleware() {
    return async (koa: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
      await next();
      const role = roles.get(koa);
      if (!role) return;
      if (role.kind === 'replay') {
        koa.status = 200;
        koa.body = role.body;
        return;
      }
      const body = koa.body as Record<string, unknown> | undefined;
      const left = this.seconds * 1000 - (Date.now() - role.claim.started);
      // The winner's own response is already decided: a storage failure here must not turn it into a 500
      // (its tokens are issued); the losers then get invalid_grant after their wait, without revocation.
      try {
        if (koa.status !== 200 || !body || typeof body.refresh_token !== 'string' || left <= 0) {
          await this.store.delete(role.key);
          return;
        }
        const sealed = this.#seal(role.token, role.key, body);
        await this.store.set(role.key, { ...role.claim, sealed } satisfies Claim, { ttlSeconds: left / 1000 });
      } catch (err) {
        this.log.warn({ err }, 'refresh reuse grace: the rotated response could not be kept');
      }
    };
  }

  async #awaitSealed(key: string): Promise<Claim | undefined> {
    const deadline = Date.now() + Math.min(WAIT_MS, this.seconds * 1000);
    for (;;) {
      const rec = await this.store.get<Claim>(key);
      if (!rec) return undefined;
      if (rec.value.sealed) return rec.value;
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  #keyFor(token: string): Buffer {
    return hkdfSha256(token, this.#baseKey, RESPONSE_INFO);
  }

  #seal(token: string, key: string, body: Record<string, unknown>): NonNullable<Claim['sealed']> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#keyFor(token), iv);
    cipher.setAAD(Buffer.from(key));
    const data = Buffer.concat([cipher.update(JSON.stringify(body), 'utf8'), cipher.final()]);
    return {
      iv: iv.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
      data: data.toString('base64url'),
      issuedAt: Date.now(),
    };
  }

  #open(token: string, key: string, sealed: NonNullable<Claim['sealed']>): Record<string, unknown> | undefined {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#keyFor(token), Buffer.from(sealed.iv, 'base64url'));
      decipher.setAAD(Buffer.from(key));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
      const plain = Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64url')), decipher.final()]);
      return JSON.parse(plain.toString('utf8')) as Record<string, unknown>;
    } catch {
      // Another instance with another session_secret: not the same deployment's answer.
      return undefined;
    }
  }
}

function fingerprint(koa: KoaContextWithOIDC): string {
  const p = koa.oidc.params ?? {};
  return hash('sha256', JSON.stringify([koa.oidc.client?.clientId, p.scope ?? null, p.resource ?? null]), 'base64url');
}

const RESPONSE_INFO = Buffer.from('refresh reuse grace: response');
const ONE = Buffer.from([1]);

/**
 * RFC 5869 HKDF-SHA256 for one 32-byte block (extract, then expand's T(1)): the same bytes as
 * `hkdfSync('sha256', ikm, salt, info, 32)`, with two HMACs instead of the KeyObject and job machinery
 * `hkdfSync` builds on every call (once per refresh here).
 */
export function hkdfSha256(ikm: string, salt: Buffer, info: Buffer): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  return createHmac('sha256', prk).update(info).update(ONE).digest();
}
