/**
 * The operator console over HTTP (docs/console.md), with the scripted browser (cookies, redirects) and a
 * real upstream OpenID provider: off when `admin` is absent, the configuration rules, the sign-in's
 * browser binding and single use, CSRF and Origin on actions, sessions that end when revoked, revoking
 * a user, the masked configuration and `check-config` of the file on disk.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { checkFileOnDisk, MASK, maskedConfig } from '../../src/admin/configuration.js';
import { listGrants } from '../../src/kernel/directory.js';
import { problems, testConfig, TEST_SECRET } from '../helpers/config.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { BrowserDriver, obtainToken } from '../helpers/oauth-client.js';
import { ALICE, BOB, gatewayProvider, startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';

const YAML_BASE = `
session_secret: ${TEST_SECRET}
storage: { type: memory }
oauth_providers:
  myidp: { issuer: 'http://127.0.0.1:4444', client_id: gw, client_secret: s, allow_insecure_http: true }
`;

async function world(admin: Record<string, unknown> = { users: ['myidp:alice'] }): Promise<{ idp: UpstreamIdp; gw: StartedGateway }> {
  const idp = await startUpstreamIdp([ALICE, BOB]);
  const backend = await startMcpBackend();
  const gw = await startGateway(() => ({
    oauth_providers: {
      myidp: gatewayProvider(idp, ['openid', 'email', 'profile', 'groups']),
    },
    mcp_services: { calc: { name: 'Calculator', url: backend.url, oauth_provider: 'myidp', scopes: ['mcp:tools'] } },
    admin,
  }));
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  return { idp, gw };
}

/** Signs in to the console with the scripted browser; resolves to the browser (holding the session cookie). */
async function consoleSignIn(gw: StartedGateway, idp: UpstreamIdp, who = ALICE): Promise<BrowserDriver> {
  idp.nextUser = who;
  const browser = new BrowserDriver();
  const walk = await browser.walk(new URL(`${gw.url}/admin/login`), `${gw.url}/admin/services`);
  expect(walk.redirect?.pathname, walk.finalPage?.body).toBe('/admin/services');
  return browser;
}

const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

async function post(browser: BrowserDriver, url: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  return browser.request(new URL(url), {
    method: 'POST',
    body: new URLSearchParams(fields),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  });
}

describe('console configuration', () => {
  test('off when admin is absent: no /admin route at all', async () => {
    const gw = await startGateway();
    for (const path of ['/admin', '/admin/login', '/admin/people', '/admin/console.css']) {
      const res = await fetch(`${gw.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error).toBe('not_found');
    }
  });

  test('check-config refuses an admin section that lists nobody, has no provider, or uses the development sign-in', () => {
    expect(problems(`${YAML_BASE}admin: {}\n`)).toEqual([
      expect.objectContaining({ path: 'admin', line: 6, message: expect.stringContaining('admin lists nobody') }),
    ]);
    expect(problems(`session_secret: ${TEST_SECRET}\nstorage: { type: memory }\nadmin: { users: [a] }\n`)).toEqual([
      expect.objectContaining({ path: 'admin', message: expect.stringContaining('configure one under oauth_providers') }),
    ]);
    expect(
      problems(
        `session_secret: ${TEST_SECRET}\nhost: 127.0.0.1\nissuer: http://127.0.0.1:8080\nstorage: { type: memory }\noauth_providers: { local: { type: dev } }\nadmin: { users: [a] }\n`,
      ),
    ).toEqual([expect.objectContaining({ path: 'admin', message: expect.stringContaining('development sign-in') })]);
  });

  test('the running configuration is shown with every secret masked', () => {
    const config = testConfig({
      oauth_providers: { myidp: { issuer: 'https://idp.example.com', client_id: 'gw-client', client_secret: 'very-secret-value' } },
      storage: { type: 'redis', redis: { url: 'redis://:redis-password@redis.example.com:6379/0' } },
      registration: { mode: 'token', initial_access_token: 'initial-token-value' },
      admin: { users: ['myidp:alice'] },
    });
    const text = JSON.stringify(maskedConfig(config));
    for (const secret of ['very-secret-value', 'redis-password', 'initial-token-value', TEST_SECRET]) expect(text).not.toContain(secret);
    expect(text).toContain(MASK);
    expect(text).toContain('gw-client');
    expect(text).toContain('redis.example.com');
  });

  test('check-config of the file on disk: OK, or every problem with file and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-console-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, `${YAML_BASE}admin: { users: [myidp:alice] }\n`);
    expect(checkFileOnDisk(file)).toEqual({ kind: 'ok', path: file });
    writeFileSync(file, `${YAML_BASE}admin: { users: [myidp:alice] }\nport: seventy\n`);
    const check = checkFileOnDisk(file);
    expect(check.kind).toBe('problems');
    expect(check.kind === 'problems' && check.lines[0]).toMatch(new RegExp(`^${file}:7 port: `));
    expect(checkFileOnDisk(undefined)).toEqual({ kind: 'none' });
  });
});

