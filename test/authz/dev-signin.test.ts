import { decodeJwt } from 'jose';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createGateway } from '../../src/http/app.js';
import { isLoopbackHost } from '../../src/upstream/dev.js';
import { testConfig } from '../helpers/config.js';
import { startGateway } from '../helpers/gateway.js';
import { BrowserDriver, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';

const services = (policy?: Record<string, unknown>) => ({
  calc: { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev', scopes: ['mcp:tools'], ...(policy ? { policy } : {}) },
});
const devGateway = (policy?: Record<string, unknown>) => startGateway({ oauth_providers: { dev: {} }, mcp_services: services(policy) });

afterEach(() => void vi.unstubAllEnvs());

describe('development sign-in provider (type: dev)', () => {
  test('full flow: consent, then the labelled local form; the user is dev:<lower-cased email> with name and groups', async () => {
    const gw = await devGateway();
    const provider = new TestOAuthProvider({ devLogin: { name: 'Ada Lovelace', email: 'Ada@Example.COM', groups: 'admins, mcp-users ,' } });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    expect(provider.lastWalk?.pages).toEqual(['consent', 'dev-login']);
    const form = provider.lastWalk!.shown[1]!;
    expect(form.body).toContain('Development sign-in — not for production');
    expect(form.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(form.headers.get('x-frame-options')).toBe('DENY');
    expect(form.headers.get('cache-control')).toBe('no-store');
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      sub: 'dev:ada@example.com',
      email: 'ada@example.com',
      name: 'Ada Lovelace',
      groups: ['admins', 'mcp-users'],
      idp: 'dev',
    });
    // The consent decision is remembered as for any provider: a second flow shows no page at all.
    const again = new TestOAuthProvider({ browser: provider.browser, clientInformation: provider.clientInformation() });
    await obtainToken(gw.url, 'calc', { provider: again });
    expect(again.lastWalk?.pages).toEqual([]);
  });

  test('the access policy applies to the typed identity', async () => {
    const gw = await devGateway({ groups: ['admins'] });
    const provider = new TestOAuthProvider({ devLogin: { name: 'Mallory', email: 'mallory@example.com' } });
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'access_denied' });
    expect(provider.lastWalk?.pages).toEqual(['consent', 'dev-login', 'return']);
  });

  test('the form is CSRF-protected, validates its input (400 page, not 500), and needs the consent first', async () => {
    const gw = await devGateway();
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toThrow(/ended on a page \(200\)/);
    const browser = provider.browser;
    const formUrl = provider.lastWalk!.visited.at(-1)!;
    expect(formUrl.pathname).toMatch(/^\/interaction\/[^/]+\/dev-login$/);
    const csrf = /name="csrf" value="([^"]+)"/.exec(provider.lastWalk!.shown.at(-1)!.body)![1]!;
    const submit = (fields: Record<string, string>, b: BrowserDriver = browser) =>
      b.request(formUrl, {
        method: 'POST',
        body: new URLSearchParams(fields),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
    expect((await submit({ name: 'Eve', email: 'eve@example.com' })).status).toBe(403);
    expect((await submit({ name: 'Eve', email: 'eve@example.com', csrf: 'forged' })).status).toBe(403);
    const bad = await submit({ name: 'Eve', email: 'not-an-email', csrf });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('Enter an email address');
    expect((await submit({ name: '', email: 'eve@example.com', csrf })).status).toBe(400);
    // Another browser (without the interaction cookie) cannot use the form.
    const stranger = await submit({ name: 'Eve', email: 'eve@example.com', csrf }, new BrowserDriver());
    expect(stranger.status).toBeGreaterThanOrEqual(400);
    expect(stranger.status).toBeLessThan(500);
    // A valid submission completes the sign-in: a redirect back into the authorization.
    const ok = await submit({ name: 'Eve', email: 'eve@example.com', csrf });
    expect(ok.status).toBe(303);
  });

  // The loader refuses these with file and line (test/config/one-validation-pass.test.ts); createGateway
  // still refuses a configuration object built in code, which is what these tests construct.
  test('refused at createGateway when NODE_ENV=production', async () => {
    const config = testConfig({ oauth_providers: { dev: {} }, mcp_services: services() });
    vi.stubEnv('NODE_ENV', 'production');
    await expect(createGateway(config, { silent: true })).rejects.toThrow(/development sign-in\) is refused when NODE_ENV=production/);
  });

  test('refused at createGateway when the host is not a loopback address', async () => {
    const loopback = testConfig({ oauth_providers: { dev: {} }, mcp_services: services() });
    for (const host of ['0.0.0.0', '192.168.1.10', '::']) {
      await expect(createGateway({ ...loopback, host }, { silent: true })).rejects.toThrow(
        /only allowed on a loopback address, but host is/,
      );
    }
    await expect(createGateway({ ...loopback, issuer: 'https://gateway.example.com' }, { silent: true })).rejects.toThrow(
      /loopback issuer/,
    );
  });

  test('loopback detection', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', 'LOCALHOST', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', 'localhost.example.com', '128.0.0.1', '::2'])
      expect(isLoopbackHost(h), h).toBe(false);
  });
});
