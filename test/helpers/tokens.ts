/**
 * Test access tokens signed with the gateway's own current signing key, shaped like the authorization
 * server's (src/kernel/claims.ts), with every claim and header overridable (or removable with `undefined`).
 */
import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import type { Gateway } from '../../src/http/app.js';

export interface TokenOptions {
  /** Service id: sets `aud` to its canonical URI (ignored when `claims.aud` is given). */
  service?: string;
  /** Claim overrides; a value of `undefined` removes the claim. */
  claims?: Record<string, unknown>;
  /** Lifetime in seconds from now (default 300); negative for an expired token. */
  ttl?: number;
  /** Header `typ` (default `at+jwt`). */
  typ?: string;
  /** Sign with this private JWK instead of the gateway's key (a foreign key). */
  key?: JWK;
}

export async function mintToken(gw: Gateway, options: TokenOptions = {}): Promise<string> {
  const issuer = gw.ctx.issuer;
  const now = Math.floor(Date.now() / 1000);
  const ttl = options.ttl ?? 300;
  const base: Record<string, unknown> = {
    iss: issuer,
    aud: `${issuer}/${options.service ?? 'svc'}/mcp`,
    sub: 'dev:alice',
    client_id: 'test-client',
    scope: (options.service && gw.ctx.services.get(options.service)?.scopes.join(' ')) || undefined,
    jti: randomUUID(),
    iat: ttl < 0 ? now + ttl - 60 : now,
    exp: now + ttl,
    gid: randomUUID(),
    email: 'alice@example.com',
    email_verified: true,
    name: 'Alice Example',
    picture: 'https://example.com/alice.png',
    groups: ['staff'],
    idp: 'dev',
  };
  const claims: Record<string, unknown> = { ...base, ...options.claims };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  const jwk = options.key ?? gw.ctx.keys.privateJwks().keys[0];
  if (!jwk) throw new Error('gateway has no signing key');
  const key = await importJWK(jwk, 'ES256');
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: options.typ ?? 'at+jwt' }).sign(key);
}

/** `Authorization` header value for a fresh token. */
export async function bearer(gw: Gateway, options: TokenOptions = {}): Promise<string> {
  return `Bearer ${await mintToken(gw, options)}`;
}
