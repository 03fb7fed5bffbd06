/**
 * migrateStore: sqlite -> redis and redis -> sqlite (and memory -> vault stand-in), preserving values,
 * remaining TTLs (approximately), index tags and the consumed state; expired records are skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageSchema } from '../../src/config/schema.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { migrateStore } from '../../src/storage/migrate.js';
import { createRedisStore } from '../../src/storage/redis/redis-store.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { Store } from '../../src/storage/store.js';
import { createVaultStore } from '../../src/storage/vault/vault-store.js';
import { describeRedis, RedisServer, redisConfig } from '../helpers/redis-server.js';
import { VaultStandin } from '../helpers/vault-standin.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'gw-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function seed(s: Store): Promise<void> {
  await s.set('oidc:Client:c1', { client_id: 'c1' }, { indexes: ['owner:alice'] });
  await s.set('oidc:RefreshToken:r1', { grantId: 'g1' }, { ttlSeconds: 600, indexes: ['grant:g1', 'uid:u1'] });
  await s.set('oidc:AuthorizationCode:a1', { grantId: 'g1' }, { ttlSeconds: 300, indexes: ['grant:g1'] });
  await s.consume('oidc:AuthorizationCode:a1');
  await s.set('gw:short', { v: 1 }, { ttlSeconds: 1 });
}

async function verify(s: Store, t0: number): Promise<void> {
  expect((await s.get('oidc:Client:c1'))?.value).toEqual({ client_id: 'c1' });
  expect((await s.get('oidc:Client:c1'))?.expiresAt).toBeUndefined();
  const r1 = await s.get('oidc:RefreshToken:r1');
  expect(r1?.value).toEqual({ grantId: 'g1' });
  expect(Math.abs((r1?.expiresAt ?? 0) - (t0 + 600_000))).toBeLessThan(3000);
  const a1 = await s.get('oidc:AuthorizationCode:a1');
  expect(typeof a1?.consumedAt).toBe('number');
  expect(await s.consume('oidc:AuthorizationCode:a1')).toBe(false);
  expect(await s.listByIndex('grant:g1')).toEqual(['oidc:AuthorizationCode:a1', 'oidc:RefreshToken:r1']);
  expect(await s.listByIndex('uid:u1')).toEqual(['oidc:RefreshToken:r1']);
  expect(await s.listByIndex('owner:alice')).toEqual(['oidc:Client:c1']);
  expect(await s.get('gw:short')).toBeUndefined();
}

async function roundTrip(from: Store, to: Store): Promise<void> {
  const t0 = Date.now();
  await seed(from);
  await sleep(1100); // let gw:short expire in the source
  const progress: number[] = [];
  const result = await migrateStore(from, to, { onProgress: (k) => progress.push(k), progressEvery: 2 });
  expect(result).toEqual({ copied: 3, skipped: 0 }); // an expired record is not listed, so not even skipped
  expect(progress.at(-1)).toBe(3);
  await verify(to, t0);
}

describeRedis('migrate between sqlite and redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => server?.stop());

  it('sqlite -> redis', async () => {
    const from = SqliteStore.open(join(dir, `a-${n++}.db`));
    const to = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port, key_prefix: `m${n++}:` }), {});
    try {
      await roundTrip(from, to);
    } finally {
      await Promise.all([from.close(), to.close()]);
    }
  });

  it('redis -> sqlite', async () => {
    const from = await createRedisStore(redisConfig({ host: '127.0.0.1', port: server.port, key_prefix: `m${n++}:` }), {});
    const to = SqliteStore.open(join(dir, `b-${n++}.db`));
    try {
      await roundTrip(from, to);
    } finally {
      await Promise.all([from.close(), to.close()]);
    }
  });
});

describe('migrate to vault, with prefixes', () => {
  it('memory -> vault copies only the selected prefixes, once each', async () => {
    const vault = await VaultStandin.start();
    const from = new MemoryStore();
    const to = await createVaultStore(
      storageSchema.parse({ type: 'vault', vault: { url: vault.url, token: vault.rootToken, sweep_interval: 0 } }),
      {},
    );
    try {
      await seed(from);
      const result = await migrateStore(from, to, { prefixes: ['oidc:Client:', 'oidc:', 'nothing:'] });
      expect(result).toEqual({ copied: 3, skipped: 0 });
      expect((await to.list('')).map((r) => r.key)).toEqual(['oidc:AuthorizationCode:a1', 'oidc:Client:c1', 'oidc:RefreshToken:r1']);
      expect(await to.listByIndex('grant:g1')).toEqual(['oidc:AuthorizationCode:a1', 'oidc:RefreshToken:r1']);
      expect(typeof (await to.get('oidc:AuthorizationCode:a1'))?.consumedAt).toBe('number');
      await expect(migrateStore(from, from)).rejects.toThrow(TypeError);
    } finally {
      await Promise.all([from.close(), to.close()]);
      await vault.stop();
    }
  });
});
