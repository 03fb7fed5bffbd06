/**
 * The identity a backend receives: plain headers built from the VERIFIED token only, and optionally a
 * signed identity assertion (a short JWT the backend can verify with the gateway's JWKS).
 */
import type { VerifiedUser } from '../kernel/claims.js';
import type { GatewayContext } from '../context.js';
import { encodeHeaderList, encodeHeaderValue } from './headers.js';
import { setBounded } from './bounded-map.js';

export interface IdentityHeaderNames {
  id: string;
  email: string;
  emailVerified: string;
  name: string;
  provider: string;
  avatar: string;
  groups: string;
  kind: string;
}

export const DEFAULT_IDENTITY_HEADERS: IdentityHeaderNames = {
  id: 'x-user-id',
  email: 'x-user-email',
  emailVerified: 'x-user-email-verified',
  name: 'x-user-name',
  provider: 'x-user-provider',
  avatar: 'x-user-avatar',
  groups: 'x-user-groups',
  kind: 'x-user-kind',
};

/** JWT `typ` of identity assertions: distinct from `at+jwt`, so an assertion is never accepted as an access token. */
export const IDENTITY_ASSERTION_TYP = 'identity+jwt';

/** Encoded identity headers for a user (computed once per verified token). Empty values are omitted. */
export function identityHeadersFor(user: VerifiedUser, names: IdentityHeaderNames): Array<readonly [string, string]> {
  const out: Array<readonly [string, string]> = [];
  const add = (name: string, value: string | undefined) => {
    if (value === undefined) return;
    const v = encodeHeaderValue(value);
    if (v !== undefined) out.push([name, v]);
  };
  add(names.id, user.id);
  add(names.email, user.email);
  if (user.email !== undefined) add(names.emailVerified, user.emailVerified === true ? 'true' : 'false');
  add(names.name, user.name);
  add(names.provider, user.provider);
  add(names.avatar, user.picture);
  const groups = encodeHeaderList(user.groups);
  if (groups !== undefined) out.push([names.groups, groups]);
  // A machine client (client_credentials) says so; a person's requests carry no kind header.
  if (user.machine) out.push([names.kind, 'machine']);
  return out;
}

interface CachedAssertion {
  jwt: string;
  /** Epoch ms after which a fresh assertion is signed (before the old one expires). */
  refreshAt: number;
}

/**
 * Signed assertions cached per (service, user, claims) until shortly before expiry, so that signing
 * (an ECDSA operation) happens about once per `ttl` per user and not per request.
 */
export class AssertionCache {
  readonly #cache = new Map<string, CachedAssertion>();
  readonly #pending = new Map<string, Promise<string>>();

  constructor(
    private readonly ctx: GatewayContext,
    private readonly max = 10_000,
  ) {}

  get(
    key: string,
    subject: string,
    claims: Record<string, unknown>,
    audience: string,
    ttlSeconds: number,
    now = Date.now(),
  ): string | Promise<string> {
    const hit = this.#cache.get(key);
    if (hit !== undefined && hit.refreshAt > now) return hit.jwt;
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const p = this.ctx.keys
      .sign(claims, { typ: IDENTITY_ASSERTION_TYP, audience, issuer: this.ctx.issuer, ttlSeconds, subject })
      .then((jwt) => {
        // Re-sign once three quarters of the lifetime have passed.
        setBounded(this.#cache, key, { jwt, refreshAt: Date.now() + ttlSeconds * 750 }, this.max);
        return jwt;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }
}
