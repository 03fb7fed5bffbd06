/**
 * The access-token contract between the authorization server (which signs) and the proxy (which
 * verifies). RFC 9068 JWT access tokens: header `typ: at+jwt`, `alg: ES256`, `kid`. One type,
 * `AccessTokenClaims`: the issuer builds its part with `IssuedClaims` (src/authz/accounts.ts), the verifier
 * and introspection read a payload only through `parseAccessTokenClaims`, so the two sides cannot drift.
 */
export const ACCESS_TOKEN_TYP = 'at+jwt';

/** The subject of a machine client's token (`client_credentials`): `client:{client_id}` (no provider is named `client`). */
export function machineSubject(clientId: string): string {
  return `client:${clientId}`;
}

export interface AccessTokenClaims {
  /** The gateway issuer (origin, no trailing slash). */
  iss: string;
  /** Exactly one service's canonical URI `{issuer}/{id}/mcp` (RFC 8707). */
  aud: string;
  /** Stable user id `{provider}:{subject}`. */
  sub: string;
  client_id: string;
  /** Space-separated scopes, a subset of the service's scopes. */
  scope?: string;
  jti: string;
  iat: number;
  exp: number;
  /** Grant id: what revocation keys on (src/kernel/revocation.ts). */
  gid?: string;
  email?: string;
  /** Whether the upstream provider verified `email` (present with `email`). */
  email_verified?: boolean;
  name?: string;
  picture?: string;
  groups?: string[];
  /** Name of the upstream provider (the key under `oauth_providers`). */
  idp?: string;
}

/**
 * The claims the gateway adds to oidc-provider's own (`extraTokenClaims`): the grant and the person.
 * oidc-provider sets the rest (`iss`, `aud`, `sub`, `client_id`, `scope`, `jti`, `iat`, `exp`).
 * A key whose value is undefined is left out of the token.
 */
export type IssuedClaims = {
  [K in 'gid' | 'email' | 'email_verified' | 'name' | 'picture' | 'groups' | 'idp']: AccessTokenClaims[K] | undefined;
};

/** Why a signature-checked payload is not a gateway access token: `audience` (not exactly one) or `claims`. */
export type ClaimsProblem = 'audience' | 'claims';

/**
 * The claims of a payload whose signature, issuer, type and times were already checked (jose `jwtVerify`),
 * with every type checked, never assumed: the required claims must be present and well-typed (else
 * `claims`); an optional claim of the wrong type is dropped. `aud` must name exactly one resource (an array
 * only with that one value; docs/proxy.md).
 * @example parseAccessTokenClaims({ iss, aud: 'https://gw/calc/mcp', sub: 'dev:alice', client_id: 'c', jti: 'j', iat, exp }).sub // 'dev:alice'
 */
export function parseAccessTokenClaims(p: Readonly<Record<string, unknown>>): AccessTokenClaims | ClaimsProblem {
  const aud = Array.isArray(p.aud) ? (p.aud.length === 1 ? p.aud[0] : undefined) : p.aud;
  if (typeof aud !== 'string' || aud.length === 0) return 'audience';
  const { iss, sub, client_id: clientId, jti, iat, exp } = p;
  if (!isText(iss) || !isText(sub) || !isText(clientId) || !isText(jti) || typeof iat !== 'number' || typeof exp !== 'number')
    return 'claims';
  const claims: AccessTokenClaims = { iss, aud, sub, client_id: clientId, jti, iat, exp };
  if (typeof p.scope === 'string') claims.scope = p.scope;
  if (isText(p.gid)) claims.gid = p.gid;
  if (isText(p.email)) claims.email = p.email;
  if (typeof p.email_verified === 'boolean') claims.email_verified = p.email_verified;
  if (isText(p.name)) claims.name = p.name;
  if (isText(p.picture)) claims.picture = p.picture;
  if (Array.isArray(p.groups)) claims.groups = p.groups.filter((g): g is string => typeof g === 'string');
  if (isText(p.idp)) claims.idp = p.idp;
  return claims;
}

function isText(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** The verified identity the proxy injects towards backends. */
export interface VerifiedUser {
  id: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  picture?: string;
  groups: string[];
  provider?: string;
  clientId: string;
  scopes: string[];
  grantId?: string;
  /** A machine client (`client_credentials`): `sub` is `client:{client_id}`; no person, no email. */
  machine?: boolean;
}
