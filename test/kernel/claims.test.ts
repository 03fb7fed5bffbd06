/**
 * The access-token contract (src/kernel/claims.ts): what the issuer adds (src/authz/accounts.ts
 * identityClaims) reads back unchanged through the parser the proxy and introspection use, and the parser
 * checks every claim's type instead of assuming it.
 */
import { describe, expect, it } from 'vitest';
import { identityClaims } from '../../src/authz/accounts.js';
import { parseAccessTokenClaims, type AccessTokenClaims } from '../../src/kernel/claims.js';

const now = Math.floor(Date.now() / 1000);
/** What oidc-provider sets itself (RFC 9068 §2.2). */
const registered = {
  iss: 'https://gw.example',
  aud: 'https://gw.example/calc/mcp',
  sub: 'corp:alice',
  client_id: 'client-1',
  scope: 'mcp:read',
  jti: 'j-1',
  iat: now,
  exp: now + 300,
};

describe('parseAccessTokenClaims', () => {
  it('reads back what the issuer puts in a token, claim for claim', () => {
    const issued = identityClaims(
      {
        id: 'corp:alice',
        provider: 'corp',
        subject: 'alice',
        email: 'alice@example.com',
        emailVerified: true,
        name: 'Alice',
        picture: 'https://img/a.png',
        groups: ['eng'],
      },
      'grant-1',
    );
    // JSON round trip: what a JWT payload really carries (undefined members vanish).
    const payload = JSON.parse(JSON.stringify({ ...registered, ...issued })) as Record<string, unknown>;
    const expected: AccessTokenClaims = {
      ...registered,
      gid: 'grant-1',
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice',
      picture: 'https://img/a.png',
      groups: ['eng'],
      idp: 'corp',
    };
    expect(parseAccessTokenClaims(payload)).toEqual(expected);
  });

  it('an issued token without an email carries no email_verified, and parses without one', () => {
    const issued = identityClaims({ id: 'corp:bob', provider: 'corp', subject: 'bob', groups: [] }, undefined);
    const parsed = parseAccessTokenClaims(JSON.parse(JSON.stringify({ ...registered, ...issued })) as Record<string, unknown>);
    expect(parsed).toMatchObject({ sub: 'corp:alice', idp: 'corp', groups: [] });
    expect(parsed).not.toHaveProperty('email');
    expect(parsed).not.toHaveProperty('email_verified');
    expect(parsed).not.toHaveProperty('gid');
  });

  it('refuses a payload whose required claims are missing or of the wrong type', () => {
    for (const [claim, value] of [
      ['sub', undefined],
      ['sub', ''],
      ['sub', 7],
      ['client_id', undefined],
      ['client_id', ['c']],
      ['jti', undefined],
      ['iat', '1'],
      ['exp', undefined],
      ['exp', '99'],
      ['iss', undefined],
    ] as const) {
      expect(parseAccessTokenClaims({ ...registered, [claim]: value }), `${claim}: ${JSON.stringify(value)}`).toBe('claims');
    }
  });

  it('accepts an audience array only when it names exactly one resource', () => {
    expect(parseAccessTokenClaims({ ...registered, aud: [registered.aud] })).toMatchObject({ aud: registered.aud });
    expect(parseAccessTokenClaims({ ...registered, aud: [registered.aud, 'https://other/mcp'] })).toBe('audience');
    expect(parseAccessTokenClaims({ ...registered, aud: [] })).toBe('audience');
    expect(parseAccessTokenClaims({ ...registered, aud: undefined })).toBe('audience');
  });

  it('drops optional claims of the wrong type instead of trusting them', () => {
    const parsed = parseAccessTokenClaims({
      ...registered,
      email: 42,
      email_verified: 'true',
      groups: ['eng', 3, null],
      name: {},
      gid: 1,
      idp: '',
    });
    expect(parsed).toEqual({ ...registered, groups: ['eng'] });
  });
});
