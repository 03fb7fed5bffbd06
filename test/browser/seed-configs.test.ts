/**
 * Our users' own configurations in real browsers: `local-custom.yaml` (a plain OAuth 2.0 IdP over http
 * with explicit URLs, a service with scopes and one without) and `local-oidc.yaml` (an OpenID provider
 * found by discovery over http), loaded unchanged from ../shared/fixtures/seed-configs/. For every
 * protected service: the client's registration and authorization request as the MCP SDK builds them,
 * the consent page, Approve, the IdP, back at the client's redirect URI, the code exchanged and a tool
 * called through the proxy, in Chromium and Firefox, with no CSP violation.
 */
import { expect, onTestFinished, test } from 'vitest';
import { BROWSER_TIMEOUT, describeBrowsers, useBrowser } from '../helpers/browser.js';
import { finishAndCallTool, mcpClientStart, startRedirectTarget, waitForRedirect } from '../helpers/browser-flow.js';
import { seedConfigFile, startSeedWorld } from '../helpers/seed-world.js';

const FIXTURES = ['local-custom.yaml', 'local-oidc.yaml'];

describeBrowsers('seed configurations in a real browser', (name) => {
  const rb = useBrowser(name);

  for (const fixture of FIXTURES) {
    test(`${fixture}: every protected service signs in and calls a tool`, { timeout: BROWSER_TIMEOUT * 3 }, async () => {
      const world = await startSeedWorld(seedConfigFile(fixture), { shutdownGrace: 1 });
      const protectedServices = Object.entries(world.config.mcp_services)
        .filter(([, s]) => s.auth_required)
        .map(([id]) => id);
      expect(protectedServices.length).toBeGreaterThan(0);
      for (const id of protectedServices) {
        const target = await startRedirectTarget();
        const started = await mcpClientStart(world, id, target.uri);
        const w = await rb.newPage();
        onTestFinished(() => w.close());
        await w.page.goto(started.authorizationUrl.href, { waitUntil: 'load' });
        expect(w.page.url(), `${fixture} ${id}: the consent page`).toMatch(new RegExp(`^${world.url}/interaction/`));
        expect(await w.page.content()).toContain(world.config.mcp_services[id]!.name);
        await w.page.click('button[value="approve"]');
        const arrived = await waitForRedirect(w, target.hits, `${fixture} ${id}: Approve`);
        expect(arrived.searchParams.get('error'), `${fixture} ${id}: ${arrived.searchParams.get('error_description')}`).toBeNull();
        expect(arrived.searchParams.get('state')).toBe(started.state);
        expect(w.cspViolations).toEqual([]);
        const who = await finishAndCallTool(started, arrived.searchParams.get('code')!, target.uri);
        expect(who.text).toContain('alice@example.com');
      }
    });
  }
});
