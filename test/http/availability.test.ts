/**
 * Storage failure behaviour (src/http/availability.ts) against a real redis-server that is killed and
 * restarted on the same port mid-run, plus the start-up cases through the real CLI: Redis unreachable
 * (refuses to start) and `fallback: memory` (starts, DEGRADED in /health and /ready).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/http/app.js';
import { testConfig } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { describeRedis, RedisServer } from '../helpers/redis-server.js';
import { bearer } from '../helpers/tokens.js';
import { pollUntil, runCli, stopProcess, waitForText } from '../multi-instance/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-avail-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'availability-secret-availability-secret-0123';

async function gatewayOn(
  redis: RedisServer,
  failMode: 'closed' | 'open',
): Promise<{ gw: Gateway; url: string; close: () => Promise<void> }> {
  const backend = await startEchoBackend(undefined, { cleanup: false });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = testConfig({
    issuer: url,
    port,
    storage: {
      type: 'redis',
      redis: {
        host: '127.0.0.1',
        port: redis.port,
        socket_timeout: 1,
        socket_connect_timeout: 1,
        sweep_interval: 0,
        revocation_fail_mode: failMode,
      },
    },
    oauth_providers: { dev: {} },
    mcp_services: { svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' } },
    limits: { shutdown_grace: 1 },
  });
  const gw = await createGateway(config, { silent: true });
  await gw.listen();
  return { gw, url, close: async () => void (await Promise.allSettled([gw.close(), backend.close()])) };
}

const register = (url: string) =>
  fetch(`${url}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:49152/callback'], token_endpoint_auth_method: 'none' }),
  });
const token = (url: string) =>
  fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=authorization_code&code=nope',
  });
const proxy = (url: string, auth: string) => fetch(`${url}/svc/mcp`, { headers: { authorization: auth } });

async function expect503(res: Response): Promise<void> {
  expect(res.status).toBe(503);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.error === 'temporarily_unavailable' || (body.error as { message?: string })?.message !== undefined).toBe(true);
  expect(JSON.stringify(body)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|redis/i);
}

describeRedis('storage outage while running (real redis-server killed and restarted)', () => {
  it('fail-closed: 503 + Retry-After on /oauth/token, /oauth/register, the proxy and /ready; recovers by itself with the data from before', async () => {
    const redis = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const { gw, url, close } = await gatewayOn(redis, 'closed');
    try {
      const auth = await bearer(gw, { service: 'svc' });
      const before = await register(url);
      expect(before.status).toBe(201);
      const clientId = String(((await before.json()) as { client_id: string }).client_id);
      expect((await token(url)).status).toBe(400);
      expect((await proxy(url, auth)).status).toBe(200);
      expect((await fetch(`${url}/ready`)).status).toBe(200);

      await redis.kill();
      const noticed = await pollUntil(async () => !gw.ctx.availability.up && !gw.ctx.revocations.healthy, 5000);
      await expect503(await token(url));
      await expect503(await register(url));
      await expect503(await proxy(url, auth));
      const ready = await fetch(`${url}/ready`);
      expect(ready.status).toBe(503);
      expect(ready.headers.get('retry-after')).toBeTruthy();
      expect(await ready.json()).toMatchObject({
        status: 'not_ready',
        storage: { healthy: false, backend: 'redis' },
        revocation: { healthy: false },
      });
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'degraded', storage: { healthy: false } });
      // The JWKS and metadata do not need storage.
      expect((await fetch(`${url}/oauth/jwks`)).status).toBe(200);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/mcp_gateway_storage_up\{backend="redis"\} 0/);
      expect(metrics).toMatch(/mcp_gateway_storage_errors_total\{operation="[a-zA-Z_]+"\} [1-9]/);

      await redis.start();
      const recovered = await pollUntil(async () => (await fetch(`${url}/ready`)).status === 200, 10_000, 50);
      expect((await proxy(url, auth)).status).toBe(200);
      expect((await token(url)).status).toBe(400);
      expect((await register(url)).status).toBe(201);
      // Written before the outage, still there (AOF).
      expect(await gw.ctx.store.get(`oidc:Client:${clientId}`)).toBeTruthy();
      expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/mcp_gateway_storage_up\{backend="redis"\} 1/);
      console.info(`outage noticed after ${noticed} ms; ready again ${recovered} ms after redis-server restarted`);
    } finally {
      await close();
      await redis.stop();
    }
  });

  it('fail-open: already-issued tokens keep working at the proxy while the OAuth endpoints answer 503', async () => {
    const redis = await RedisServer.start();
    const { gw, url, close } = await gatewayOn(redis, 'open');
    try {
      const auth = await bearer(gw, { service: 'svc' });
      expect((await proxy(url, auth)).status).toBe(200);
      await redis.kill();
      // At once, before any periodic check ran: our 503, not a failure inside the authorization server.
      const first = await token(url);
      expect(first.status).toBe(503);
      expect(await first.clone().json()).toMatchObject({ error: 'temporarily_unavailable' });
      await expect503(first);
      await pollUntil(async () => !gw.ctx.availability.up, 5000);
      expect((await proxy(url, auth)).status).toBe(200);
      await expect503(await token(url));
      await redis.start();
      await pollUntil(async () => (await fetch(`${url}/ready`)).status === 200, 10_000, 50);
      expect((await token(url)).status).toBe(400);
    } finally {
      await close();
      await redis.stop();
    }
  });
});

describeRedis('storage unreachable at start (real CLI)', () => {
  it('refuses to start: exit 1, the message names host:port, no stack trace', async () => {
    const port = await freePort();
    const file = join(dir, 'down.yaml');
    writeFileSync(
      file,
      `host: 127.0.0.1\nport: 0\nsession_secret: ${SECRET}\nstorage:\n  type: redis\n  redis: {host: 127.0.0.1, port: ${port}, socket_connect_timeout: 1}\n`,
    );
    const run = runCli(['--config', file]);
    expect(await run.exited).toBe(1);
    expect(run.output()).toContain(`127.0.0.1:${port}`);
    expect(run.output()).not.toMatch(/\n\s+at /);
  });

  it('fallback: memory starts, warns loudly, /health says degraded and /ready answers 503 (degraded)', async () => {
    const redisPort = await freePort();
    const port = await freePort();
    const file = join(dir, 'fallback.yaml');
    writeFileSync(
      file,
      `host: 127.0.0.1\nport: ${port}\nissuer: http://127.0.0.1:${port}\nsession_secret: ${SECRET}\nstorage:\n  type: redis\n  redis: {host: 127.0.0.1, port: ${redisPort}, socket_connect_timeout: 1, fallback: memory}\n`,
    );
    const run = runCli(['--config', file]);
    try {
      await waitForText(run, 'listening on');
      expect(run.output()).toMatch(/WARNING: .*IN-MEMORY storage/);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({
        status: 'degraded',
        storage: { healthy: true, degraded: true, backend: 'memory (redis fallback)' },
      });
      expect(JSON.stringify(await (await fetch(`http://127.0.0.1:${port}/health`)).json())).not.toContain(String(redisPort));
      const ready = await fetch(`http://127.0.0.1:${port}/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'degraded', storage: { degraded: true, configured: 'redis' } });
      // It does serve: the OAuth endpoints work on the in-memory store.
      expect((await register(`http://127.0.0.1:${port}`)).status).toBe(201);
      expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toMatch(/mcp_gateway_storage_degraded 1/);
    } finally {
      await stopProcess(run);
    }
  });
});
