/**
 * RFC 7009 revocation and RFC 7662 introspection of the gateway's own JWT access tokens (P4 in docs/security.md).
 *
 * oidc-provider never stores JWT access tokens and answers every JWT presented at these endpoints with
 * `unsupported_token_type` (shared/reject_structured_tokens.js). Its client authentication, allowed
 * policies and grant revocation are exactly what we want, so instead of answering ourselves the request
 * is handed to it with the JWT wrapped in a handle (`gwat.<jwt>`) that is not JWT-shaped; the adapter's
 * `find` for AccessToken unwraps the handle, verifies the JWT with the gateway's keys (signature, issuer,
 * `typ: at+jwt`) and presents its claims as the token record. Nothing is stored per access token.
 *
 * Effect of revoking an access token: oidc-provider revokes its whole grant (as for opaque tokens; RFC
 * 7009 §2.1 allows it), the grant id reaches the RevocationList, and every instance's proxy refuses the
 * grant's access tokens at once; its refresh token dies with it.
 */
import { jwtVerify } from 'jose';
import type { AdapterPayload } from 'oidc-provider';
import type { GatewayContext } from '../context.js';
import { ACCESS_TOKEN_TYP, parseAccessTokenClaims } from '../kernel/claims.js';

export const HANDLE_PREFIX = 'gwat.';

/** Claims that are token metadata, not identity: everything else is passed as introspection `extra`. */
const REGISTERED = new Set(['iss', 'aud', 'sub', 'client_id', 'scope', 'jti', 'iat', 'exp', 'nbf', 'gid']);

/** A compact JWS (three base64url parts); what oidc-provider's structured-token check would refuse. */
const JWS_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/;

/**
 * For a revocation or introspection form body: wraps a JWT-shaped `token` so oidc-provider looks it up
 * instead of refusing it. Returns whether the body changed.
 */
export function wrapStructuredToken(params: URLSearchParams): boolean {
  const token = params.get('token');
  if (token === null || params.getAll('token').length !== 1 || !JWS_SHAPE.test(token)) return false;
  params.set('token', HANDLE_PREFIX + token);
  return true;
}

/** The AccessToken record for a wrapped handle, or undefined when the JWT is not a valid gateway access token. */
export async function structuredAccessToken(ctx: GatewayContext, handle: string): Promise<AdapterPayload | undefined> {
  if (!handle.startsWith(HANDLE_PREFIX)) return undefined;
  const jwt = handle.slice(HANDLE_PREFIX.length);
  let payload: Record<string, unknown>;
  try {
    // Expired tokens verify as invalid here: introspection says `active: false`, revocation is a no-op.
    ({ payload } = await jwtVerify(jwt, ctx.keys.verifyKeySet, {
      issuer: ctx.issuer,
      typ: ACCESS_TOKEN_TYP,
      algorithms: ['ES256'],
      requiredClaims: ['exp', 'iat', 'jti', 'sub'],
    }));
  } catch {
    return undefined;
  }
  // The same contract the proxy reads (src/kernel/claims.ts): a token it would refuse is not active here either.
  const claims = parseAccessTokenClaims(payload);
  if (typeof claims === 'string') return undefined;
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(payload)) if (!REGISTERED.has(k)) extra[k] = v;
  return {
    kind: 'AccessToken',
    // Introspection echoes it; revocation "destroys" the record by it (a no-op: nothing is stored).
    jti: claims.jti,
    iat: claims.iat,
    exp: claims.exp,
    accountId: claims.sub,
    clientId: claims.client_id,
    ...(claims.gid === undefined ? {} : { grantId: claims.gid }),
    ...(claims.scope === undefined ? {} : { scope: claims.scope }),
    aud: claims.aud,
    resource: claims.aud,
    extra,
  } as AdapterPayload;
}
