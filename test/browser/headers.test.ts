/**
 * The headers behind the real-browser tests, checked exactly (no browser needed): the per-page CSP
 * form-action (html.ts) for every kind of redirect URI and every page with a form, and the CORS answers
 * of the authorization server's endpoints (src/http/cors.ts) for allowed, unlisted and absent origins.
 */
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { cspSource, pageHeaders, PAGE_HEADERS } from '../../src/authz/html.js';
import { corsClassOf } from '../../src/http/cors.js';
import { startGateway } from '../helpers/gateway.js';
import { BrowserDriver, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { BOB } from '../helpers/upstream-idp.js';
import { startWorld } from '../authz/setup.js';

const formAction = (csp: string | null) => /form-action ([^;]*)/.exec(csp ?? '')?.[1]?.split(' ');

describe('page CSP form-action', () => {
  test('CSP sources: origin for http(s), scheme for custom schemes, nothing for unsafe or unparsable values', () => {
    expect(cspSource('http://127.0.0.1:33418/callback?x=1')).toBe('http://127.0.0.1:33418');
    expect(cspSource('https://App.Example.com:443/cb')).toBe('https://app.example.com');
    expect(cspSource('http://localhost/callback')).toBe('http://localhost');
    // CSP cannot name an IPv6 literal (both browsers ignore such a source): scheme and port, any host.
    expect(cspSource('http://[::1]:8080/cb')).toBe('http://*:8080');
    expect(cspSource('http://[::1]/cb')).toBe('http://*');
    expect(cspSource('cursor://anysphere.cursor-retrieval/oauth/callback')).toBe('cursor:');
    expect(cspSource('com.example.app:/oauth2redirect')).toBe('com.example.app:');
    // The URL parser keeps these characters in a host; in a CSP header they would end or split the directive.
    expect(cspSource("http://a;script-src 'unsafe-inline'/")).toBeUndefined();
    expect(cspSource('http://a,b/')).toBeUndefined();
    expect(cspSource("http://a'b/")).toBeUndefined();
    for (const bad of ['javascript:alert(1)', 'data:text/html,x', 'blob:http://x/1', 'not a url', ''])
      expect(cspSource(bad)).toBeUndefined();
    expect(formAction(PAGE_HEADERS['content-security-policy']!)).toEqual(["'self'"]);
    const h = pageHeaders(['http://127.0.0.1:1/cb', undefined, 'http://127.0.0.1:1/other', 'cursor://x/y']);
    expect(formAction(h['content-security-policy']!)).toEqual(["'self'", 'http://127.0.0.1:1', 'cursor:']);
    expect(h['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(h['content-security-policy']).toContain("default-src 'none'");
    expect(h).toMatchObject({ 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store' });
  });

  test('consent page: the client redirect URI origin and the IdP authorization origin; "Return to the application": the redirect URI', async () => {
    const { idp, gw } = await startWorld();
    const provider = new TestOAuthProvider({ redirectUri: 'http://127.0.0.1:49321/callback' });
    await obtainToken(gw.url, 'calc', { provider });
    const consent = provider.lastWalk!.shown[0]!;
    expect(formAction(consent.headers.get('content-security-policy'))).toEqual(["'self'", 'http://127.0.0.1:49321', idp.issuer]);

    // Bob is not allowed to use weather: the error page's form returns the error to the client.
    idp.nextUser = BOB;
    const denied = new TestOAuthProvider({ redirectUri: 'http://127.0.0.1:49322/callback' });
    await expect(obtainToken(gw.url, 'weather', { provider: denied })).rejects.toMatchObject({ oauthError: 'access_denied' });
    expect(denied.lastWalk!.pages).toEqual(['consent', 'return']);
    expect(formAction(denied.lastWalk!.shown[1]!.headers.get('content-security-policy'))).toEqual(["'self'", 'http://127.0.0.1:49322']);
  });

  test('a known user (consent prompt, no IdP on the way): the consent page lists only the client', async () => {
    const { gw } = await startWorld();
    const first = new TestOAuthProvider();
    await obtainToken(gw.url, 'calc', { provider: first });
    // Same browser (signed in), another client: consent is asked again, the IdP is not visited.
    const second = new TestOAuthProvider({ browser: first.browser, redirectUri: 'http://127.0.0.1:49323/callback' });
    await obtainToken(gw.url, 'calc', { provider: second });
    expect(second.lastWalk!.pages).toEqual(['consent']);
    expect(formAction(second.lastWalk!.shown[0]!.headers.get('content-security-policy'))).toEqual(["'self'", 'http://127.0.0.1:49323']);
  });
});

test(
  'an IdP that does not answer does not hold the consent page: shown within the cap, without the IdP origin',
  { timeout: 30_000 },
  async () => {
    // Accepts connections and never answers (discovery would wait for its own 10 s timeout).
    const held: Socket[] = [];
    const silent = createServer((sock) => void held.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      for (const sock of held) sock.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const issuer = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const gw = await startGateway({
      oauth_providers: { myidp: { issuer, client_id: 'gateway', client_secret: 'gateway-secret', allow_insecure_http: true } },
      mcp_services: { calc: { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'myidp', scopes: ['mcp:tools'] } },
    });
    const reg = await fetch(`${gw.url}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:49324/callback'] }),
    });
    const { client_id } = (await reg.json()) as { client_id: string };
    const authorize = new URL(`${gw.url}/oauth/authorize`);
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id,
      redirect_uri: 'http://127.0.0.1:49324/callback',
      scope: 'mcp:tools',
      resource: `${gw.url}/calc/mcp`,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 's',
    }).toString();
    const browser = new BrowserDriver();
    let res = await browser.request(authorize);
    const started = Date.now();
    for (let hops = 0; res.status >= 300 && res.status < 400 && hops < 5; hops++)
      res = await browser.request(new URL(res.headers.get('location')!, gw.url));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Allow access to Calculator');
    expect(Date.now() - started).toBeLessThan(8000);
    expect(formAction(res.headers.get('content-security-policy'))).toEqual(["'self'", 'http://127.0.0.1:49324']);
  },
);

describe('CORS on the authorization server', () => {
  const allowed = 'http://localhost:5173';
  const corsGateway = (cors: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    startGateway({
      oauth_providers: { dev: {} },
      mcp_services: { calc: { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev', scopes: ['mcp:tools'] } },
      cors,
      ...extra,
    });
  const preflight = (url: string, origin: string | undefined, method = 'POST', headers = 'content-type, mcp-protocol-version') =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { ...(origin ? { origin } : {}), 'access-control-request-method': method, 'access-control-request-headers': headers },
    });

  test('paths: discovery and JWKS are public; registration, token, revocation, introspection take credentials; nothing else', () => {
    for (const p of [
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/calc/mcp',
      '/oauth/jwks',
    ])
      expect(corsClassOf(p)).toBe('public');
    for (const p of ['/oauth/register', '/oauth/register/abc', '/oauth/token', '/oauth/revoke', '/oauth/introspect'])
      expect(corsClassOf(p)).toBe('credentialed');
    for (const p of ['/calc/mcp', '/oauth/authorize', '/interaction/x', '/.well-known/oauth-protected-resourcex', '/oauth/tokens'])
      expect(corsClassOf(p)).toBeUndefined();
  });

  test('allowed origin: every endpoint answers the preflight and echoes the origin; others get 403 naming the rule', async () => {
    const gw = await corsGateway({ allow_origins: [allowed] });
    for (const path of [
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-protected-resource/calc/mcp',
      '/oauth/register',
      '/oauth/token',
      '/oauth/revoke',
    ]) {
      const ok = await preflight(gw.url + path, allowed);
      expect(ok.status, path).toBe(204);
      expect(ok.headers.get('access-control-allow-origin')).toBe(allowed);
      expect(ok.headers.get('access-control-allow-headers')).toContain('mcp-protocol-version');
      expect(ok.headers.get('access-control-allow-methods')).toContain('POST');
      expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
      expect(ok.headers.get('vary')).toContain('Origin');
      for (const origin of ['http://localhost:5174', 'http://localhost:5173.evil.example', 'null', undefined]) {
        const no = await preflight(gw.url + path, origin);
        expect(no.status, `${path} ${origin}`).toBe(403);
        expect(no.headers.get('access-control-allow-origin')).toBeNull();
        expect(((await no.json()) as { error_description: string }).error_description).toContain('cors.allow_origins');
      }
    }
    // Actual requests: the allowed origin's responses carry its origin; a simple GET of a public document is `*`.
    const meta = await fetch(`${gw.url}/.well-known/oauth-authorization-server`, { headers: { origin: allowed } });
    expect(meta.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(meta.headers.get('vary')).toContain('Origin');
    for (const origin of [undefined, 'https://elsewhere.example']) {
      const pub = await fetch(`${gw.url}/.well-known/oauth-authorization-server`, { headers: origin ? { origin } : {} });
      expect(pub.status).toBe(200);
      expect(pub.headers.get('access-control-allow-origin')).toBe('*');
      expect(pub.headers.get('vary')).toContain('Origin');
      const jwks = await fetch(`${gw.url}/oauth/jwks`, { headers: origin ? { origin } : {} });
      expect(jwks.headers.get('access-control-allow-origin')).toBe('*');
    }
    const reg = await fetch(`${gw.url}/oauth/register`, {
      method: 'POST',
      headers: { origin: allowed, 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:1/cb'] }),
    });
    expect(reg.status).toBe(201);
    expect(reg.headers.get('access-control-allow-origin')).toBe(allowed);
    // oidc-provider's own CORS answered any origin here; now the unlisted origin is refused before it runs.
    for (const path of ['/oauth/token', '/oauth/revoke', '/oauth/register']) {
      const res = await fetch(gw.url + path, {
        method: 'POST',
        headers: { origin: 'https://elsewhere.example', 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=authorization_code&code=x',
      });
      expect(res.status, path).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(await res.json()).toMatchObject({ error: 'invalid_request' });
    }
    // Without Origin (native clients): unchanged, oidc-provider answers.
    const native = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&code=x&client_id=nobody',
    });
    expect(native.status).toBe(401);
    expect(await native.json()).toMatchObject({ error: 'invalid_client' });
  });

  test('`*`: any origin, never with credentials; exact origins with allow_credentials get them', async () => {
    const any = await corsGateway({ allow_origins: ['*'], allow_credentials: true });
    const a = await preflight(`${any.url}/oauth/token`, 'https://anywhere.example');
    expect(a.status).toBe(204);
    expect(a.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(a.headers.get('access-control-allow-credentials')).toBeNull();
    const exact = await corsGateway({ allow_origins: [allowed], allow_credentials: true });
    const e = await preflight(`${exact.url}/oauth/token`, allowed);
    expect(e.headers.get('access-control-allow-credentials')).toBe('true');
  });

  test('registration off: the preflight is answered, the POST says why in a response the page can read', async () => {
    const gw = await corsGateway({ allow_origins: [allowed] }, { registration: { mode: 'off' } });
    expect((await preflight(`${gw.url}/oauth/register`, allowed)).status).toBe(204);
    const res = await fetch(`${gw.url}/oauth/register`, {
      method: 'POST',
      headers: { origin: allowed, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(404);
    expect(res.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(((await res.json()) as { error_description: string }).error_description).toContain('registration is disabled');
  });
});
