/**
 * Several upstream identity providers in one gateway (issue 16 §1): two real IdPs (oidc-provider
 * instances), `corp` found by OpenID Connect discovery and `partner` a custom OAuth 2.0 provider with
 * explicit URLs; the chooser walked by the scripted browser; user ids `{provider}:{subject}` with no
 * implicit linking; `oauth_provider` as one name, a list, or omitted; `providers:` in policies; the
 * provider in the identity headers, a client-sent one stripped.
 */
import { decodeJwt } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { describe, expect, test } from 'vitest';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend, type McpBackend } from '../helpers/mcp-backend.js';
import { BrowserDriver, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { connectByDiscovery, textOf } from '../helpers/sdk-session.js';
import { bearer } from '../helpers/tokens.js';
import { ALICE, BOB, startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';
import { problems, testConfig } from '../helpers/config.js';

interface World {
  corp: UpstreamIdp;
  partner: UpstreamIdp;
  gw: StartedGateway;
  backend: McpBackend;
}

async function startWorld(services?: (backend: string) => Record<string, unknown>): Promise<World> {
  const corp = await startUpstreamIdp([ALICE, BOB]);
  const partner = await startUpstreamIdp([ALICE, BOB]);
  const backend = await startMcpBackend();
  const gw = await startGateway({
    oauth_providers: {
      corp: { issuer: corp.issuer, client_id: 'gw-corp', client_secret: 'corp-secret', scopes: ['openid', 'email', 'profile', 'groups'] },
      partner: {
        display_name: 'Partner Login',
        client_id: 'gw-partner',
        client_secret: 'partner-secret',
        authorization_url: `${partner.issuer}/auth`,
        token_url: `${partner.issuer}/token`,
        userinfo_url: `${partner.issuer}/me`,
        scopes: ['openid', 'email', 'profile', 'groups'],
      },
    },
    mcp_services: services?.(backend.url) ?? {
      calc: { name: 'Calculator', url: backend.url, scopes: ['mcp:tools'] },
      notes: { name: 'Notes', url: backend.url, oauth_provider: 'corp', scopes: ['notes:read'] },
      both: { name: 'Both', url: backend.url, oauth_provider: ['partner', 'corp'] },
      staff: { name: 'Staff', url: backend.url, policy: { providers: ['corp'], emails: ['bob@other.example'] } },
    },
  });
  const redirect = [`${gw.url}/oauth/callback`];
  corp.addClient({
    client_id: 'gw-corp',
    client_secret: 'corp-secret',
    redirect_uris: redirect,
    token_endpoint_auth_method: 'client_secret_post',
  });
  partner.addClient({
    client_id: 'gw-partner',
    client_secret: 'partner-secret',
    redirect_uris: redirect,
    token_endpoint_auth_method: 'client_secret_post',
  });
  return { corp, partner, gw, backend };
}

const chooserOf = (p: TestOAuthProvider) => {
  const i = p.lastWalk!.pages.indexOf('chooser');
  return p.lastWalk!.shown[i]!;
};

describe('several upstream providers', () => {
  test('a service open to both: consent, then the chooser; the chosen custom OAuth 2.0 provider signs in; the tool call carries partner:alice', async () => {
    const { gw, partner, corp } = await startWorld();
    const browser = new BrowserDriver();
    browser.provider = 'partner';
    const s = await connectByDiscovery(`${gw.url}/calc/mcp`, { browser });
    expect(s.provider.lastWalk?.pages).toEqual(['consent', 'chooser']);
    // The partner IdP handled the sign-in, the corp IdP was never visited.
    const hosts = s.provider.lastWalk!.visited.map((u) => u.origin);
    expect(hosts).toContain(partner.issuer);
    expect(hosts).not.toContain(corp.issuer);

    const page = chooserOf(s.provider);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<h1>Choose how to sign in</h1>');
    expect(page.body).toMatch(/<fieldset><legend>Sign in with<\/legend>/);
    expect(page.body).toContain('<button class="primary" autofocus type="submit" name="provider" value="corp">Sign in with corp</button>');
    expect(page.body).toContain('value="partner">Sign in with Partner Login</button>');
    expect(page.body).not.toMatch(/<script|<link|https?:\/\/(?!127\.0\.0\.1)/);
    // The same page headers as the other pages; form-action lists both providers' origins (Chromium checks redirects).
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain(corp.issuer);
    expect(csp).toContain(partner.issuer);
    expect(page.headers.get('cache-control')).toBe('no-store');

    const whoami = JSON.parse(textOf(await s.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoami).toMatchObject({ 'x-user-id': 'partner:alice', 'x-user-provider': 'partner', 'x-user-email': ALICE.email });
    await s.close();

    // A client-sent provider header never reaches the backend: the verified one replaces it.
    const { tokens } = await obtainToken(gw.url, 'calc', { browser: Object.assign(new BrowserDriver(), { provider: 'corp' }) });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'corp:alice', idp: 'corp' });
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/calc/mcp`), {
      requestInit: {
        headers: { authorization: `Bearer ${tokens.access_token}`, 'x-user-provider': 'partner', 'x-user-id': 'partner:root' },
      },
    });
    const client = new Client({ name: 'spoofer', version: '1.0.0' });
    await client.connect(transport);
    const seen = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })));
    expect(seen).toMatchObject({ 'x-user-id': 'corp:alice', 'x-user-provider': 'corp' });
    await client.close();
  });

  test('the chooser remembers the last choice in a cookie: offered first, focused, marked; another choice is still possible', async () => {
    const { gw } = await startWorld();
    const browser = new BrowserDriver();
    browser.provider = 'partner';
    const first = await obtainToken(gw.url, 'calc', { browser });
    const setCookie = chooserOf(first.provider).headers.getSetCookie();
    expect(setCookie).toEqual([]); // set by the choice (the POST), not by showing the page
    // Second authorization in the same browser after its gateway session ended (only the choice cookie is kept).
    browser.keepCookies(new URL(gw.url), (name) => name === 'gw-idp');
    const second = new TestOAuthProvider({ browser });
    browser.provider = 'corp';
    await obtainToken(gw.url, 'both', { provider: second });
    const page = chooserOf(second).body;
    expect(page.indexOf('value="partner"')).toBeLessThan(page.indexOf('value="corp"'));
    expect(page).toContain(
      '<button class="primary" autofocus type="submit" name="provider" value="partner">Sign in with Partner Login</button> <small>(last used)</small>',
    );
    expect(decodeJwt(second.tokens()!.access_token).sub).toBe('corp:alice');
  });

  test('a service with one provider goes straight there (no chooser); the same person at the other provider is another user', async () => {
    const { gw, partner } = await startWorld();
    const notes = await obtainToken(gw.url, 'notes');
    expect(notes.provider.lastWalk?.pages).toEqual(['consent']);
    expect(notes.provider.lastWalk!.visited.map((u) => u.origin)).not.toContain(partner.issuer);
    expect(decodeJwt(notes.tokens.access_token)).toMatchObject({ sub: 'corp:alice', idp: 'corp' });

    // Same browser, signed in as corp:alice; a service open to partner too: the session is reused (corp is offered).
    const both = await obtainToken(gw.url, 'both', { browser: notes.provider.browser });
    expect(both.provider.lastWalk?.pages).toEqual(['consent']);
    expect(decodeJwt(both.tokens.access_token).sub).toBe('corp:alice');

    // Alice at the partner IdP (same subject, same email) is not linked to corp:alice.
    const other = await obtainToken(gw.url, 'both', { chooseProvider: 'partner' });
    expect(decodeJwt(other.tokens.access_token)).toMatchObject({ sub: 'partner:alice', idp: 'partner', email: ALICE.email });
  });

  test('signed in through one provider, a service that accepts only the other signs the person in again there', async () => {
    const { gw, corp, partner } = await startWorld((url) => ({
      a: { name: 'A', url, oauth_provider: 'partner' },
      b: { name: 'B', url, oauth_provider: 'corp' },
    }));
    const first = await obtainToken(gw.url, 'a');
    expect(decodeJwt(first.tokens.access_token).sub).toBe('partner:alice');
    corp.nextUser = BOB;
    const second = await obtainToken(gw.url, 'b', { browser: first.provider.browser });
    // Consent, then the corp IdP; oidc-provider ends the partner session first (its session-switch form post).
    expect(second.provider.lastWalk?.pages).toEqual(['consent', 'return']);
    expect(second.provider.lastWalk!.visited.map((u) => u.pathname)).toContain('/oauth/logout/confirm');
    expect(second.provider.lastWalk!.visited.map((u) => u.origin)).toContain(corp.issuer);
    expect(decodeJwt(second.tokens.access_token).sub).toBe('corp:bob');
    expect(partner.issuer).not.toBe(corp.issuer);
  });

  test('policy providers: [corp] admits every corp user; a partner user only by another rule; the refusal names the policy', async () => {
    const { gw, corp, partner } = await startWorld();
    corp.nextUser = BOB;
    const ok = await obtainToken(gw.url, 'staff', { chooseProvider: 'corp' });
    expect(decodeJwt(ok.tokens.access_token).sub).toBe('corp:bob');
    partner.nextUser = ALICE;
    const provider = new TestOAuthProvider({ chooseProvider: 'partner' });
    await expect(obtainToken(gw.url, 'staff', { provider })).rejects.toMatchObject({
      oauthError: 'access_denied',
      description: expect.stringContaining("access policy of service 'staff'"),
    });
    partner.nextUser = BOB; // bob@other.example is listed by email
    const byEmail = await obtainToken(gw.url, 'staff', { chooseProvider: 'partner' });
    expect(decodeJwt(byEmail.tokens.access_token).sub).toBe('partner:bob');
  });

  test('the chooser refuses a provider the service does not offer and a forged form', async () => {
    const { gw } = await startWorld();
    const browser = new BrowserDriver();
    const provider = new TestOAuthProvider({ browser });
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toThrow(/ended on a page/);
    const page = provider.lastWalk!.finalPage!.body;
    const action = /action="([^"]+\/provider)"/.exec(page)![1]!;
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const post = (fields: Record<string, string>) =>
      browser.request(new URL(action, gw.url), {
        method: 'POST',
        body: new URLSearchParams(fields),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
    const unknown = await post({ csrf, provider: 'github' });
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('does not accept this sign-in');
    const forged = await post({ csrf: 'x', provider: 'corp' });
    expect(forged.status).toBe(403);
  });

  test('at the proxy: a token from a provider the service does not accept is refused, and /ready lists every provider', async () => {
    const { gw } = await startWorld();
    const res = await fetch(`${gw.url}/notes/mcp`, {
      method: 'POST',
      headers: {
        authorization: await bearer(gw, { service: 'notes', claims: { sub: 'partner:alice', idp: 'partner' } }),
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(res.status).toBe(403);
    const ready = (await (await fetch(`${gw.url}/ready`)).json()) as { identity_providers: Array<{ provider: string }> };
    expect(ready.identity_providers.map((p) => p.provider)).toEqual(['corp', 'partner']);
  });
});

describe('several providers: configuration', () => {
  const base = (
    services: string[],
    providers = ['  corp:', '    issuer: https://corp.example.com', '    client_id: a', '    client_secret: b'],
  ) =>
    [
      'issuer: https://gw.example.com',
      'session_secret: 0123456789abcdef0123456789abcdef0123',
      'oauth_providers:',
      ...providers,
      '  github:',
      '    client_id: c',
      '    client_secret: d',
      'mcp_services:',
      ...services,
    ].join('\n');

  test('several providers load; oauth_provider one name, a list, or omitted (all)', () => {
    const cfg = testConfig({
      oauth_providers: {
        corp: { issuer: 'https://corp.example.com', client_id: 'a', client_secret: 'b' },
        github: { client_id: 'c', client_secret: 'd' },
      },
      mcp_services: {
        a: { name: 'A', url: 'http://127.0.0.1:9/mcp' },
        b: { name: 'B', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'github' },
        c: { name: 'C', url: 'http://127.0.0.1:9/mcp', oauth_provider: ['github', 'corp'] },
      },
    });
    expect(Object.keys(cfg.oauth_providers)).toEqual(['corp', 'github']);
  });

  test('an unknown name in the list is reported at its entry; a repeated one too', () => {
    const found = problems(
      base(['  calc:', '    name: C', '    url: http://127.0.0.1:9/mcp', '    oauth_provider: [github, okta, github]']),
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          path: 'mcp_services.calc.oauth_provider.1',
          message: expect.stringContaining(
            "specifies OAuth provider 'okta', which is not under oauth_providers (configured: corp, github)",
          ),
        }),
        expect.objectContaining({ path: 'mcp_services.calc.oauth_provider.2', message: "provider 'github' is listed twice" }),
      ]),
    );
  });

  test("with a single provider the original's mismatch message is kept", () => {
    const text = [
      'issuer: https://gw.example.com',
      'session_secret: 0123456789abcdef0123456789abcdef0123',
      'oauth_providers:',
      '  github: {client_id: c, client_secret: d}',
      'mcp_services:',
      '  calc: {name: C, url: "http://127.0.0.1:9/mcp", oauth_provider: google}',
    ].join('\n');
    expect(problems(text)).toEqual([
      expect.objectContaining({
        path: 'mcp_services.calc.oauth_provider',
        line: 6,
        message: "Service 'calc' specifies OAuth provider 'google' but only 'github' is configured. Set oauth_provider: github",
      }),
    ]);
  });

  test("provider names: 'client' is reserved for machine clients, ':' is refused", () => {
    const found = problems(
      base(
        ['  calc: {name: C, url: "http://127.0.0.1:9/mcp"}'],
        [
          '  client: {client_id: a, client_secret: b, issuer: "https://x.example.com"}',
          '  "a:b": {client_id: a, client_secret: b, issuer: "https://y.example.com"}',
        ],
      ),
    );
    expect(found.map((p) => p.path)).toEqual(expect.arrayContaining(['oauth_providers.client', 'oauth_providers.a:b']));
    expect(found.find((p) => p.path === 'oauth_providers.client')?.message).toContain(
      "reserved: machine clients (registration.clients) have user ids 'client:{client_id}'",
    );
  });
});
