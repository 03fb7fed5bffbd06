/**
 * Scope selection at the authorization endpoint (src/authz/scope-selection.ts, docs/authorization.md):
 * RFC 6749 §3.3 defaults for a request without `scope`, services without scopes, the OIDC scopes clients
 * add on their own, unknown scopes dropped, and one resource per authorization (issue 12, P1).
 */
import { decodeJwt } from 'jose';
import { describe, expect, test } from 'vitest';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { connectByDiscovery, textOf } from '../helpers/sdk-session.js';
import { authorizeUrl, gidOf, postForm, register, REDIRECT, securityWorld, VERIFIER } from '../security/world.js';

const services = (backend: string) => ({
  calc: { name: 'Calculator', url: backend, oauth_provider: 'myidp', scopes: ['read', 'calculate'] },
  admin: { name: 'Admin', url: backend, oauth_provider: 'myidp', scopes: ['admin'], policy: { emails: ['root@example.com'] } },
  notes: { name: 'Notes', url: backend, oauth_provider: 'myidp' },
  pub: { name: 'Public', url: backend, auth_required: false },
});

/** Runs the browser through one authorization request and redeems the code. */
async function authorizeAndRedeem(gw: string, params: Record<string, string | undefined>) {
  const clientId = String((await register(gw)).json.client_id);
  const walk = await new BrowserDriver().walk(new URL(authorizeUrl(gw, { client_id: clientId, ...params })), REDIRECT);
  const redirect = walk.redirect;
  const code = redirect?.searchParams.get('code');
  if (!code)
    return { clientId, walk, error: redirect?.searchParams.get('error'), description: redirect?.searchParams.get('error_description') };
  const token = await postForm(`${gw}/oauth/token`, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT,
    code_verifier: VERIFIER,
    client_id: clientId,
  });
  return { clientId, walk, token };
}

