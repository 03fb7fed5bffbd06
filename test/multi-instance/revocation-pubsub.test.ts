/**
 * RevocationList on two Redis stores (two "instances" in one process): pub/sub delivers a revocation
 * long before the poll would (poll set to a minute here); without pub/sub the poll still finds the marker;
 * malformed or hostile messages are ignored.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RevocationList, REVOCATION_CHANNEL } from '../../src/kernel/revocation.js';
import { createRedisStore } from '../../src/storage/redis/redis-store.js';
import type { Store } from '../../src/storage/store.js';
import { describeRedis, redisConfig, RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from './helpers.js';

describeRedis('RevocationList over Redis pub/sub', () => {
  let redis: RedisServer;
  const stores: Store[] = [];
  const lists: RevocationList[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    for (const l of lists) l.stop();
    await Promise.allSettled(stores.map((s) => s.close()));
    await redis?.stop();
  });

  async function instance(pollMs: number, withoutPubSub = false): Promise<{ store: Store; list: RevocationList }> {
    let store = await createRedisStore(redisConfig({ host: '127.0.0.1', port: redis.port, key_prefix: 'rv:' }), {});
    stores.push(store);
    if (withoutPubSub)
      store = {
        ...Object.fromEntries(
          ['get', 'set', 'setIfAbsent', 'delete', 'consume', 'take', 'listByIndex', 'deleteByIndex', 'list', 'health', 'close'].map((m) => [
            m,
            (store as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!.bind(store),
          ]),
        ),
        backend: 'redis',
      } as unknown as Store;
    const list = new RevocationList(store, 600, { pollMs });
    lists.push(list);
    await list.start();
    return { store, list };
  }

  it('a revocation at A is known at B within milliseconds although B polls only every minute', async () => {
    const a = await instance(60_000);
    const b = await instance(60_000);
    expect(b.list.subscribed).toBe(true);
    await a.list.revoke('grant-pubsub-1');
    const ms = await pollUntil(async () => b.list.isRevoked('grant-pubsub-1'), 1000, 5);
    console.info(`pub/sub revocation reached the other list in ${ms} ms`);
  });

  it('without pub/sub the poll is the safety net', async () => {
    const a = await instance(60_000);
    const b = await instance(100, true);
    expect(b.list.subscribed).toBe(false);
    await a.list.revoke('grant-poll-1');
    await pollUntil(async () => b.list.isRevoked('grant-poll-1'), 1000);
  });

  it('malformed and hostile messages are ignored; a forged far-future expiry is capped', async () => {
    const a = await instance(60_000);
    const b = await instance(60_000);
    for (const m of [
      'not json',
      '[]',
      'null',
      '{"gid":5}',
      '{"gid":""}',
      `{"gid":"${'x'.repeat(300)}"}`,
      '{"gid":"a\\u0000b"}',
      '{"gid":"old","exp":1}',
    ]) {
      await a.store.publish!(REVOCATION_CHANNEL, m);
    }
    await a.store.publish!(REVOCATION_CHANNEL, JSON.stringify({ gid: 'forged', exp: Number.MAX_SAFE_INTEGER }));
    await pollUntil(async () => b.list.isRevoked('forged'), 1000, 5);
    expect(b.list.isRevoked('old')).toBe(false);
    expect(b.list.isRevoked('a\u0000b')).toBe(false);
  });
});
