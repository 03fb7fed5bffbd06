/**
 * Rate limits (src/http/rate-limit.ts): registration, token (per IP and per Basic client_id), authorize,
 * failed bearer authentication at the proxy; separate buckets per IP (trust_proxy + X-Forwarded-For);
 * `enabled: false`; counters and blocks shared between two gateways on one real Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicClientId } from '../../src/http/rate-limit.js';
import { createGateway, type Gateway } from '../../src/http/app.js';
import { testConfig } from '../helpers/config.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { describeRedis, RedisServer } from '../helpers/redis-server.js';
import { bearer } from '../helpers/tokens.js';

const LIMITS = {
  enabled: true,
  register_per_minute: 3,
  token_per_minute: 2,
  authorize_per_minute: 2,
  failed_auth_per_minute: 3,
  failed_auth_per_token_per_minute: 100,
};

async function limitedGateway(rate_limits: Record<string, unknown> = LIMITS): Promise<StartedGateway> {
  const backend = await startEchoBackend();
  return startGateway({
    trust_proxy: true,
    oauth_providers: { dev: {} },
    mcp_services: {
      svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' },
      pub: { name: 'pub', url: backend.url, auth_required: false },
    },
    rate_limits,
  });
}

const register = (url: string, ip: string) =>
  fetch(`${url}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:49152/callback'], token_endpoint_auth_method: 'none' }),
  });

const token = (url: string, ip: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip, ...headers },
    body: 'grant_type=authorization_code&code=nope',
  });

const proxy = (url: string, ip: string, authorization?: string) =>
  fetch(`${url}/svc/mcp`, { headers: { 'x-forwarded-for': ip, ...(authorization ? { authorization } : {}) } });

async function expect429(res: Response): Promise<void> {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(res.headers.get('cache-control')).toContain('no-store');
  expect(await res.json()).toMatchObject({ error: 'too_many_requests', error_description: expect.stringContaining('retry') });
}

describe('rate limits (local counters)', () => {
  it('registration: the 4th request from one IP in a minute is 429 with Retry-After; another IP has its own bucket', async () => {
    const gw = await limitedGateway();
    for (let i = 0; i < 3; i++) expect((await register(gw.url, '10.0.0.1')).status).toBe(201);
    await expect429(await register(gw.url, '10.0.0.1'));
    expect((await register(gw.url, '10.0.0.2')).status).toBe(201);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/mcp_gateway_rate_limited_total\{bucket="register"\} 1/);
  });

  it('token: per IP, and per client_id (HTTP Basic) across IPs; failures count too', async () => {
    const gw = await limitedGateway();
    expect((await token(gw.url, '10.0.1.1')).status).toBe(400);
    expect((await token(gw.url, '10.0.1.1')).status).toBe(400);
    await expect429(await token(gw.url, '10.0.1.1'));
    // The same confidential client from three IPs: the client bucket fills although each IP is fine.
    const basic = { authorization: `Basic ${Buffer.from('static-app:secret').toString('base64')}` };
    expect((await token(gw.url, '10.0.2.1', basic)).status).not.toBe(429);
    expect((await token(gw.url, '10.0.2.2', basic)).status).not.toBe(429);
    await expect429(await token(gw.url, '10.0.2.3', basic));
    // Another client from a fresh IP is unaffected.
    expect((await token(gw.url, '10.0.2.4', { authorization: `Basic ${Buffer.from('other:secret').toString('base64')}` })).status).not.toBe(
      429,
    );
  });

  it('authorize: per IP (the resume URL is not counted)', async () => {
    const gw = await limitedGateway();
    const get = (ip: string) => fetch(`${gw.url}/oauth/authorize?client_id=x`, { headers: { 'x-forwarded-for': ip }, redirect: 'manual' });
    expect((await get('10.0.3.1')).status).not.toBe(429);
    expect((await get('10.0.3.1')).status).not.toBe(429);
    await expect429(await get('10.0.3.1'));
    expect((await get('10.0.3.2')).status).not.toBe(429);
    const resume = await fetch(`${gw.url}/oauth/authorize/some-uid`, { headers: { 'x-forwarded-for': '10.0.3.1' }, redirect: 'manual' });
    expect(resume.status).not.toBe(429);
  });

  it('P5: after 3 rejected tokens from an IP its further rejected tokens get 429, but valid tokens, bare requests and public services never do', async () => {
    const gw = await limitedGateway();
    const good = await bearer(gw, { service: 'svc' });
    // Requests without credentials (the discovery 401) and successful ones do not count.
    for (let i = 0; i < 5; i++) expect((await proxy(gw.url, '10.0.4.1')).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await proxy(gw.url, '10.0.4.1', good)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await proxy(gw.url, '10.0.4.1', `Bearer not-a-token-${i}`)).status).toBe(401);
    await waitUntil(async () => gw.ctx.limits.blockedFor('10.0.4.1', 'none') > 0);
    await expect429(await proxy(gw.url, '10.0.4.1', 'Bearer not-a-token-4'));
    // The same address with a valid token, without a token, or on a public service: never refused.
    expect((await proxy(gw.url, '10.0.4.1', good)).status).toBe(200);
    expect((await proxy(gw.url, '10.0.4.1')).status).toBe(401);
    expect((await fetch(`${gw.url}/pub/mcp`, { headers: { 'x-forwarded-for': '10.0.4.1', authorization: 'Bearer junk' } })).status).toBe(
      200,
    );
    expect((await proxy(gw.url, '10.0.4.2', 'Bearer not-a-token-5')).status).toBe(401);
    expect(gw.ctx.limits.blockedFor('10.0.4.2', 'none')).toBe(0);
  });

  it('P5: one stale token retried in a loop is limited per token, whatever address it comes from', async () => {
    const gw = await limitedGateway({ ...LIMITS, failed_auth_per_minute: 100, failed_auth_per_token_per_minute: 3 });
    const stale = await bearer(gw, { service: 'svc', ttl: -120 });
    for (let i = 0; i < 3; i++) expect((await proxy(gw.url, `10.0.7.${i}`, stale)).status).toBe(401);
    await waitUntil(async () => (await proxy(gw.url, '10.0.7.9', stale)).status === 429);
    // Another client's bad token from the same addresses is still answered 401 (it can refresh and retry).
    expect((await proxy(gw.url, '10.0.7.1', 'Bearer other-token')).status).toBe(401);
  });

  it('P5: X-Forwarded-For arriving while trust_proxy is off is reported once in the log', async () => {
    const lines: string[] = [];
    const { Writable } = await import('node:stream');
    const stream = new Writable({ write: (c: Buffer, _e, done) => void (lines.push(c.toString()), done()) });
    const backend = await startEchoBackend();
    const gw = await startGateway(
      {
        oauth_providers: { dev: {} },
        logging: { level: 'warn' },
        mcp_services: { svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' } },
      },
      { logStream: stream },
    );
    for (let i = 0; i < 3; i++) await fetch(`${gw.url}/svc/mcp`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    const warnings = lines.filter((l) => l.includes('trust_proxy is off'));
    expect(warnings).toHaveLength(1);
  });

  it('rate_limits.enabled: false disables every limit', async () => {
    const gw = await limitedGateway({ ...LIMITS, enabled: false });
    for (let i = 0; i < 5; i++) expect((await register(gw.url, '10.0.5.1')).status).toBe(201);
    for (let i = 0; i < 5; i++) expect((await token(gw.url, '10.0.5.1')).status).toBe(400);
    for (let i = 0; i < 6; i++) expect((await proxy(gw.url, '10.0.5.1', 'Bearer bad')).status).toBe(401);
  });

  it('odd input never gives a 500: broken Basic headers, odd X-Forwarded-For', async () => {
    const gw = await limitedGateway();
    for (const authorization of [
      'Basic',
      'Basic !!!',
      `Basic ${Buffer.from('no-colon').toString('base64')}`,
      `Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}`,
      `Basic ${'A'.repeat(5000)}`,
    ]) {
      expect((await token(gw.url, '10.0.6.1', { authorization })).status).toBeLessThan(500);
    }
    for (const xff of ['', 'garbage', '::1, ::ffff:127.0.0.1', '2001:db8::1', '1.2.3.4, , ,']) {
      const res = await fetch(`${gw.url}/oauth/token`, { method: 'POST', headers: { 'x-forwarded-for': xff }, body: '' });
      expect(res.status).toBeLessThan(500);
    }
    expect(basicClientId(`Basic ${Buffer.from('my%20app:pw').toString('base64')}`)).toBe('my app');
    expect(basicClientId(`Basic ${Buffer.from('a\u0001b:pw').toString('base64')}`)).toBeUndefined();
    expect(basicClientId('Bearer x')).toBeUndefined();
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describeRedis('rate limits shared through Redis (two gateways, one Redis)', () => {
  let redis: RedisServer;
  const gateways: Gateway[] = [];
  const urls: string[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    const backend = await startEchoBackend(undefined, { cleanup: false });
    for (let i = 0; i < 2; i++) {
      const config = testConfig({
        trust_proxy: true,
        // Both instances share one issuer (as behind a load balancer); tests call each one directly.
        issuer: 'http://127.0.0.1:1',
        storage: {
          type: 'redis',
          redis: { host: '127.0.0.1', port: redis.port, socket_timeout: 2, socket_connect_timeout: 2, sweep_interval: 0 },
        },
        oauth_providers: { dev: {} },
        mcp_services: { svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' } },
        rate_limits: { ...LIMITS, register_per_minute: 4, failed_auth_per_minute: 3 },
      });
      const gw = await createGateway(config, { silent: true });
      gateways.push(gw);
      const address = await gw.app.listen({ host: '127.0.0.1', port: 0 });
      urls.push(address);
    }
    gateways.push({ close: () => backend.close() } as Gateway);
  });

  afterAll(async () => {
    await Promise.allSettled(gateways.map((g) => g.close()));
    await redis?.stop();
  });

  it('registration counters are shared: 2 at A + 2 at B, then 429 at both', async () => {
    const [a, b] = urls as [string, string];
    expect((await register(a, '10.1.0.1')).status).toBe(201);
    expect((await register(b, '10.1.0.1')).status).toBe(201);
    expect((await register(a, '10.1.0.1')).status).toBe(201);
    expect((await register(b, '10.1.0.1')).status).toBe(201);
    await expect429(await register(a, '10.1.0.1'));
    await expect429(await register(b, '10.1.0.1'));
    expect((await register(b, '10.1.0.2')).status).toBe(201);
    expect(gateways[0]!.ctx.limits.kind).toBe('redis');
  });

  it("failed-auth blocks are shared: the limit reached at B blocks the IP's rejected tokens at A within a second", async () => {
    const [a, b] = urls as [string, string];
    const good = await bearer(gateways[0]!, { service: 'svc' });
    expect((await proxy(a, '10.1.1.1', 'Bearer bad-1')).status).toBe(401);
    expect((await proxy(a, '10.1.1.1', 'Bearer bad-2')).status).toBe(401);
    expect((await proxy(b, '10.1.1.1', 'Bearer bad-3')).status).toBe(401);
    const started = Date.now();
    await waitUntil(async () => gateways[0]!.ctx.limits.blockedFor('10.1.1.1', 'none') > 0, 1000);
    const elapsed = Date.now() - started;
    await expect429(await proxy(a, '10.1.1.1', 'Bearer bad-4'));
    await expect429(await proxy(b, '10.1.1.1', 'Bearer bad-5'));
    // P5: a valid token from the blocked address still gets through on both instances.
    expect((await proxy(a, '10.1.1.1', good)).status).toBe(200);
    expect((await proxy(b, '10.1.1.1', good)).status).toBe(200);
    console.info(`failed-auth block propagated to the other instance in ${elapsed} ms`);
  });
});
