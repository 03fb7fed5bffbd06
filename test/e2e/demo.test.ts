/**
 * SPEC §9 / issue #6: the built-in demo as a new user meets it: the demo backend, the development
 * sign-in form, and a real SDK client that connects by discovery and calls the identity tool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createGateway } from '../../src/http/app.js';
import { demoConfig, startDemoBackend } from '../../src/demo/demo.js';
import { freePort } from '../helpers/gateway.js';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { connectByDiscovery, textOf } from '../helpers/sdk-session.js';

describe('demo mode', () => {
  it('the MCP Inspector web UI (http://localhost:6274) may run its browser-side sign-in against the demo; other origins may not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-demo-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const config = demoConfig('http://127.0.0.1:9/mcp', { port: await freePort(), dataDir: dir });
    config.logging.level = 'silent';
    const gw = await createGateway(config, { silent: true });
    onTestFinished(() => gw.close());
    await gw.listen();
    const preflight = (origin: string, path: string) =>
      fetch(`${config.issuer}${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    for (const path of ['/oauth/register', '/oauth/token', '/demo/mcp']) {
      const ok = await preflight('http://localhost:6274', path);
      expect(ok.status, path).toBe(204);
      expect(ok.headers.get('access-control-allow-origin'), path).toBe('http://localhost:6274');
      expect((await preflight('http://evil.example', path)).headers.get('access-control-allow-origin'), path).toBeNull();
    }
  });

  it('an SDK client connects to the demo by discovery, signs in with the dev form and calls whoami', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-demo-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const backend = await startDemoBackend();
    onTestFinished(() => backend.close());
    const port = await freePort();
    const config = demoConfig(backend.url, { port, dataDir: dir });
    config.logging.level = 'silent';
    const gw = await createGateway(config, { silent: true });
    onTestFinished(() => gw.close());
    await gw.listen();

    const browser = new BrowserDriver();
    browser.devLogin = { name: 'Dana Developer', email: 'Dana@Example.com', groups: 'devs' };
    const s = await connectByDiscovery(`${config.issuer}/demo/mcp`, { browser });
    onTestFinished(() => s.close());
    expect(s.challenged).toBe(true);
    expect(s.provider.lastWalk?.pages).toEqual(expect.arrayContaining(['consent', 'dev-login']));
    const tools = (await s.client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('whoami');
    const who = await s.client.callTool({ name: 'whoami', arguments: {} });
    expect(textOf(who)).toContain('Dana Developer');
    expect(who.structuredContent).toMatchObject({
      'x-user-id': 'dev:dana@example.com',
      'x-user-email': 'dana@example.com',
      'x-user-name': 'Dana Developer',
      'x-user-provider': 'dev',
    });
    const progress: number[] = [];
    await s.client.callTool({ name: 'count_slowly', arguments: { n: 2 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
    expect(progress).toEqual([1, 2]);
  });
});
