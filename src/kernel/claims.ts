/**
 * The access-token contract between the authorization server (which signs) and the proxy (which
 * verifies). RFC 9068 JWT access tokens: header `typ: at+jwt`, `alg: ES256`, `kid`.
 */
export const ACCESS_TOKEN_TYP = 'at+jwt';

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
}
