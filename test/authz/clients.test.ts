import { describe, expect, test } from 'vitest';
import { BrowserDriver, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { controlledClock } from '../helpers/clock.js';
import { registeredClientId } from '../../src/authz/registration.js';
import { startWorld } from './setup.js';

const REDIRECT = 'http://127.0.0.1:49152/callback';
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function post(url: string, body: Record<string, string> | string, headers: Record<string, string> = {}) {
  const json = typeof body === 'string';
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': json ? 'application/json' : 'application/x-www-form-urlencoded', ...headers },
    body: json ? body : new URLSearchParams(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

describe('confidential clients', () => {
  test('static client with client_secret_basic: full flow through the SDK, then refresh with HTTP Basic', async () => {
    const { gw } = await startWorld({
      clients: [
        {
          client_id: 'static-basic',
          client_secret: 'static-basic-secret',
          client_name: 'Static Basic',
          redirect_uris: [REDIRECT],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
    });
    const provider = new TestOAuthProvider({
      clientInformation: {
        client_id: 'static-basic',
        client_secret: 'static-basic-secret',
        token_endpoint_auth_method: 'client_secret_basic',
      },
    });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const refreshed = await post(
      `${gw.url}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! },
      { authorization: basic('static-basic', 'static-basic-secret') },
    );
    expect(refreshed.status).toBe(200);
    // RFC 6749 §5.2: a wrong secret over Basic is 401 invalid_client with a WWW-Authenticate challenge.
    const wrong = await post(
      `${gw.url}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: String(refreshed.json.refresh_token) },
      { authorization: basic('static-basic', 'wrong-secret') },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toBe('invalid_client');
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic/i);
  });

  test('DCR confidential client (client_secret_basic): secret issued once, used by the SDK at the token endpoint', async () => {
    const { gw } = await startWorld();
    const provider = new TestOAuthProvider({ clientMetadata: { token_endpoint_auth_method: 'client_secret_basic' } });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const info = provider.clientInformation()!;
    expect(typeof info.client_secret).toBe('string');
    const refreshed = await post(
      `${gw.url}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! },
      { authorization: basic(info.client_id, info.client_secret!) },
    );
    expect(refreshed.status).toBe(200);
    const noSecret = await post(`${gw.url}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(refreshed.json.refresh_token),
      client_id: info.client_id,
    });
    expect(noSecret.status).toBe(401);
  });
});

describe('registration modes', () => {
  test('mode off: /oauth/register answers 404 with an OAuth error and the metadata has no registration_endpoint', async () => {
    const { gw } = await startWorld({ registration: { mode: 'off' } });
    const md = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(md.registration_endpoint).toBeUndefined();
    const res = await post(`${gw.url}/oauth/register`, JSON.stringify({ redirect_uris: [REDIRECT] }));
    expect(res.status).toBe(404);
    expect(res.json.error).toBe('invalid_request');
    expect(String(res.json.error_description)).toContain('disabled');
  });

  test('mode token: no or a wrong initial access token is 401 invalid_token; the right one registers (201)', async () => {
    const iat = 'initial-access-token-0123456789abcdef';
    const { gw } = await startWorld({ registration: { mode: 'token', initial_access_token: iat } });
    const body = JSON.stringify({ redirect_uris: [REDIRECT] });
    for (const headers of [{}, { authorization: 'Bearer wrong-token' }] as Array<Record<string, string>>) {
      const res = await post(`${gw.url}/oauth/register`, body, headers);
      expect(res.status).toBe(401);
      expect(res.json.error).toBe('invalid_token');
    }
    const ok = await post(`${gw.url}/oauth/register`, body, { authorization: `Bearer ${iat}` });
    expect(ok.status).toBe(201);
    expect(typeof ok.json.client_id).toBe('string');
  });

  test('registration.client_ttl: a registered client expires', async () => {
    const { gw } = await startWorld({ registration: { client_ttl: 1 } });
    const clock = controlledClock();
    const reg = await post(`${gw.url}/oauth/register`, JSON.stringify({ redirect_uris: [REDIRECT] }));
    expect(reg.status).toBe(201);
    const clientId = String(reg.json.client_id);
    const authorize = () =>
      fetch(
        `${gw.url}/oauth/authorize?${new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', resource: `${gw.url}/calc/mcp` })}`,
        { redirect: 'manual' },
      );
    expect((await authorize()).status).toBe(303);
    clock.elapse(1300);
    const expired = await authorize();
    expect(expired.status).toBe(400);
    expect(expired.headers.get('location')).toBeNull();
    expect(await expired.text()).toContain('invalid_client');
  });
});

describe('consent page security', () => {
  async function openConsent(gw: string) {
    const reg = await post(`${gw}/oauth/register`, JSON.stringify({ redirect_uris: [REDIRECT], client_name: 'Sec Test' }));
    const browser = new BrowserDriver();
    const start = new URL(
      `${gw}/oauth/authorize?${new URLSearchParams({ client_id: String(reg.json.client_id), response_type: 'code', redirect_uri: REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 'st', resource: `${gw}/calc/mcp` })}`,
    );
    const first = await browser.request(start);
    const interaction = new URL(first.headers.get('location')!, gw);
    const page = await browser.request(interaction);
    return { browser, interaction, page, html: await page.text() };
  }

  test('security headers: CSP frame-ancestors none, X-Frame-Options DENY, no-referrer, no-store', async () => {
    const { gw } = await startWorld();
    const { page, html } = await openConsent(gw.url);
    expect(page.status).toBe(200);
    expect(html).toContain('Sec Test');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-store');
  });

  test('a decision with a wrong or missing CSRF token is refused (403 page) and issues no code', async () => {
    const { gw } = await startWorld();
    const { browser, interaction, html } = await openConsent(gw.url);
    const decision = new URL(`${interaction.pathname}/decision`, gw.url);
    for (const body of [{ action: 'approve' }, { action: 'approve', csrf: 'forged-token' }] as Array<Record<string, string>>) {
      const res = await browser.request(decision, {
        method: 'POST',
        body: new URLSearchParams(body),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(res.status).toBe(403);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(await res.text()).toContain('Request refused');
    }
    // The right token from another browser (no interaction cookie) is not accepted either.
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    const stranger = await new BrowserDriver().request(decision, {
      method: 'POST',
      body: new URLSearchParams({ action: 'approve', csrf }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(stranger.status).toBeGreaterThanOrEqual(400);
    expect(stranger.status).toBeLessThan(500);
    expect(stranger.headers.get('location')).toBeNull();
    // Nothing was decided: the interaction still shows the consent page.
    const again = await browser.request(interaction);
    expect(again.status).toBe(200);
    expect(await again.text()).toContain('/decision');
  });
});

describe('introspection and revocation belong to the token’s client', () => {
  test('another client cannot introspect (active=false) or revoke (no effect) someone else’s token', async () => {
    const { gw } = await startWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const owner = provider.clientInformation()!.client_id;
    const other = String((await post(`${gw.url}/oauth/register`, JSON.stringify({ redirect_uris: [REDIRECT] }))).json.client_id);
    expect((await post(`${gw.url}/oauth/introspect`, { token: tokens.refresh_token!, client_id: other })).json).toEqual({ active: false });
    const revoke = await post(`${gw.url}/oauth/revoke`, { token: tokens.refresh_token!, client_id: other });
    expect(revoke.status).toBe(200);
    expect((await post(`${gw.url}/oauth/introspect`, { token: tokens.refresh_token!, client_id: owner })).json.active).toBe(true);
    const gid = String(JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()).gid);
    expect(gw.ctx.revocations.isRevoked(gid)).toBe(false);
  });
});

describe('registered client ids', () => {
  test('128 random bits in base64url, never starting with - (the command line would take it for an option)', async () => {
    const { gw } = await startWorld();
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await post(`${gw.url}/oauth/register`, JSON.stringify({ redirect_uris: [REDIRECT], client_name: `c${i}` }));
      expect(res.status).toBe(201);
      ids.add(String(res.json.client_id));
    }
    // Without the rule, one draw in 64 starts with '-': 20,000 draws all miss it with probability ~1e-137.
    for (let i = 0; i < 20_000; i++) ids.add(registeredClientId());
    expect(ids.size).toBe(20_020);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  });
});
