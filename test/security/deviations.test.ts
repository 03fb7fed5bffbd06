/**
 * The seed's spec deviations (original-behaviour §8.2) that still apply to this design, one assertion
 * each. Deviations about features the gateway does not have (OIDC discovery, userinfo) are asserted as
 * "not advertised".
 */
import { decodeProtectedHeader } from 'jose';
import { describe, expect, test } from 'vitest';
import { obtainToken } from '../helpers/oauth-client.js';
import { bearer } from '../helpers/tokens.js';
import { authorizeUrl, get, postForm, register, securityWorld } from './world.js';

describe('§8.2 RFC 6749 / OAuth 2.1 deviations', () => {
  test('§8.2: errors are top-level RFC 6749 §5.2 JSON, not nested under detail', async () => {
    const { gw } = await securityWorld();
    const res = await postForm(`${gw.url}/oauth/token`, { grant_type: 'authorization_code', code: 'x', client_id: 'nope' });
    expect(typeof res.json.error).toBe('string');
    expect(res.json.detail).toBeUndefined();
    const reg = await register(gw.url, { redirect_uris: ['http://evil.example/cb'] });
    expect(reg.json).toMatchObject({ error: 'invalid_redirect_uri' });
  });

  test('§8.2: an error redirect carries no state=None when the client sent none, and keeps the redirect URI query', async () => {
    const { gw } = await securityWorld();
    const redirect = 'http://127.0.0.1:49152/cb?tenant=a';
    const clientId = String((await register(gw.url, { redirect_uris: [redirect] })).json.client_id);
    const res = await fetch(
      authorizeUrl(gw.url, { client_id: clientId, redirect_uri: redirect, state: undefined, code_challenge: undefined }),
      { redirect: 'manual' },
    );
    const to = new URL(res.headers.get('location')!);
    expect(to.searchParams.get('tenant')).toBe('a');
    expect(to.searchParams.get('error')).toBe('invalid_request');
    expect(to.searchParams.has('state')).toBe(false);
    expect(to.searchParams.get('iss')).toBe(gw.url);
  });

  test('§8.2: an IdP error is relayed to the client as an OAuth error redirect', async () => {
    const { gw, idp } = await securityWorld();
    idp.nextError = 'access_denied';
    await expect(obtainToken(gw.url, 'calc')).rejects.toMatchObject({ oauthError: 'access_denied', iss: gw.url });
  });
});

describe('§8.2 RFC 8414 / RFC 9728 / RFC 7591 / RFC 9068 / RFC 6750 deviations', () => {
  test('§8.2 RFC 8414: every advertised endpoint answers; nothing OIDC-only is advertised; RFC 9207 iss advertised', async () => {
    const { gw } = await securityWorld();
    const md = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(md.issuer).toBe(gw.url);
    expect(md.userinfo_endpoint).toBeUndefined();
    expect(md.id_token_signing_alg_values_supported).toBeUndefined();
    expect(md.resource_parameter_supported).toBeUndefined();
    expect(md.authorization_response_iss_parameter_supported).toBe(true);
    expect((await fetch(String(md.jwks_uri))).status).toBe(200);
    expect((await get(`${gw.url}/.well-known/openid-configuration`)).status).toBe(404);
  });

  test('§8.2 RFC 9728: the path-inserted PRM names exactly the dialled resource and has resource_name', async () => {
    const { gw } = await securityWorld();
    const prm = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/calc/mcp`)).json()) as Record<string, unknown>;
    expect(prm.resource).toBe(`${gw.url}/calc/mcp`);
    expect(prm.resource_name).toBe('Calculator');
    const challenge = (await fetch(`${gw.url}/calc/mcp`)).headers.get('www-authenticate');
    expect(challenge).toContain(`resource_metadata="${gw.url}/.well-known/oauth-protected-resource/calc/mcp"`);
  });

  test('§8.2 RFC 7591: 201, metadata echoed, no secret for none clients', async () => {
    const { gw } = await securityWorld();
    const res = await register(gw.url, { client_name: 'Echo Me', scope: 'mcp:tools' });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ client_name: 'Echo Me', token_endpoint_auth_method: 'none' });
    // The registered scope is widened to every service scope (src/authz/registration.ts widenScope: step-up must stay possible).
    expect(String(res.json.scope).split(' ')).toEqual(expect.arrayContaining(['mcp:tools', 'mcp:read', 'weather:read']));
    expect(res.json.client_secret).toBeUndefined();
  });

  test('§8.2 RFC 9068 / RFC 6750: typ at+jwt with kid; invalid tokens get error="invalid_token"', async () => {
    const { gw } = await securityWorld();
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    expect(decodeProtectedHeader(tokens.access_token).kid).toBeTruthy();
    const bad = await fetch(`${gw.url}/calc/mcp`, { headers: { authorization: 'Bearer not.a.token' } });
    expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});

describe('§8.2 MCP transport deviations', () => {
  test('§8.2 MCP: MCP-Protocol-Version 2025-11-25 passes through once, unchanged; Accept and Content-Type are not rewritten', async () => {
    const { gw, backend } = await securityWorld();
    const res = await fetch(`${gw.url}/calc/mcp`, {
      headers: {
        authorization: await bearer(gw, { service: 'calc', claims: { scope: 'mcp:tools mcp:read' } }),
        'mcp-protocol-version': '2025-11-25',
        accept: 'text/event-stream',
      },
    });
    expect(res.status).toBe(200);
    const raw = backend.received[0]!.rawHeaders;
    const values = (name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);
    expect(values('mcp-protocol-version')).toEqual(['2025-11-25']);
    expect(values('accept')).toEqual(['text/event-stream']);
    expect(values('content-type')).toEqual([]);
  });
});