describe('scope selection (RFC 6749 §3.3, MCP scope selection)', () => {
  test('a request without scope gets the service defaults (the scopes its 401 challenge names), not access_denied', async () => {
    const { gw } = await securityWorld({}, {}, services);
    const challenge = await fetch(`${gw.url}/calc/mcp`, { method: 'POST' });
    expect(challenge.headers.get('www-authenticate')).toContain('scope="read calculate"');
    const r = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/calc/mcp` });
    expect(r.walk.pages).toContain('consent');
    // The consent page shows what will be granted.
    expect(r.walk.shown.find((p) => p.body.includes('Permissions'))?.body).toMatch(/<code>read<\/code>.*<code>calculate<\/code>/s);
    expect(r.token?.status).toBe(200);
    expect(r.token?.json.scope).toBe('read calculate');
    expect(decodeJwt(String(r.token?.json.access_token))).toMatchObject({ aud: `${gw.url}/calc/mcp`, scope: 'read calculate' });
  });

  test('a service without scopes is fully usable: token with its audience and no scope claim', async () => {
    const { gw, backend } = await securityWorld({}, {}, services);
    const r = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/notes/mcp` });
    expect(r.error ?? null).toBeNull();
    expect(r.token?.status).toBe(200);
    const claims = decodeJwt(String(r.token?.json.access_token));
    expect(claims.aud).toBe(`${gw.url}/notes/mcp`);
    expect(claims.scope).toBeUndefined();
    const res = await fetch(`${gw.url}/notes/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${String(r.token?.json.access_token)}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(res.status).toBe(200);
    expect(backend.received.at(-1)?.headers['x-user-id']).toBe('myidp:alice');
  });

  test('an SDK client discovers, signs in and calls a tool on a service without scopes', async () => {
    const { startMcpBackend } = await import('../helpers/mcp-backend.js');
    const mcp = await startMcpBackend();
    const { gw } = await securityWorld({}, {}, () => ({ notes: { name: 'Notes', url: mcp.url, oauth_provider: 'myidp' } }));
    const s = await connectByDiscovery(`${gw.url}/notes/mcp`, { browser: new BrowserDriver() });
    try {
      expect(s.challenged).toBe(true);
      expect(JSON.parse(textOf(await s.client.callTool({ name: 'whoami', arguments: {} })))).toMatchObject({ 'x-user-id': 'myidp:alice' });
    } finally {
      await s.close();
    }
  });

  test('clients that add openid email profile offline_access on their own still get a working service token and a refresh token', async () => {
    const { gw } = await securityWorld({}, {}, services);
    const r = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/calc/mcp`, scope: 'openid email profile offline_access' });
    expect(r.token?.status).toBe(200);
    expect(decodeJwt(String(r.token?.json.access_token))).toMatchObject({ aud: `${gw.url}/calc/mcp`, scope: 'read calculate' });
    expect(typeof r.token?.json.refresh_token).toBe('string');
    const refreshed = await postForm(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(r.token?.json.refresh_token),
      client_id: r.clientId,
    });
    expect(refreshed.status).toBe(200);
    expect(decodeJwt(String(refreshed.json.access_token))).toMatchObject({ aud: `${gw.url}/calc/mcp`, scope: 'read calculate' });
  });

  test("unknown scopes and other services' scopes are dropped; the token response says what was granted", async () => {
    const { gw } = await securityWorld({}, {}, services);
    const r = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/calc/mcp`, scope: 'read admin no-such-scope' });
    expect(r.token?.status).toBe(200);
    // `calculate` is a required scope of calc (required_scopes defaults to every scope): always added.
    expect(String(r.token?.json.scope).split(' ').sort()).toEqual(['calculate', 'read']);
    expect(decodeJwt(String(r.token?.json.access_token)).scope).toBe('read calculate');
  });

  test('required_scopes narrower than scopes: the default is the required set, optional scopes only when asked', async () => {
    const { gw } = await securityWorld({}, {}, (backend) => ({
      calc: { name: 'Calculator', url: backend, oauth_provider: 'myidp', scopes: ['read', 'write'], required_scopes: ['read'] },
    }));
    const none = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/calc/mcp` });
    expect(none.token?.json.scope).toBe('read');
    const asked = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/calc/mcp`, scope: 'write' });
    expect(asked.token?.json.scope).toBe('read write');
  });
});

describe('P1: one resource per authorization', () => {
  test('P1: a second resource is refused with invalid_target before any page, and no token for it can be had', async () => {
    const { gw } = await securityWorld({}, {}, services);
    // First an approved, remembered consent for calc.
    const first = await authorizeAndRedeem(gw.url, { resource: `${gw.url}/calc/mcp`, scope: 'read' });
    expect(first.token?.status).toBe(200);
    const q = new URLSearchParams({
      response_type: 'code',
      client_id: first.clientId,
      redirect_uri: REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 's',
      scope: 'read admin',
    });
    q.append('resource', `${gw.url}/calc/mcp`);
    q.append('resource', `${gw.url}/admin/mcp`);
    const res = await fetch(`${gw.url}/oauth/authorize?${q}`, { redirect: 'manual' });
    const location = new URL(res.headers.get('location')!, gw.url);
    expect(location.origin + location.pathname).toBe(REDIRECT);
    expect(location.searchParams.get('error')).toBe('invalid_target');
    expect(location.searchParams.get('error_description')).toContain('one resource per authorization request');
    expect(location.searchParams.get('code')).toBeNull();
  });

  test('P1: the same resource named twice is one resource (accepted)', async () => {
    const { gw } = await securityWorld({}, {}, services);
    const clientId = String((await register(gw.url)).json.client_id);
    const url = new URL(authorizeUrl(gw.url, { client_id: clientId }));
    url.searchParams.append('resource', `${gw.url}/calc/mcp`);
    const walk = await new BrowserDriver().walk(url, REDIRECT);
    const code = walk.redirect?.searchParams.get('code');
    expect(code).toBeTruthy();
    const token = await postForm(`${gw.url}/oauth/token`, {
      grant_type: 'authorization_code',
      code: code!,
      redirect_uri: REDIRECT,
      code_verifier: VERIFIER,
      client_id: clientId,
    });
    expect(token.status).toBe(200);
    expect(gidOf(String(token.json.access_token))).toBeTruthy();
  });
});

describe('P9: prompt=consent', () => {
  test('P9: prompt=consent shows the consent page although consent is remembered; without it no page', async () => {
    const { gw } = await securityWorld({}, {}, services);
    const clientId = String((await register(gw.url)).json.client_id);
    const browser = new BrowserDriver();
    const first = await browser.walk(new URL(authorizeUrl(gw.url, { client_id: clientId })), REDIRECT);
    expect(first.pages).toEqual(['consent']);
    const remembered = await browser.walk(new URL(authorizeUrl(gw.url, { client_id: clientId })), REDIRECT);
    expect(remembered.pages).toEqual([]);
    expect(remembered.redirect?.searchParams.get('code')).toBeTruthy();
    const forced = await browser.walk(new URL(authorizeUrl(gw.url, { client_id: clientId, prompt: 'consent' })), REDIRECT);
    expect(forced.pages).toEqual(['consent']);
    expect(forced.redirect?.searchParams.get('code')).toBeTruthy();
    browser.consent = 'deny';
    const denied = await browser.walk(new URL(authorizeUrl(gw.url, { client_id: clientId, prompt: 'consent' })), REDIRECT);
    expect(denied.pages).toEqual(['consent']);
    expect(denied.redirect?.searchParams.get('error')).toBe('access_denied');
  });
});
