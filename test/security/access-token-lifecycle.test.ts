/**
 * P4 (issue 12): the gateway's JWT access tokens can be introspected (RFC 7662) and revoked (RFC 7009)
 * by the client they were issued to; revocation stops them at the proxy at once (src/authz/structured-tokens.ts).
 */
import { generateKeyPair, exportJWK } from 'jose';
import { describe, expect, test } from 'vitest';
import { mintToken } from '../helpers/tokens.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { postForm, securityWorld } from './world.js';

const ping = (gw: string, token: string) =>
  fetch(`${gw}/calc/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });

describe('P4: access tokens are introspectable and revocable', () => {
  test('P4: the issuing client introspects its access token: active, with audience, subject, scope and client', async () => {
    const { gw } = await securityWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = String(provider.clientInformation()?.client_id);
    const res = await postForm(`${gw.url}/oauth/introspect`, {
      token: tokens.access_token,
      token_type_hint: 'access_token',
      client_id: clientId,
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      active: true,
      client_id: clientId,
      sub: 'myidp:alice',
      aud: `${gw.url}/calc/mcp`,
      iss: gw.url,
      token_type: 'Bearer',
    });
    expect(String(res.json.scope).split(' ').sort()).toEqual(['mcp:read', 'mcp:tools']);
    expect(typeof res.json.jti).toBe('string');
    expect(typeof res.json.exp).toBe('number');
    // Without a hint too (RFC 7662 §2.1: the hint is optional).
    expect((await postForm(`${gw.url}/oauth/introspect`, { token: tokens.access_token, client_id: clientId })).json.active).toBe(true);
  });

  test('P4: revoking the access token stops it at the proxy at once, and its grant (refresh token) with it', async () => {
    const { gw } = await securityWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = String(provider.clientInformation()?.client_id);
    expect((await ping(gw.url, tokens.access_token)).status).toBe(200);
    const revoked = await postForm(`${gw.url}/oauth/revoke`, {
      token: tokens.access_token,
      token_type_hint: 'access_token',
      client_id: clientId,
    });
    expect(revoked.status).toBe(200);
    const after = await ping(gw.url, tokens.access_token);
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect((await postForm(`${gw.url}/oauth/introspect`, { token: tokens.access_token, client_id: clientId })).json).toEqual({
      active: false,
    });
    const refresh = await postForm(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: clientId,
    });
    expect(refresh.status).toBe(400);
    expect(refresh.json.error).toBe('invalid_grant');
  });

  test('P4: another client can neither introspect nor revoke the token', async () => {
    const { gw } = await securityWorld();
    const { tokens } = await obtainToken(gw.url, 'calc');
    const other = await obtainToken(gw.url, 'calc');
    const otherId = String(other.provider.clientInformation()?.client_id);
    expect((await postForm(`${gw.url}/oauth/introspect`, { token: tokens.access_token, client_id: otherId })).json).toEqual({
      active: false,
    });
    expect((await postForm(`${gw.url}/oauth/revoke`, { token: tokens.access_token, client_id: otherId })).status).toBe(200);
    expect((await ping(gw.url, tokens.access_token)).status).toBe(200);
  });

  test('P4: forged, foreign-key and expired JWTs are inactive and revoke nothing', async () => {
    const { gw } = await securityWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = String(provider.clientInformation()?.client_id);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const foreign = await mintToken(gw, {
      service: 'calc',
      key: { ...(await exportJWK(privateKey)), kid: gw.ctx.keys.signer.kid },
      claims: { client_id: clientId },
    });
    const expired = await mintToken(gw, { service: 'calc', ttl: -120, claims: { client_id: clientId } });
    const parts = tokens.access_token.split('.');
    const tampered = `${parts[0]}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()), sub: 'myidp:bob' })).toString('base64url')}.${parts[2]}`;
    for (const token of [foreign, expired, tampered, 'gwat.not-a-token', 'a.b.c']) {
      expect((await postForm(`${gw.url}/oauth/introspect`, { token, client_id: clientId })).json).toEqual({ active: false });
      expect((await postForm(`${gw.url}/oauth/revoke`, { token, client_id: clientId })).status).toBe(200);
    }
    expect((await ping(gw.url, tokens.access_token)).status).toBe(200);
  });
});
