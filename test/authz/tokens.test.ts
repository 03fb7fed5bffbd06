import { decodeJwt } from 'jose';
import { describe, expect, test } from 'vitest';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { startWorld } from './setup.js';

async function form(url: string, body: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

describe('token endpoint', () => {
  test('refresh rotates; replaying the old refresh token revokes the whole grant (RFC 9700 §4.14)', async () => {
    // Reuse detection without the grace window (test/authz/refresh-grace.test.ts covers the window and after).
    const { gw } = await startWorld({ tokens: { refresh_reuse_grace: 0 } });
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const gid = String(decodeJwt(tokens.access_token).gid);
    const first = await form(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: clientId,
    });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toContain('no-store');
    expect(first.json.refresh_token).not.toBe(tokens.refresh_token);
    expect(decodeJwt(String(first.json.access_token))).toMatchObject({ aud: `${gw.url}/calc/mcp`, email: 'alice@example.com', gid });
    const replay = await form(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: clientId,
    });
    expect(replay.status).toBe(400);
    expect(replay.json.error).toBe('invalid_grant');
    expect(gw.ctx.revocations.isRevoked(gid)).toBe(true);
    const rotatedToo = await form(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(first.json.refresh_token),
      client_id: clientId,
    });
    expect(rotatedToo.json.error).toBe('invalid_grant');
  });

  test('refresh cannot retarget to another service (invalid_target)', async () => {
    const { gw } = await startWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const res = await form(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: provider.clientInformation()!.client_id,
      resource: `${gw.url}/weather/mcp`,
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_target');
  });

  test('RFC 7009 revocation of the refresh token revokes the grant; RFC 7662 introspection reflects it', async () => {
    const { gw } = await startWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const active = await form(`${gw.url}/oauth/introspect`, { token: tokens.refresh_token!, client_id: clientId });
    expect(active.json.active).toBe(true);
    const rev = await fetch(`${gw.url}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token!, client_id: clientId }),
    });
    expect(rev.status).toBe(200);
    expect(gw.ctx.revocations.isRevoked(String(decodeJwt(tokens.access_token).gid))).toBe(true);
    const inactive = await form(`${gw.url}/oauth/introspect`, { token: tokens.refresh_token!, client_id: clientId });
    expect(inactive.json.active).toBe(false);
  });

  test('a second redemption of a code fails and revokes what the first produced', async () => {
    const { gw } = await startWorld();
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).resolves.toBeTruthy();
    const code = provider.captured!.code!;
    const replay = await form(`${gw.url}/oauth/token`, {
      grant_type: 'authorization_code',
      code,
      code_verifier: provider.codeVerifier(),
      redirect_uri: provider.redirectUri,
      client_id: provider.clientInformation()!.client_id,
    });
    expect(replay.status).toBe(400);
    expect(replay.json.error).toBe('invalid_grant');
    expect(gw.ctx.revocations.isRevoked(String(decodeJwt(provider.tokens()!.access_token).gid))).toBe(true);
  });

  test('confidential client: client_secret_basic and client_secret_post work; a wrong secret is 401 invalid_client', async () => {
    const { gw } = await startWorld({
      clients: [
        {
          client_id: 'static-app',
          client_secret: 'static-secret-value',
          redirect_uris: ['http://127.0.0.1:49152/callback'],
          token_endpoint_auth_method: 'client_secret_post',
        },
      ],
    });
    const provider = new TestOAuthProvider({ clientInformation: { client_id: 'static-app', client_secret: 'static-secret-value' } });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const post = await form(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: 'static-app',
      client_secret: 'static-secret-value',
    });
    expect(post.status).toBe(200);
    const bad = await form(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(post.json.refresh_token),
      client_id: 'static-app',
      client_secret: 'wrong',
    });
    expect(bad.status).toBe(401);
    expect(bad.json.error).toBe('invalid_client');
    const basic = await form(
      `${gw.url}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: 'x' },
      { authorization: `Basic ${Buffer.from('static-app:wrong').toString('base64')}` },
    );
    expect(basic.status).toBe(401);
  });
});
