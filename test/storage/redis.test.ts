/**
 * Redis back-end: the shared contract on standalone, standalone with a custom key_prefix and db, Cluster
 * (3 masters) and Sentinel, each against real redis-server processes on free loopback ports.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRedisStore, type RedisStore } from '../../src/storage/redis/redis-store.js';
import type { Store } from '../../src/storage/store.js';
import { describeRedis, RedisCluster, RedisSentinel, RedisServer, redisConfig } from '../helpers/redis-server.js';
import { storeContract } from './contract.js';

let n = 0;
/** Each store gets its own key prefix, so stores made by one suite never see each other's data. */
const uniquePrefix = (base: string) => `${base}${process.pid}-${n++}:`;

describeRedis('redis standalone', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => server?.stop());
  storeContract('redis standalone', {
    serverClock: true,
    create: () => createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port, key_prefix: uniquePrefix('gw:') }), {}),
    reopen: async (store: Store) => {
      await store.close();
      // Same prefix as the last created store: reopen right after create in the persistence case.
      return createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port, key_prefix: `gw:${process.pid}-${n - 1}:` }), {});
    },
  });
});

describeRedis('redis specifics', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => server?.stop());

  it('sweep drops expired keys from the key listing; glob and range characters in prefixes are literal', async () => {
    const s = (await createRedisStore(
      redisConfig({ host: '127.0.0.1', port: server.port, key_prefix: uniquePrefix('gw:') }),
      {},
    )) as RedisStore;
    try {
      await s.set('s:gone', { v: 1 }, { ttlSeconds: 1 });
      await s.set('s:kept', { v: 2 }, { ttlSeconds: 60 });
      await s.set('g:*[a]?', { v: 3 });
      await s.set('g:x', { v: 4 });
      expect((await s.list('g:*')).map((r) => r.key)).toEqual(['g:*[a]?']);
      expect((await s.list('g:[')).map((r) => r.key)).toEqual([]);
      await new Promise((r) => setTimeout(r, 1100));
      expect(await s.sweep()).toBe(1);
      expect(await s.sweep()).toBe(0);
      expect((await s.list('s:')).map((r) => r.key)).toEqual(['s:kept']);
    } finally {
      await s.close();
    }
  });
});

describeRedis('redis with url, password, db and a hash-tagged key_prefix', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start({ password: 's3cret pass' });
  });
  afterAll(async () => server?.stop());
  storeContract('redis url+password+db+prefix', {
    serverClock: true,
    create: () =>
      createRedisStore(
        redisConfig({
          url: `redis://:${encodeURIComponent('s3cret pass')}@127.0.0.1:${server.port}/3`,
          key_prefix: uniquePrefix('{tenant-a}:'),
        }),
        {},
      ),
  });
});

describeRedis('redis cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await RedisCluster.start();
  }, 60_000);
  afterAll(async () => cluster?.stop());
  storeContract('redis cluster', {
    serverClock: true,
    create: () => createRedisStore(redisConfig({ cluster_nodes: cluster.nodes, key_prefix: uniquePrefix('gw:') }), {}),
  });
});

describeRedis('redis sentinel', () => {
  let sentinel: RedisSentinel;
  beforeAll(async () => {
    sentinel = await RedisSentinel.start();
  }, 60_000);
  afterAll(async () => sentinel?.stop());
  storeContract('redis sentinel', {
    serverClock: true,
    create: () =>
      createRedisStore(redisConfig({ sentinels: sentinel.sentinels, sentinel_name: sentinel.name, key_prefix: uniquePrefix('gw:') }), {}),
  });
});
