import { decodeJwt } from 'jose';
import { describe, expect, test } from 'vitest';
import { authorizeOnly, obtainToken } from '../helpers/oauth-client.js';
import { startWorld } from './setup.js';

async function post(url: string, body: Record<string, string>) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function tally(results: Array<{ status: number; json: Record<string, unknown> }>) {
  const ok = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status === 400 && r.json.error === 'invalid_grant');
  return { ok, refused, other: results.filter((r) => !ok.includes(r) && !refused.includes(r)) };
}

describe('concurrent redemption (RFC 6749 §4.1.2, RFC 9700 §4.14)', () => {
  test('20 concurrent redemptions of one code: exactly one 200, the rest invalid_grant, and the grant ends revoked', async () => {
    const { gw } = await startWorld();
    const provider = await authorizeOnly(gw.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const body = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      code_verifier: provider.codeVerifier(),
      redirect_uri: provider.redirectUri,
      client_id: clientId,
    };
    const { ok, refused, other } = tally(await Promise.all(Array.from({ length: 20 }, () => post(`${gw.url}/oauth/token`, body))));
    expect(other).toEqual([]);
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(19);
    const winner = ok[0]!.json;
    expect(gw.ctx.revocations.isRevoked(String(decodeJwt(String(winner.access_token)).gid))).toBe(true);
    const introspected = await post(`${gw.url}/oauth/introspect`, { token: String(winner.refresh_token), client_id: clientId });
    expect(introspected.json.active).toBe(false);
    const refresh = await post(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(winner.refresh_token),
      client_id: clientId,
    });
    expect(refresh.json.error).toBe('invalid_grant');
  });

  test('10 concurrent uses of one refresh token: exactly one 200, the rest invalid_grant, and the grant ends revoked', async () => {
    // Reuse detection without the grace window (test/authz/refresh-grace.test.ts covers the window and after).
    const { gw } = await startWorld({ tokens: { refresh_reuse_grace: 0 } });
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const body = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId };
    const { ok, refused, other } = tally(await Promise.all(Array.from({ length: 10 }, () => post(`${gw.url}/oauth/token`, body))));
    expect(other).toEqual([]);
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(9);
    const gid = String(decodeJwt(tokens.access_token).gid);
    expect(gw.ctx.revocations.isRevoked(gid)).toBe(true);
    const winnerRefresh = String(ok[0]!.json.refresh_token);
    expect((await post(`${gw.url}/oauth/introspect`, { token: winnerRefresh, client_id: clientId })).json.active).toBe(false);
    expect(
      (await post(`${gw.url}/oauth/token`, { grant_type: 'refresh_token', refresh_token: winnerRefresh, client_id: clientId })).json.error,
    ).toBe('invalid_grant');
  });
});
