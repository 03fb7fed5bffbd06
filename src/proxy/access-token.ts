/**
 * Bearer authentication of proxied requests: `parseBearer` → `verifyAccessToken` → `checkAccess`.
 *
 * Tokens are the gateway's own RFC 9068 JWTs (src/kernel/claims.ts), verified in-process against the
 * gateway's public keys (`ctx.keys.verifyKeySet`): no HTTP, no key import per request. A verified token is
 * kept in a bounded cache together with everything derived from it for its service (user, scope decision,
 * policy decision, encoded identity headers), so that repeated requests with the same token cost a Map
 * lookup plus the revocation and expiry checks, which run on every request.
 *
 * The cache is found by the raw Authorization header, without parsing it again: the entry holds the exact
 * header it was verified from and a hit requires the whole header to be equal; the Map key is only the
 * header's last characters (inside the token's signature), because hashing a fresh ~800-character header
 * string and matching the Bearer syntax on it cost more than everything else the proxy does for a request
 * (docs/performance.md). Only a successful verification writes an entry, so a header that shares the key
 * but not the signature (a forged token) is a miss that fails verification and changes nothing.
 */
import { createHash } from 'node:crypto';
import { jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { ACCESS_TOKEN_TYP, machineSubject, parseAccessTokenClaims, type VerifiedUser } from '../kernel/claims.js';
import { checkServiceAccess } from '../kernel/policy.js';
import type { GatewayContext } from '../context.js';
import type { ServiceState } from './service-state.js';
import { identityHeadersFor } from './identity.js';
import { setBounded } from './bounded-map.js';

/** Tokens longer than this are refused without parsing (Node's header limit is 16 KiB anyway). */
const MAX_TOKEN_LENGTH = 8192;
/**
 * RFC 6750 §2.1: `Bearer 1*SP b64token`, matched after the six-character scheme, which `parseBearer`
 * compares case-insensitively itself (RFC 9110 §11.1): a case-insensitive regex costs several times more
 * on a long token.
 */
const AFTER_SCHEME = /^ +([A-Za-z0-9\-._~+/]+=*) *$/;
/** Characters of the header's end that key the cache (a JWT ends with its signature: ES256, 86 characters). */
const KEY_CHARS = 32;
const CLOCK_TOLERANCE_S = 5;

/**
 * Result of reading the Authorization header: `absent` when there is none or it uses another scheme
 * (RFC 6750 §3.1: then the challenge carries no error code), `malformed` for a broken Bearer credential.
 */
export type BearerParse = { kind: 'absent' } | { kind: 'malformed' } | { kind: 'token'; token: string };

const ABSENT: BearerParse = { kind: 'absent' };
const MALFORMED: BearerParse = { kind: 'malformed' };

export function parseBearer(header: string | undefined): BearerParse {
  if (header === undefined || header.length === 0) return ABSENT;
  if (header.length < 6 || header.slice(0, 6).toLowerCase() !== 'bearer') return ABSENT;
  if (header.length > MAX_TOKEN_LENGTH + 16) return MALFORMED;
  const m = AFTER_SCHEME.exec(header.slice(6));
  return m?.[1] ? { kind: 'token', token: m[1] } : MALFORMED;
}

/** Everything the proxy needs from one verified token, for the one service it is bound to. */
export interface TokenEntry {
  /** The Authorization header the token was verified from (a cache hit requires exactly this header). */
  header: string;
  serviceId: string;
  /** Expiry in epoch ms (tolerance included). */
  expiresAt: number;
  user: VerifiedUser;
  /** Missing required scopes (empty: the token carries all). */
  missingScopes: readonly string[];
  /** Why the access policy refuses the user, or undefined when allowed. */
  policyDenial: string | undefined;
  /** Identity headers, already encoded. */
  identity: ReadonlyArray<readonly [string, string]>;
  /** Claims of the signed identity assertion (cache key material), when the service enables it. */
  assertionClaims?: { key: string; claims: Record<string, unknown> };
  /** `{ ok: true, entry: this }`, made once: a cache hit allocates nothing. */
  verified: VerifyResult;
}

const AUDIENCE: VerifyResult = { ok: false, reason: 'audience' };

export type VerifyResult = { ok: true; entry: TokenEntry } | { ok: false; reason: string };

export function verifyOptions(ctx: GatewayContext, state: ServiceState): JWTVerifyOptions {
  return {
    issuer: ctx.issuer,
    audience: state.service.canonicalUri,
    typ: ACCESS_TOKEN_TYP,
    algorithms: ['ES256'],
    clockTolerance: CLOCK_TOLERANCE_S,
    requiredClaims: ['exp', 'sub'],
  };
}

export class AccessTokenVerifier {
  readonly #cache = new Map<string, TokenEntry>();
  readonly #max: number;

  constructor(
    private readonly ctx: GatewayContext,
    maxEntries = 10_000,
  ) {
    this.#max = maxEntries;
  }

  /**
   * The entry of a token already verified from exactly this Authorization header, checked for this service
   * and for expiry; undefined when there is none (then `parseBearer` and `verify`). Synchronous: a repeat
   * request costs no parsing, no signature check and no promise.
   */
  lookup(header: string, state: ServiceState, now = Date.now()): VerifyResult | undefined {
    const key = header.slice(-KEY_CHARS);
    const cached = this.#cache.get(key);
    if (cached === undefined || cached.header !== header) return undefined;
    if (cached.expiresAt <= now) {
      this.#cache.delete(key);
      return { ok: false, reason: 'expired' };
    }
    // A token is bound to exactly one service (RFC 8707); a cached token for another one is foreign here.
    if (cached.serviceId !== state.id) return AUDIENCE;
    return cached.verified;
  }

  /** Verifies a token (`header` is the Authorization header it came in) for a service. Never throws. */
  async verify(token: string, header: string, state: ServiceState): Promise<VerifyResult> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.ctx.keys.verifyKeySet, state.verifyOptions));
    } catch (err) {
      return { ok: false, reason: joseReason(err) };
    }
    const entry = this.#entryFrom(payload, header, state);
    if (typeof entry === 'string') return { ok: false, reason: entry };
    setBounded(this.#cache, header.slice(-KEY_CHARS), entry, this.#max);
    return entry.verified;
  }

  /** Drops a cached token by the header it came in (after it turned out to be revoked). */
  forget(header: string): void {
    const key = header.slice(-KEY_CHARS);
    if (this.#cache.get(key)?.header === header) this.#cache.delete(key);
  }

  /** Claims → TokenEntry, or the reason the claims are unacceptable (the kernel's contract: src/kernel/claims.ts). */
  #entryFrom(p: JWTPayload, header: string, state: ServiceState): TokenEntry | string {
    const c = parseAccessTokenClaims(p);
    if (typeof c === 'string') return c;
    const scopes = c.scope === undefined ? [] : c.scope.split(' ').filter(Boolean);
    const groups = c.groups ?? [];
    const clientId = c.client_id;
    // client_credentials tokens: subject `client:{client_id}` (no provider may be named `client`).
    const machine = c.sub === machineSubject(clientId);
    const user: VerifiedUser = {
      id: c.sub,
      email: c.email,
      emailVerified: c.email_verified === true,
      name: c.name,
      picture: c.picture,
      groups,
      provider: machine ? undefined : (c.idp ?? providerOf(c.sub)),
      clientId,
      scopes,
      grantId: c.gid,
      ...(machine ? { machine: true } : {}),
    };
    const missingScopes = state.service.requiredScopes.filter((s) => !scopes.includes(s));
    // The provider is the user id's prefix (`idp` is informative; the id is what policies and sessions key on).
    const decision = checkServiceAccess(state.service, {
      id: user.id,
      machineClient: machine ? clientId : undefined,
      email: user.email,
      emailVerified: user.emailVerified,
      groups,
    });
    const entry: TokenEntry = {
      header,
      serviceId: state.id,
      expiresAt: c.exp * 1000 + CLOCK_TOLERANCE_S * 1000,
      user,
      missingScopes,
      policyDenial: decision.allowed ? undefined : decision.reason,
      identity: identityHeadersFor(user, state.identityNames),
      verified: undefined as unknown as VerifyResult,
    };
    entry.verified = { ok: true, entry };
    if (state.signedIdentity) {
      const claims = {
        client_id: clientId,
        email: user.email,
        email_verified: user.email === undefined ? undefined : user.emailVerified,
        name: user.name,
        groups,
        idp: user.provider,
        ...(machine ? { kind: 'machine' } : {}),
      };
      entry.assertionClaims = { key: `${state.id}\n${user.id}\n${JSON.stringify(claims)}`, claims };
    }
    return entry;
  }
}

function providerOf(sub: string): string | undefined {
  const i = sub.indexOf(':');
  return i > 0 ? sub.slice(0, i) : undefined;
}

/** A short, log-safe reason from a jose error code (never the token). */
function joseReason(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (err as { claim?: unknown }).claim;
      return claim === 'aud' ? 'audience' : `claim_${typeof claim === 'string' ? claim : 'invalid'}`;
    }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature';
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'unknown_key';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'algorithm';
    default:
      return 'malformed';
  }
}

/**
 * A short, non-reversible name for a presented token, for the failed-authentication limit per token
 * (src/http/rate-limit.ts). Computed only for rejected tokens; never logged.
 */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}
