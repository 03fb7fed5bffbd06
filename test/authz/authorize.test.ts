import { describe, expect, test } from 'vitest';
import { startWorld } from './setup.js';

const REDIRECT = 'http://127.0.0.1:49152/callback';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

async function register(gw: string, body: Record<string, unknown>) {
  const res = await fetch(`${gw}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function authorizeUrl(gw: string, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({
    response_type: 'code',
    redirect_uri: REDIRECT,
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    state: 's1',
    ...params,
  }))
    if (v !== undefined) q.set(k, v);
  return `${gw}/oauth/authorize?${q}`;
}

describe('authorization endpoint and registration', () => {
  test('RFC 8414 metadata lists only what answers; no OIDC discovery; RFC 9728 PRM per service', async () => {
    const { gw } = await startWorld();
    const md = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(md).toMatchObject({
      issuer: gw.url,
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: true,
      jwks_uri: `${gw.url}/oauth/jwks`,
    });
    expect(md.userinfo_endpoint).toBeUndefined();
    expect((await fetch(`${gw.url}/.well-known/openid-configuration`)).status).toBe(404);
    const prm = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/calc/mcp`)).json()) as Record<string, unknown>;
    expect(prm).toEqual({
      resource: `${gw.url}/calc/mcp`,
      authorization_servers: [gw.url],
      scopes_supported: ['mcp:tools', 'mcp:read'],
      bearer_methods_supported: ['header'],
      resource_name: 'Calculator',
    });
    expect((await fetch(`${gw.url}/.well-known/oauth-protected-resource?service_id=calc`)).status).toBe(200);
    expect((await fetch(`${gw.url}/.well-known/oauth-protected-resource`)).status).toBe(404);
    expect((await fetch(`${gw.url}/.well-known/oauth-protected-resource/nope/mcp`)).status).toBe(404);
  });

  test('DCR: 201 with metadata, no secret for none, unknown members ignored, MCP scopes accepted, bad redirect URIs refused', async () => {
    const { gw } = await startWorld();
    const ok = await register(gw.url, {
      redirect_uris: ['http://127.0.0.1:1234/cb', 'cursor://anysphere.cursor-mcp/oauth/callback'],
      scope: 'mcp:tools offline_access',
      client_name: 'Cursor',
      resource: 'x',
      unknown_member: 1,
    });
    expect(ok.status).toBe(201);
    expect(ok.json).toMatchObject({ client_name: 'Cursor', token_endpoint_auth_method: 'none' });
    // Accepted, and widened to every service scope so that a later step-up stays possible (src/authz/registration.ts).
    expect(String(ok.json.scope).split(' ').slice(0, 2)).toEqual(['mcp:tools', 'offline_access']);
    expect(ok.json.client_secret).toBeUndefined();
    expect(ok.json.unknown_member).toBeUndefined();
    const evil = await register(gw.url, { redirect_uris: ['http://evil.example/cb'] });
    expect(evil).toMatchObject({ status: 400, json: { error: 'invalid_redirect_uri' } });
    const evilWeb = await register(gw.url, { redirect_uris: ['http://evil.example/cb'], application_type: 'web' });
    expect(evilWeb.json.error).toBe('invalid_redirect_uri');
    const bad = await register(gw.url, { redirect_uris: ['http://127.0.0.1:1/cb'], grant_types: 'implicit-ish' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('invalid_client_metadata');
    const secret = await register(gw.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'client_secret_basic' });
    expect(typeof secret.json.client_secret).toBe('string');
  });

  test('loopback redirect URIs match on any port; an unregistered redirect URI or unknown client gets an error page, never a redirect (S1)', async () => {
    const { gw } = await startWorld();
    const { json } = await register(gw.url, { redirect_uris: ['http://127.0.0.1:1234/callback'] });
    const clientId = String(json.client_id);
    const anyPort = await fetch(authorizeUrl(gw.url, { client_id: clientId, resource: `${gw.url}/calc/mcp` }), { redirect: 'manual' });
    expect(anyPort.status).toBe(303);
    expect(anyPort.headers.get('location')).toMatch(/^\/interaction\//);
    for (const url of [
      authorizeUrl(gw.url, { client_id: clientId, redirect_uri: 'https://evil.example/cb' }),
      authorizeUrl(gw.url, { client_id: 'no-such-client' }),
    ]) {
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    }
  });

  test('missing PKCE is rejected (S2); unknown resource is invalid_target; no resource follows the documented rule', async () => {
    const { gw } = await startWorld();
    const clientId = String((await register(gw.url, { redirect_uris: [REDIRECT] })).json.client_id);
    const location = async (params: Record<string, string | undefined>) => {
      const res = await fetch(authorizeUrl(gw.url, { client_id: clientId, ...params }), { redirect: 'manual' });
      return new URL(res.headers.get('location')!, gw.url);
    };
    const noPkce = await location({ code_challenge: undefined, code_challenge_method: undefined, resource: `${gw.url}/calc/mcp` });
    expect(noPkce.searchParams.get('error')).toBe('invalid_request');
    expect(noPkce.searchParams.get('iss')).toBe(gw.url);
    const unknown = await location({ resource: 'https://elsewhere.example/mcp' });
    expect(unknown.searchParams.get('error')).toBe('invalid_target');
    // RFC 9207: `iss` on error responses too.
    expect(unknown.searchParams.get('iss')).toBe(gw.url);
    const ambiguous = await location({ scope: 'offline_access' });
    expect(ambiguous.searchParams.get('error')).toBe('invalid_target');
    expect(ambiguous.searchParams.get('error_description')).toContain('resource=');
    expect((await location({ scope: 'weather:read' })).pathname).toMatch(/^\/interaction\//);
  });
});
