/**
 * The operator console (docs/console.md) in real headless Chromium and Firefox: an admin signs in through the real
 * upstream OpenID provider, sees the grant an SDK client just obtained, revokes it, and that client's next
 * request is refused; a person who is not an admin is refused with a clear page; an action without its
 * CSRF token is refused and changes nothing. Every page is screenshotted into docs/console/ (the pictures
 * in docs/console.md), at desktop and phone width.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { HTTPResponse, Page } from 'puppeteer-core';
import { expect, onTestFinished, test } from 'vitest';
import { BROWSER_GATEWAY_LIMITS, BROWSER_TIMEOUT, describeBrowsers, useBrowser, type WatchedPage } from '../helpers/browser.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { ALICE, BOB, gatewayProvider, startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';

const SHOTS = fileURLToPath(new URL('../../docs/console/', import.meta.url));

function expectConsoleHeaders(res: HTTPResponse | null): void {
  expect(res).not.toBeNull();
  const h = res!.headers();
  const csp = h['content-security-policy'] ?? '';
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("form-action 'self'");
  expect(csp).toContain("style-src 'self'");
  expect(csp).not.toMatch(/unsafe-inline|script-src/);
  expect(h['x-frame-options']).toBe('DENY');
  expect(h['cache-control']).toBe('no-store');
}

/**
 * The pictures in docs/console.md: taken on every run (so a page that cannot be drawn fails the test), written
 * into docs/console/ only with GW_CONSOLE_SCREENSHOTS=1, so an ordinary test run leaves the tree unchanged.
 */
async function shot(page: Page, name: string): Promise<void> {
  const picture = await page.screenshot({ fullPage: true });
  expect(picture.byteLength).toBeGreaterThan(1000);
  if (process.env.GW_CONSOLE_SCREENSHOTS !== '1') return;
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(`${SHOTS}${name}.png`, picture);
}

/** Calls a tool with a fixed bearer token (no auth provider: a refused token is not silently replaced). */
async function callWith(gw: StartedGateway, token: string): Promise<string> {
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/calc/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'console-test-client', version: '1.0.0' });
  await client.connect(transport);
  onTestFinished(() => client.close());
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: { text: string }[] };
  return result.content[0]?.text ?? '';
}

