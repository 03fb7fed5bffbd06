/**
 * A browser-hosted MCP client on another origin (issue 11 §4): a page on http://localhost:PORT calls the
 * gateway on http://127.0.0.1:PORT with fetch(), as such a client does: protected-resource and
 * authorization-server metadata (with MCP-Protocol-Version, so preflighted), JSON registration
 * (preflighted), then, back on its own redirect URI, the token exchange and a revocation. The browser,
 * not a test double, decides what the page may read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, onTestFinished, test } from 'vitest';
import { BROWSER_GATEWAY_LIMITS, BROWSER_TIMEOUT, describeBrowsers, useBrowser, type WatchedPage } from '../helpers/browser.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { gatewayProvider, startUpstreamIdp } from '../helpers/upstream-idp.js';

/** The client's own origin: a loopback server on `localhost` (another origin than the gateway's 127.0.0.1). */
async function startClientSite(): Promise<{ origin: string; redirectUri: string; hits: URL[] }> {
  const hits: URL[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(new URL(req.url ?? '/', 'http://localhost'));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Browser MCP client</title><p>client</p>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const origin = `http://localhost:${(server.address() as AddressInfo).port}`;
  return { origin, redirectUri: `${origin}/callback`, hits };
}

interface FetchOutcome {
  ok: boolean;
  status?: number;
  body?: unknown;
  /** The TypeError text when the browser refused to let the page read the response (CORS). */
  blocked?: string;
}

/** fetch() run inside the page (its origin, its CORS rules); returns what the page could read. */
async function pageFetch(
  w: WatchedPage,
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<FetchOutcome> {
  return w.page.evaluate(
    async (u: string, i: { method?: string; headers?: Record<string, string>; body?: string }) => {
      try {
        const res = await fetch(u, { ...i, mode: 'cors' });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        return { ok: res.ok, status: res.status, body };
      } catch (err) {
        return { ok: false, blocked: String(err) };
      }
    },
    url,
    init,
  );
}

const PROTOCOL = { 'mcp-protocol-version': '2025-06-18' };

async function world(allowOrigin: boolean) {
  const site = await startClientSite();
  const idp = await startUpstreamIdp();
  const backend = await startMcpBackend();
  const gw = await startGateway(() => ({
    oauth_providers: {
      myidp: gatewayProvider(idp, ['openid', 'email', 'profile']),
    },
    mcp_services: { calc: { name: 'Calculator', url: backend.url, oauth_provider: 'myidp', scopes: ['mcp:tools'] } },
    cors: { allow_origins: allowOrigin ? [site.origin] : ['https://someone-else.example'] },
    ...BROWSER_GATEWAY_LIMITS,
  }));
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  return { site, gw };
}

/** The person's part: the browser follows the authorization request, Approve, the IdP, back to the site. */
async function signIn(w: WatchedPage, gw: StartedGateway, clientId: string, redirectUri: string, hits: URL[]) {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${gw.url}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'mcp:tools',
    state: 'cors-state',
    resource: `${gw.url}/calc/mcp`,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  await w.page.goto(url.href, { waitUntil: 'load' });
  await Promise.all([w.page.waitForNavigation({ waitUntil: 'load' }), w.page.click('button[value="approve"]')]);
  const deadline = Date.now() + BROWSER_TIMEOUT / 2;
  while (!hits.some((h) => h.pathname === '/callback') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const back = hits.find((h) => h.pathname === '/callback');
  if (!back) throw new Error(`the sign-in did not come back to ${redirectUri}; the browser is at ${w.page.url()}`);
  expect(w.page.url().startsWith(redirectUri)).toBe(true);
  return { code: back.searchParams.get('code')!, verifier };
}

const tokenBody = (clientId: string, code: string, verifier: string, redirectUri: string, gw: StartedGateway) =>
  new URLSearchParams({
    grant_type: 'authorization_code',
    client_id: clientId,
    code,
    code_verifier: verifier,
    redirect_uri: redirectUri,
    resource: `${gw.url}/calc/mcp`,
  }).toString();

describeBrowsers('browser-hosted MCP client on another origin (CORS)', (name) => {
  const rb = useBrowser(name);

  test(
    'origin in cors.allow_origins: discovery, registration, token exchange and revocation are readable',
    { timeout: BROWSER_TIMEOUT * 2 },
    async () => {
      const { site, gw } = await world(true);
      const w = await rb.newPage();
      onTestFinished(() => w.close());
      await w.page.goto(`${site.origin}/app`, { waitUntil: 'load' });

      const prm = await pageFetch(w, `${gw.url}/.well-known/oauth-protected-resource/calc/mcp`, { headers: PROTOCOL });
      expect(prm).toMatchObject({ ok: true, body: { resource: `${gw.url}/calc/mcp`, authorization_servers: [gw.url] } });
      const as = await pageFetch(w, `${gw.url}/.well-known/oauth-authorization-server`, { headers: PROTOCOL });
      expect(as).toMatchObject({ ok: true, body: { issuer: gw.url } });
      const meta = as.body as { registration_endpoint: string; token_endpoint: string; revocation_endpoint: string };

      const reg = await pageFetch(w, meta.registration_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...PROTOCOL },
        body: JSON.stringify({
          client_name: 'Browser MCP client',
          redirect_uris: [site.redirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
        }),
      });
      expect(reg.blocked).toBeUndefined();
      expect(reg.status).toBe(201);
      const clientId = (reg.body as { client_id: string }).client_id;

      const { code, verifier } = await signIn(w, gw, clientId, site.redirectUri, site.hits);
      const tokens = await pageFetch(w, meta.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: tokenBody(clientId, code, verifier, site.redirectUri, gw),
      });
      expect(tokens.blocked).toBeUndefined();
      expect(tokens).toMatchObject({ ok: true, body: { token_type: 'Bearer' } });
      const { refresh_token } = tokens.body as { refresh_token: string };
      expect(refresh_token).toBeTruthy();

      const revoked = await pageFetch(w, meta.revocation_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: refresh_token, client_id: clientId }).toString(),
      });
      expect(revoked).toMatchObject({ ok: true, status: 200 });
      expect(w.cspViolations).toEqual([]);
    },
  );

  test(
    'origin not listed: preflighted discovery and registration are blocked by the browser, the token endpoint refuses it (the code stays usable)',
    { timeout: BROWSER_TIMEOUT * 2 },
    async () => {
      const { site, gw } = await world(false);
      const w = await rb.newPage();
      onTestFinished(() => w.close());
      await w.page.goto(`${site.origin}/app`, { waitUntil: 'load' });

      // Public documents stay readable by a simple GET (no credentials): they are public.
      expect(await pageFetch(w, `${gw.url}/.well-known/oauth-authorization-server`)).toMatchObject({ ok: true, body: { issuer: gw.url } });
      // With MCP-Protocol-Version (what the SDK sends) the preflight is refused: the browser blocks.
      expect((await pageFetch(w, `${gw.url}/.well-known/oauth-protected-resource/calc/mcp`, { headers: PROTOCOL })).blocked).toMatch(
        /TypeError/,
      );
      const reg = await pageFetch(w, `${gw.url}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'Browser MCP client', redirect_uris: [site.redirectUri], token_endpoint_auth_method: 'none' }),
      });
      expect(reg.blocked).toMatch(/TypeError/);

      // A client registered natively (no Origin), signed in in the browser.
      const native = await fetch(`${gw.url}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'native', redirect_uris: [site.redirectUri], token_endpoint_auth_method: 'none' }),
      });
      expect(native.status).toBe(201);
      const clientId = ((await native.json()) as { client_id: string }).client_id;
      const { code, verifier } = await signIn(w, gw, clientId, site.redirectUri, site.hits);

      // A form POST is a simple request: the browser sends it without a preflight. The gateway refuses it
      // (403) instead of spending the code, and the page cannot read the answer.
      const fromPage = await pageFetch(w, `${gw.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: tokenBody(clientId, code, verifier, site.redirectUri, gw),
      });
      expect(fromPage.blocked).toMatch(/TypeError/);
      const direct = await fetch(`${gw.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: site.origin },
        body: tokenBody(clientId, code, verifier, site.redirectUri, gw),
      });
      expect(direct.status).toBe(403);
      expect(await direct.json()).toMatchObject({
        error: 'invalid_request',
        error_description: expect.stringContaining('cors.allow_origins'),
      });
      // The code was not spent: the native exchange still works.
      const exchanged = await fetch(`${gw.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: tokenBody(clientId, code, verifier, site.redirectUri, gw),
      });
      expect(exchanged.status).toBe(200);
    },
  );
});
