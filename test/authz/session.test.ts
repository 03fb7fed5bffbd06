/**
 * P10 (issue 12): the gateway's browser sign-in session has a bounded lifetime (`tokens.session_ttl`)
 * and a sign-out (`/oauth/logout`); after either, the next authorization goes through the upstream IdP
 * again, so a person removed from a group there no longer passes the group policy at sign-in.
 */
import { describe, expect, test } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { gatewayProvider, type IdpUser, startUpstreamIdp } from '../helpers/upstream-idp.js';
import { authorizeUrl, register, REDIRECT } from '../security/world.js';

async function world(tokens: Record<string, unknown> = {}) {
  const carol: IdpUser = { sub: 'carol', email: 'carol@example.com', name: 'Carol', groups: ['mcp-users'] };
  const idp = await startUpstreamIdp([carol]);
  const gw = await startGateway(() => ({
    oauth_providers: {
      myidp: gatewayProvider(idp, ['openid', 'email', 'profile', 'groups']),
    },
    mcp_services: {
      calc: {
        name: 'Calculator',
        url: 'http://127.0.0.1:9/mcp',
        oauth_provider: 'myidp',
        scopes: ['read'],
        policy: { groups: ['mcp-users'] },
      },
    },
    rate_limits: { enabled: false },
    tokens,
  }));
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  const clientId = String((await register(gw.url)).json.client_id);
  return { idp, gw, carol, clientId, start: () => new URL(authorizeUrl(gw.url, { client_id: clientId })) };
}

const visitedIdp = (visited: URL[], issuer: string) => visited.some((u) => u.origin === new URL(issuer).origin);

describe('P10: bounded sign-in session, sign-out, fresh profile for policies', () => {
  test('P10: the session record lives tokens.session_ttl (default 12 hours), not the 30-day grant lifetime', async () => {
    const { gw, start } = await world();
    const walk = await new BrowserDriver().walk(start(), REDIRECT);
    expect(walk.redirect?.searchParams.get('code')).toBeTruthy();
    const sessions = await gw.ctx.store.list('oidc:Session:');
    expect(sessions.length).toBe(1);
    const expiresIn = (sessions[0]!.expiresAt! - Date.now()) / 1000;
    expect(expiresIn).toBeGreaterThan(43_200 - 60);
    expect(expiresIn).toBeLessThanOrEqual(43_200);
  });

  test('P10: sign-out at /oauth/logout ends the session; the next authorization signs in upstream again and sees the removed group', async () => {
    const { idp, gw, carol, start } = await world();
    const browser = new BrowserDriver();
    const first = await browser.walk(start(), REDIRECT);
    expect(first.redirect?.searchParams.get('code')).toBeTruthy();
    // While signed in, no upstream round trip.
    const second = await browser.walk(start(), REDIRECT);
    expect(second.redirect?.searchParams.get('code')).toBeTruthy();
    expect(visitedIdp(second.visited, idp.issuer)).toBe(false);

    // Removed from the group at the IdP: the remembered session would still pass the policy.
    carol.groups = ['former-staff'];

    const page = await browser.request(new URL(`${gw.url}/oauth/logout`));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const html = await page.text();
    expect(html).toContain('Sign out of this gateway?');
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(action && xsrf).toBeTruthy();
    const confirm = await browser.request(new URL(action!, gw.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: xsrf!, logout: 'yes' }),
    });
    // oidc-provider redirects to its success page.
    const done =
      confirm.status === 303 || confirm.status === 302 ? await browser.request(new URL(confirm.headers.get('location')!, gw.url)) : confirm;
    expect(await done.text()).toContain('Signed out');
    expect(await gw.ctx.store.list('oidc:Session:')).toHaveLength(0);

    const third = await browser.walk(start(), REDIRECT);
    expect(visitedIdp(third.visited, idp.issuer)).toBe(true);
    expect(third.redirect?.searchParams.get('error')).toBe('access_denied');
  });

  test('P10: a logout form without its CSRF value does not sign out', async () => {
    const { gw, start } = await world();
    const browser = new BrowserDriver();
    await browser.walk(start(), REDIRECT);
    const res = await browser.request(new URL(`${gw.url}/oauth/logout/confirm`), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout: 'yes' }),
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(await gw.ctx.store.list('oidc:Session:')).toHaveLength(1);
  });
});
