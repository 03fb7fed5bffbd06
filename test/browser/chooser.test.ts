/**
 * The sign-in chooser in real browsers (issue 16 §1): consent → chooser → the chosen provider (one OpenID
 * provider by discovery, one custom OAuth 2.0 provider) → the client's redirect URI, with the page
 * protections each page sends and no CSP violation (Chromium checks form-action on the redirects after
 * the chooser's form post, so the policy must list both providers' origins).
 */
import { expect, onTestFinished, test } from 'vitest';
import { BROWSER_GATEWAY_LIMITS, BROWSER_TIMEOUT, describeBrowsers, useBrowser } from '../helpers/browser.js';
import { finishAndCallTool, mcpClientStart, startRedirectTarget, waitForRedirect } from '../helpers/browser-flow.js';
import { startGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { startUpstreamIdp } from '../helpers/upstream-idp.js';

describeBrowsers('real-browser provider chooser', (name) => {
  const rb = useBrowser(name);

  test(
    'consent → chooser → the custom OAuth 2.0 provider → the client; the choice is remembered',
    { timeout: BROWSER_TIMEOUT * 2 },
    async () => {
      const corp = await startUpstreamIdp();
      const partner = await startUpstreamIdp();
      const backend = await startMcpBackend();
      const gw = await startGateway(() => ({
        oauth_providers: {
          corp: { issuer: corp.issuer, client_id: 'gw-corp', client_secret: 'corp-secret', scopes: ['openid', 'email', 'profile'] },
          partner: {
            display_name: 'Partner Login',
            client_id: 'gw-partner',
            client_secret: 'partner-secret',
            authorization_url: `${partner.issuer}/auth`,
            token_url: `${partner.issuer}/token`,
            userinfo_url: `${partner.issuer}/me`,
            scopes: ['openid', 'email', 'profile'],
          },
        },
        mcp_services: { calc: { name: 'Calculator', url: backend.url, scopes: ['mcp:tools'] } },
        ...BROWSER_GATEWAY_LIMITS,
      }));
      for (const [idp, id, secret] of [
        [corp, 'gw-corp', 'corp-secret'],
        [partner, 'gw-partner', 'partner-secret'],
      ] as const) {
        idp.addClient({
          client_id: id,
          client_secret: secret,
          redirect_uris: [`${gw.url}/oauth/callback`],
          token_endpoint_auth_method: 'client_secret_post',
        });
      }
      const target = await startRedirectTarget();
      const started = await mcpClientStart(gw, 'calc', target.uri);

      const w = await rb.newPage();
      onTestFinished(() => w.close());
      await w.page.goto(started.authorizationUrl.href, { waitUntil: 'load' });
      const chooser = w.page.waitForResponse((r) => r.url().endsWith('/provider') && r.request().method() === 'GET');
      await Promise.all([w.page.waitForNavigation({ waitUntil: 'load' }), w.page.click('button[value="approve"]')]);
      const res = await chooser;
      const csp = res.headers()['content-security-policy'] ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toMatch(new RegExp(`form-action 'self' [^;]*${corp.issuer}`));
      expect(csp).toMatch(new RegExp(`form-action [^;]*${partner.issuer}`));
      expect(await w.page.title()).toBe('Choose how to sign in');
      // Accessible names of the choices, as a screen reader announces them; the first one has the focus.
      const labels = await w.page.$$eval('fieldset button', (bs) => bs.map((b) => b.textContent));
      expect(labels).toEqual(['Sign in with corp', 'Sign in with Partner Login']);
      expect(await w.page.$eval('legend', (l) => l.textContent)).toBe('Sign in with');
      expect(await w.page.$eval('button[autofocus]', (b) => b.getAttribute('value'))).toBe('corp');

      await w.page.click('button[value="partner"]');
      const arrived = await waitForRedirect(w, target.hits, 'the chooser');
      expect(arrived.searchParams.get('state')).toBe(started.state);
      const code = arrived.searchParams.get('code');
      expect(code).toBeTruthy();
      expect(w.cspViolations).toEqual([]);
      const who = await finishAndCallTool(started, code!, target.uri);
      expect(JSON.parse(who.text)).toMatchObject({ 'x-user-id': 'partner:alice', 'x-user-provider': 'partner' });

      const cookies = await w.page.cookies(gw.url);
      expect(cookies.find((c) => c.name === 'gw-idp')).toMatchObject({ value: 'partner', httpOnly: true, sameSite: 'Lax', path: '/' });
    },
  );
});
