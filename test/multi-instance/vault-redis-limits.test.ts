/**
 * Issue 13, defect 8: behind a split store (Vault for long-lived records, Redis for short-lived ones,
 * `storage.vault.short_lived: redis`), rate-limit counters must be shared through that Redis like on a
 * plain Redis store, not counted per instance.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { describeRedis, RedisServer } from '../helpers/redis-server.js';
import { VaultStandin } from '../helpers/vault-standin.js';

describeRedis('rate limits behind Vault + Redis', () => {
  let redis: RedisServer;
  let vault: VaultStandin;
  beforeAll(async () => {
    redis = await RedisServer.start();
    vault = await VaultStandin.start({});
  });
  afterAll(async () => {
    await redis?.stop();
    await vault?.stop();
  });

  it('two instances on vault+redis share the register counter', async () => {
    const storage = {
      type: 'vault',
      vault: { url: vault.url, token: vault.rootToken, path_prefix: 'limits', sweep_interval: 0, timeout: 5, short_lived: 'redis' },
      redis: { host: '127.0.0.1', port: redis.port, key_prefix: 'limits:' },
    };
    const config = () => ({ storage, rate_limits: { enabled: true, register_per_minute: 3 } });
    const a = await startGateway(config);
    const b = await startGateway(config);
    const register = (url: string) =>
      fetch(`${url}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:1/cb'] }),
      });
    expect(a.ctx.limits.kind).toBe('redis');
    expect((await register(a.url)).status).toBe(201);
    expect((await register(b.url)).status).toBe(201);
    expect((await register(a.url)).status).toBe(201);
    const fourth = await register(b.url);
    expect(fourth.status).toBe(429);
    expect(fourth.headers.get('retry-after')).toBeTruthy();
  });
});
