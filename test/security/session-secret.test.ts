/**
 * `session_secret` rotation: cookies and consent-form tokens made under the old secret keep working while
 * it is listed in `previous_session_secrets`, and stop working once it is removed.
 */
import { describe, expect, test } from 'vitest';
import { createGateway, type Gateway } from '../../src/http/app.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { testConfig } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { authorizeUrl, register } from './world.js';

const OLD = 'old-session-secret-0123456789-abcdefghijklmnop';
const NEW = 'new-session-secret-0123456789-abcdefghijklmnop';

describe('session_secret rotation', () => {
  test('previous_session_secrets keeps in-flight consent pages valid across a rotation; without it they fail cleanly', async () => {
    const store = new MemoryStore();
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const start = async (session_secret: string, previous_session_secrets: string[] = []): Promise<Gateway> => {
      const gw = await createGateway(
        testConfig({
          issuer,
          port,
          session_secret,
          previous_session_secrets,
          oauth_providers: { dev: {} },
          mcp_services: { calc: { name: 'Calc', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev' } },
          rate_limits: { enabled: false },
          limits: { shutdown_grace: 1 },
        }),
        { silent: true, store },
      );
      await gw.listen();
      return gw;
    };
    try {
      // Two people open the consent page while the old secret is in force.
      let gw = await start(OLD);
      const clientId = String((await register(issuer)).json.client_id);
      const open = async () => {
        const browser = new BrowserDriver();
        const first = await browser.request(new URL(authorizeUrl(issuer, { client_id: clientId })));
        const interaction = new URL(first.headers.get('location')!, issuer);
        const csrf = /name="csrf" value="([^"]+)"/.exec(await (await browser.request(interaction)).text())![1]!;
        return { browser, interaction, csrf };
      };
      const a = await open();
      const b = await open();
      await gw.close();
      // fetch may reuse a keep-alive socket of the stopped instance once: retry on that socket error.
      const approve = (p: typeof a) => once(p).catch(() => once(p));
      const once = (p: typeof a) =>
        p.browser.request(new URL(`${p.interaction.pathname}/decision`, issuer), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ csrf: p.csrf, action: 'approve' }),
        });

      // Rotated, old secret still listed: A's cookie and CSRF token are accepted.
      gw = await start(NEW, [OLD]);
      const okA = await approve(a);
      expect(okA.status).toBe(303);
      expect(okA.headers.get('location')).toContain('/dev-login');
      await gw.close();

      // Old secret removed: B's page is refused with a 4xx page, never a 500 or a redirect.
      gw = await start(NEW);
      const refusedB = await approve(b);
      expect(refusedB.status).toBeGreaterThanOrEqual(400);
      expect(refusedB.status).toBeLessThan(500);
      expect(refusedB.headers.get('location')).toBeNull();
      await gw.close();
    } finally {
      await store.close();
    }
  });

  test('previous secrets are validated like session_secret', async () => {
    const { parseConfig } = await import('../../src/config/load.js');
    expect(() => parseConfig({ storage: { type: 'memory' }, session_secret: NEW, previous_session_secrets: ['short'] })).toThrow(
      /previous_session_secrets/,
    );
  });
});
