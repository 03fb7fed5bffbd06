/**
 * Redis back-end behaviour around failures: outage mid-run (fail fast, heal by itself, no acknowledged
 * write lost with AOF), unreachable at start (clear error or the explicit memory fallback), pub/sub.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRedisStore } from '../../src/storage/redis/redis-store.js';
import type { Store } from '../../src/storage/store.js';
import { describeRedis, freePort, RedisServer, redisConfig } from '../helpers/redis-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > until) throw err;
      await sleep(100);
    }
  }
}

describeRedis('redis outage mid-run', () => {
  let server: RedisServer;
  let store: Store;
  const warnings: string[] = [];
  beforeAll(async () => {
    server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    store = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port, socket_timeout: 1 }), {
      onWarning: (m) => warnings.push(m),
    });
  });
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('fails fast while down, reports unhealthy, then heals by itself without losing acknowledged writes', async () => {
    const got: string[] = [];
    await store.subscribe!('revocations', (m) => got.push(m));
    await store.set('before', { v: 1 }, { indexes: ['grant:x'] });
    await server.kill();

    const t0 = Date.now();
    await expect(store.get('before')).rejects.toMatchObject({ code: 'GW_ERR_STORE_UNAVAILABLE' });
    await expect(store.set('during', { v: 2 })).rejects.toThrow(/Redis/);
    const failMs = Date.now() - t0;
    expect(failMs).toBeLessThan(2000);
    const h = await store.health();
    expect(h.ok).toBe(false);
    expect(h.detail).toMatch(/127\.0\.0\.1:\d+/);

    await server.start();
    const t1 = Date.now();
    const rec = await eventually(() => store.get('before'), 10_000);
    const healMs = Date.now() - t1;
    expect(rec?.value).toEqual({ v: 1 });
    expect(await store.listByIndex('grant:x')).toEqual(['before']);
    expect((await store.health()).ok).toBe(true);
    await store.set('after', { v: 3 });
    expect((await store.get('after'))?.value).toEqual({ v: 3 });
    // The subscription comes back by itself too (ioredis re-subscribes after reconnecting).
    await eventually(async () => {
      await store.publish!('revocations', 'after-restart');
      if (!got.includes('after-restart')) throw new Error('not yet');
    }, 5000);
    console.info(`[redis outage] first failure after ${failMs} ms; recovered ${healMs} ms after restart`);
    expect(warnings.some((w) => /connection lost; reconnecting/.test(w))).toBe(true);
    expect(warnings.some((w) => /connection restored/.test(w))).toBe(true);
  });
});

describeRedis('redis hanging (SIGSTOP)', () => {
  it('a command to a Redis that stops answering fails after socket_timeout; health says so; it resumes', async () => {
    const server = await RedisServer.start();
    const warnings: string[] = [];
    const store = await createRedisStore(
      redisConfig({ host: '127.0.0.1', port: server.port, socket_timeout: 0.5, health_check_interval: 0.3 }),
      {
        onWarning: (m) => warnings.push(m),
      },
    );
    try {
      await store.set('k', { v: 1 });
      server.pause();
      const t0 = Date.now();
      await expect(store.get('k')).rejects.toMatchObject({ code: 'GW_ERR_STORE_UNAVAILABLE' });
      expect(Date.now() - t0).toBeLessThan(2000);
      const h = await store.health();
      expect(h.ok).toBe(false);
      // The background PING times out too and forces a reconnect (how half-open connections are noticed).
      await eventually(async () => expect(warnings.join('\n')).toMatch(/did not answer a PING within 500 ms; reconnecting/), 3000);
      server.resume();
      expect((await eventually(() => store.get('k'), 5000))?.value).toEqual({ v: 1 });
      expect((await store.health()).ok).toBe(true);
    } finally {
      server.resume();
      await store.close();
      await server.stop();
    }
  });
});

describeRedis('redis unreachable at start', () => {
  it('refuses with a clear error naming host:port and not the password', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const err = await createRedisStore(
      redisConfig({ host: '127.0.0.1', port, password: 'hunter2-secret', socket_connect_timeout: 1 }),
      {},
    ).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(new RegExp(`^cannot connect to Redis at 127\\.0\\.0\\.1:${port}: `));
    expect(err?.message).not.toContain('hunter2-secret');
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('fallback: memory starts on memory, says so loudly and works', async () => {
    const port = await freePort();
    const warnings: string[] = [];
    const store = await createRedisStore(redisConfig({ host: '127.0.0.1', port, fallback: 'memory', socket_connect_timeout: 1 }), {
      onWarning: (m) => warnings.push(m),
    });
    try {
      expect(store.backend).toBe('memory (redis fallback)');
      expect(warnings.join('\n')).toMatch(/WARNING: cannot connect to Redis at 127\.0\.0\.1:\d+.*IN-MEMORY/);
      const h = await store.health();
      expect(h.backend).toBe('memory (redis fallback)');
      expect(h.detail).toMatch(/DEGRADED.*IN-MEMORY/);
      await store.set('k', { v: 1 });
      expect((await store.get('k'))?.value).toEqual({ v: 1 });
    } finally {
      await store.close();
    }
  });
});

describeRedis('redis pub/sub', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => server?.stop());

  it('delivers a message published by one instance to another (and not across key prefixes)', async () => {
    const a = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port }), {});
    const b = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port }), {});
    const other = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port, key_prefix: 'other:' }), {});
    try {
      const got: string[] = [];
      const otherGot: string[] = [];
      const unsubscribe = await b.subscribe!('revocations', (m) => got.push(m));
      await other.subscribe!('revocations', (m) => otherGot.push(m));
      await a.publish!('revocations', 'grant-1');
      await eventually(async () => expect(got).toEqual(['grant-1']), 2000);
      await unsubscribe();
      await a.publish!('revocations', 'grant-2');
      await sleep(200);
      expect(got).toEqual(['grant-1']);
      expect(otherGot).toEqual([]);
      // The command connection still works while a subscription exists.
      await b.set('x', { v: 1 });
      expect((await b.get('x'))?.value).toEqual({ v: 1 });
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });

  it('close is idempotent and later calls fail clearly; health reports closed', async () => {
    const s = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port }), {});
    await s.close();
    await s.close();
    await expect(s.get('a')).rejects.toThrow(/closed/);
    expect((await s.health()).ok).toBe(false);
  });
});