describeBrowsers('operator console', (browserName) => {
  // The pictures in docs/console.md come from Chromium; Firefox runs the same checks without them.
  const snap = async (page: Page, name: string) => (browserName === 'chromium' ? shot(page, name) : undefined);
  const rb = useBrowser(browserName);
  let idp: UpstreamIdp;
  let gw: StartedGateway;

  async function world(): Promise<void> {
    idp = await startUpstreamIdp([ALICE, BOB]);
    const backend = await startMcpBackend();
    gw = await startGateway(() => ({
      oauth_providers: {
        myidp: gatewayProvider(idp, ['openid', 'email', 'profile', 'groups']),
      },
      mcp_services: {
        calc: {
          name: 'Calculator',
          url: backend.url,
          oauth_provider: 'myidp',
          scopes: ['mcp:tools'],
          policy: { groups: ['guests', 'staff'] },
        },
      },
      // Alice is in `staff`; Bob only in `guests`.
      admin: { groups: ['staff'] },
      ...BROWSER_GATEWAY_LIMITS,
    }));
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  }

  async function signIn(who: typeof ALICE): Promise<WatchedPage> {
    idp.nextUser = who;
    const w = await rb.newPage();
    onTestFinished(() => w.close());
    const first = await w.page.goto(`${gw.url}/admin`, { waitUntil: 'load' });
    expectConsoleHeaders(first);
    expect(await w.page.content()).toContain('Sign in with myidp');
    await snap(w.page, 'sign-in');
    await Promise.all([w.page.waitForNavigation({ waitUntil: 'load' }), w.page.click('a[href="/admin/login"]')]);
    return w;
  }

  test(
    'an admin signs in, sees the grant of a connected SDK client, revokes it, and the client is refused; every page renders',
    { timeout: BROWSER_TIMEOUT * 3 },
    async () => {
      await world();
      // Bob connects a client (the SDK's own OAuth flow through the gateway) and calls a tool.
      idp.nextUser = BOB;
      const { tokens } = await obtainToken(gw.url, 'calc', { clientMetadata: { client_name: 'Bob’s MCP client' } });
      expect(await callWith(gw, tokens.access_token)).toContain('myidp:bob');

      const w = await signIn(ALICE);
      expect(w.page.url()).toBe(`${gw.url}/admin/services`);
      expect(await w.page.content()).toContain('Calculator');
      await snap(w.page, 'services');

      const people = await w.page.goto(`${gw.url}/admin/people`, { waitUntil: 'load' });
      expectConsoleHeaders(people);
      const html = await w.page.content();
      expect(html).toContain('myidp:bob');
      expect(html).toContain('Bob’s MCP client');
      expect(html).toMatch(/Bob’s MCP client → calc/);
      await snap(w.page, 'people');

      // Revoke Bob's one grant.
      await Promise.all([
        w.page.waitForNavigation({ waitUntil: 'load' }),
        w.page.click('form[action="/admin/people/revoke-grant"] button'),
      ]);
      expect(w.page.url(), await w.page.content()).toBe(`${gw.url}/admin/people?done=grant`);
      expect(await w.page.$eval('[role=status]', (n) => n.textContent)).toContain('Grant revoked');
      expect(await w.page.$$('form[action="/admin/people/revoke-grant"]')).toHaveLength(0);
      // The client's next request with the same access token fails.
      await expect(callWith(gw, tokens.access_token)).rejects.toThrow(/401|invalid_token|Unauthorized/i);

      for (const [path, name, text] of [
        ['clients', 'clients', 'Bob’s MCP client'],
        ['activity', 'activity', 'grant.revoked'],
        ['keys', 'keys', 'signing'],
        ['config', 'config', 'Secrets are masked'],
      ] as const) {
        const res = await w.page.goto(`${gw.url}/admin/${path}`, { waitUntil: 'load' });
        expectConsoleHeaders(res);
        expect(await w.page.content(), path).toContain(text);
        await snap(w.page, name);
      }
      // The revocation is audited naming the admin; the running configuration shows no secret.
      await w.page.goto(`${gw.url}/admin/activity?event=grant.revoked`, { waitUntil: 'load' });
      const activity = await w.page.content();
      expect(activity).toContain('admin=<code>myidp:alice</code>');
      await w.page.goto(`${gw.url}/admin/config`, { waitUntil: 'load' });
      const config = await w.page.content();
      expect(config).not.toContain('gateway-secret');
      expect(config).not.toContain('test-session-secret');

      // Phone width: the People page still fits (tables scroll inside their box), keyboard reaches the actions.
      await w.page.setViewport({ width: 390, height: 844 });
      await w.page.goto(`${gw.url}/admin/people`, { waitUntil: 'load' });
      const overflow = await w.page.evaluate(
        `[...document.querySelectorAll('body *')].filter((n) => n.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !n.closest('.scroll')).map((n) => n.tagName + '.' + n.className + ' ' + Math.round(n.getBoundingClientRect().right))`,
      );
      expect(overflow).toEqual([]);
      await w.page.keyboard.press('Tab');
      expect(await w.page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
      await snap(w.page, 'people-phone');
      expect(w.cspViolations).toEqual([]);
    },
  );

  test(
    'a person who is not listed in admin is refused with a clear page, and gets no session',
    { timeout: BROWSER_TIMEOUT * 2 },
    async () => {
      await world();
      const w = await signIn(BOB);
      expect(w.page.url()).toMatch(new RegExp(`^${gw.url}/admin/callback\\?`));
      const html = await w.page.content();
      expect(html).toContain('Not an administrator');
      expect(html).toContain('myidp:bob');
      expect(html).toContain('admin.groups');
      await snap(w.page, 'refused');
      const res = await w.page.goto(`${gw.url}/admin/people`, { waitUntil: 'load' });
      // No session: the page sends the person back to the sign-in page.
      expect(res!.url()).toBe(`${gw.url}/admin`);
      expect(await w.page.content()).not.toContain('myidp:bob');
    },
  );

  test('an action without its CSRF token is refused and changes nothing', { timeout: BROWSER_TIMEOUT * 2 }, async () => {
    await world();
    const w = await signIn(ALICE);
    await w.page.goto(`${gw.url}/admin/keys`, { waitUntil: 'load' });
    const before = gw.ctx.keys.describe().length;
    // The form as an attacker's page would post it: everything but the token.
    await w.page.evaluate(`document.querySelector('form[action="/admin/keys/rotate"] input[name=csrf]').remove()`);
    const [res] = await Promise.all([
      w.page.waitForNavigation({ waitUntil: 'load' }),
      w.page.click('form[action="/admin/keys/rotate"] button'),
    ]);
    expect(res!.status()).toBe(403);
    expect(await w.page.content()).toContain('CSRF');
    expect(gw.ctx.keys.describe()).toHaveLength(before);
    // With the token it works (the refusal was the token, not the action).
    await w.page.goto(`${gw.url}/admin/keys`, { waitUntil: 'load' });
    await Promise.all([w.page.waitForNavigation({ waitUntil: 'load' }), w.page.click('form[action="/admin/keys/rotate"] button')]);
    expect(w.page.url()).toBe(`${gw.url}/admin/keys?done=keys`);
    expect(gw.ctx.keys.describe()).toHaveLength(before + 1);
  });
});
