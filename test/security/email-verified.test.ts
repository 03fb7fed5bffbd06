/**
 * Issue 13, defect 1: access policies trusted unverified email addresses. `emails` / `email_domains`
 * match only addresses the provider verified (per-provider opt-out `assume_email_verified`); tokens and
 * identity headers say whether the address is verified; the userinfo response is used only when its
 * `sub` is the ID token's (OIDC Core §5.3.2).
 */
import { decodeJwt } from 'jose';
import { describe, expect, test } from 'vitest';
import { obtainToken } from '../helpers/oauth-client.js';
import { bearer } from '../helpers/tokens.js';
import type { IdpUser } from '../helpers/upstream-idp.js';
import { securityWorld } from './world.js';

const MALLORY: IdpUser = { sub: 'mallory', email: 'ceo@example.com', name: 'Mallory', emailVerified: false };
const NOGROUPS: IdpUser = { sub: 'nogroups', email: 'plain@example.com', name: 'Plain' };

const services = (backend: string) => ({
  weather: { name: 'Weather', url: backend, oauth_provider: 'myidp', scopes: ['weather:read'], policy: { email_domains: ['example.com'] } },
  open: { name: 'Open', url: backend, oauth_provider: 'myidp', scopes: ['open:read'] },
});

async function world(providerExtra: Record<string, unknown> = {}) {
  const w = await securityWorld({}, {}, services, providerExtra);
  w.idp.addUser(MALLORY);
  w.idp.addUser(NOGROUPS);
  return w;
}

const ping = (gw: string, service: string, token: string) =>
  fetch(`${gw}/${service}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'x-user-email-verified': 'true',
    },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });

describe('email addresses count for policies only when verified', () => {
  test('an unverified address in an allowed domain is refused at sign-in, naming the policy', async () => {
    const { gw, idp } = await world();
    idp.nextUser = MALLORY;
    await expect(obtainToken(gw.url, 'weather')).rejects.toMatchObject({
      oauthError: 'access_denied',
      description: expect.stringContaining("access policy of service 'weather'"),
    });
  });

  test('tokens and headers say whether the address is verified; a client cannot claim it', async () => {
    const { gw, idp, backend } = await world();
    idp.nextUser = MALLORY;
    const { tokens } = await obtainToken(gw.url, 'open');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ email: 'ceo@example.com', email_verified: false });
    expect((await ping(gw.url, 'open', tokens.access_token)).status).toBe(200);
    expect(backend.received.at(-1)?.headers['x-user-email']).toBe('ceo@example.com');
    expect(backend.received.at(-1)?.headers['x-user-email-verified']).toBe('false');
  });

  test('the proxy applies the same rule: a token with an unverified address in the domain gets 403', async () => {
    const { gw } = await world();
    const unverified = await bearer(gw, { service: 'weather', claims: { email: 'ceo@example.com', email_verified: false } });
    const res = await fetch(`${gw.url}/weather/mcp`, {
      method: 'POST',
      headers: { authorization: unverified, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(res.status).toBe(403);
    const verified = await bearer(gw, { service: 'weather', claims: { email: 'ceo@example.com', email_verified: true } });
    expect((await ping(gw.url, 'weather', verified.slice('Bearer '.length))).status).toBe(200);
  });

  test('assume_email_verified: true (a provider that verifies every address) lets the address count', async () => {
    const { gw, idp } = await world({ assume_email_verified: true });
    idp.nextUser = MALLORY;
    const { tokens } = await obtainToken(gw.url, 'weather');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ email: 'ceo@example.com', email_verified: true });
  });

  test("userinfo whose sub is not the ID token's is not used (OIDC Core §5.3.2)", async () => {
    const { gw, idp } = await world();
    idp.nextUser = NOGROUPS;
    // No groups in the ID token, so the gateway asks userinfo: the answer belongs to someone else.
    idp.userinfoOverride = { sub: 'someone-else', email: 'admin@example.com', email_verified: true, groups: ['admins'] };
    const { tokens } = await obtainToken(gw.url, 'open');
    const claims = decodeJwt(tokens.access_token);
    expect(claims.sub).toBe('myidp:nogroups');
    expect(claims.email).toBe('plain@example.com');
    expect(claims.groups ?? []).toEqual([]);
    // A userinfo answer without `sub` is not used either.
    idp.userinfoOverride = { groups: ['admins'] };
    const again = await obtainToken(gw.url, 'open');
    expect(decodeJwt(again.tokens.access_token).groups ?? []).toEqual([]);
  });
});