describe('console sign-in and sessions', () => {
  test('the callback is bound to the browser that started the sign-in, and single use', async () => {
    const { idp, gw } = await world();
    idp.nextUser = ALICE;
    const browser = new BrowserDriver();
    // Walk up to the callback, but stop before the gateway consumes it.
    const walk = await browser.walk(new URL(`${gw.url}/admin/login`), `${gw.url}/admin/callback`);
    const callback = walk.redirect!;
    // Another browser (no binding cookie) presenting the same callback is refused, and that use spends it.
    const other = await new BrowserDriver().request(callback);
    expect(other.status).toBe(400);
    expect(await other.text()).toContain('does not belong to a sign-in started in this browser');
    const replay = await browser.request(callback);
    expect(replay.status).toBe(400);
    expect(replay.headers.getSetCookie().some((c) => c.startsWith('gw_admin='))).toBe(false);
  });

  test('actions need the session CSRF token and our Origin; a revoked session ends at once; sign-out', async () => {
    const { idp, gw } = await world({ users: ['alice@example.com'] });
    const browser = await consoleSignIn(gw, idp);
    const page = await browser.request(new URL(`${gw.url}/admin/keys`));
    expect(page.status).toBe(200);
    const csrf = csrfOf(await page.text());
    expect(csrf).not.toBe('');
    const keys = gw.ctx.keys.describe().length;

    expect((await post(browser, `${gw.url}/admin/keys/rotate`, {})).status).toBe(403);
    expect((await post(browser, `${gw.url}/admin/keys/rotate`, { csrf: csrf.slice(1) })).status).toBe(403);
    expect((await post(browser, `${gw.url}/admin/keys/rotate`, { csrf }, { origin: 'https://evil.example' })).status).toBe(403);
    // Without the session cookie the token is worth nothing.
    expect((await post(new BrowserDriver(), `${gw.url}/admin/keys/rotate`, { csrf })).status).toBe(403);
    expect(gw.ctx.keys.describe()).toHaveLength(keys);
    const ok = await post(browser, `${gw.url}/admin/keys/rotate`, { csrf }, { origin: gw.url });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/admin/keys?done=keys');
    expect(gw.ctx.keys.describe()).toHaveLength(keys + 1);
    const events = gw.ctx.audit.ring!.recent();
    expect(events).toContainEqual(
      expect.objectContaining({ event: 'keys.rotated', fields: expect.objectContaining({ admin: 'myidp:alice' }) }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ event: 'admin.refused', fields: expect.objectContaining({ admin: 'myidp:alice' }) }),
    );

    // A second session of the same person (another browser) ends it for everyone: revocation is immediate.
    const second = await consoleSignIn(gw, idp);
    const res = await post(browser, `${gw.url}/admin/people/end-sessions`, { csrf, user: 'myidp:alice' });
    expect(res.status).toBe(303);
    for (const b of [browser, second]) {
      const after = await b.request(new URL(`${gw.url}/admin/people`));
      expect(after.status).toBe(303);
      expect(after.headers.get('location')).toBe('/admin');
    }

    // Sign-out deletes the session.
    const third = await consoleSignIn(gw, idp);
    const csrf3 = csrfOf(await (await third.request(new URL(`${gw.url}/admin/services`))).text());
    expect((await post(third, `${gw.url}/admin/logout`, { csrf: csrf3 })).status).toBe(303);
    expect((await third.request(new URL(`${gw.url}/admin/services`))).status).toBe(303);
    expect(gw.ctx.audit.ring!.recent().map((e) => e.event)).toEqual(
      expect.arrayContaining(['admin.sign_in', 'admin.session_revoked', 'admin.sign_out']),
    );
  });

  test('revoking a user revokes all their grants (their tokens stop) and is audited naming the admin', async () => {
    const { idp, gw } = await world({ groups: ['staff'] });
    idp.nextUser = BOB;
    const { tokens } = await obtainToken(gw.url, 'calc');
    const call = () =>
      fetch(`${gw.url}/calc/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tokens.access_token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
        }),
      });
    expect((await call()).status).toBe(200);
    const browser = await consoleSignIn(gw, idp);
    const people = await (await browser.request(new URL(`${gw.url}/admin/people`))).text();
    expect(people).toContain('myidp:bob');
    const res = await post(browser, `${gw.url}/admin/people/revoke-user`, { csrf: csrfOf(people), user: 'myidp:bob' });
    expect(res.headers.get('location')).toBe('/admin/people?done=user');
    expect(await listGrants(gw.ctx.store, (g) => g.accountId === 'myidp:bob')).toEqual([]);
    expect((await call()).status).toBe(401);
    const events = gw.ctx.audit.ring!.recent();
    expect(events).toContainEqual(
      expect.objectContaining({ event: 'grant.revoked', fields: expect.objectContaining({ admin: 'myidp:alice', user: 'myidp:bob' }) }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        event: 'user.revoked',
        fields: expect.objectContaining({ admin: 'myidp:alice', user: 'myidp:bob', grants: 1 }),
      }),
    );
  });
});
