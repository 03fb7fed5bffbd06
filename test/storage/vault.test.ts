/**
 * Vault back-end against the in-process KV v2 stand-in: the shared contract with token auth, AppRole and a
 * namespace, the Vault+SQLite split store, plus Vault-specific behaviour (auth expiry and re-login,
 * sweep, key encoding, outage).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageSchema } from '../../src/config/schema.js';
import { decodeSegment, encodeSegment, keyToPath } from '../../src/storage/vault/path.js';
import { createVaultStore, VaultStore } from '../../src/storage/vault/vault-store.js';
import type { Store } from '../../src/storage/store.js';
import { controlledClock } from '../helpers/clock.js';
import { describeRedis, RedisServer } from '../helpers/redis-server.js';
import { VaultStandin } from '../helpers/vault-standin.js';
import { storeContract } from './contract.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'gw-vault-'));
let vault: VaultStandin;
let n = 0;

beforeAll(async () => {
  vault = await VaultStandin.start({
    approle: { roleId: 'role-123', secretId: 'secret-456' },
    kubernetes: { role: 'gateway', jwt: 'k8s-jwt-789', tokenTtlSeconds: 600 },
  });
});
afterAll(async () => {
  await vault?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function cfg(vaultCfg: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return storageSchema.parse({
    type: 'vault',
    vault: { url: vault.url, token: vault.rootToken, path_prefix: `gw-test/${n++}`, sweep_interval: 0, timeout: 5, ...vaultCfg },
    ...extra,
  });
}

storeContract('vault (token)', { create: () => createVaultStore(cfg({}), {}) });
storeContract('vault (approle)', {
  create: () => createVaultStore(cfg({ auth_method: 'approle', token: undefined, role_id: 'role-123', secret_id: 'secret-456' }), {}),
});
storeContract('vault (namespace)', { create: () => createVaultStore(cfg({ namespace: 'team-a/' }), {}) });
storeContract('vault + sqlite split', {
  create: () =>
    createVaultStore(
      cfg(
        // Spread the contract's keys over both back-ends so merges and routing are exercised.
        { short_lived: 'sqlite', short_lived_prefixes: ['tok:2', 'tok:4', 'p:a', 'p:z', 'code', 'once', 'race', 'ix:b'] },
        { sqlite: { path: join(dir, `split-${n}.db`) } },
      ),
      {},
    ),
});

describe('vault specifics', () => {
  it('key encoding round-trips and keeps colons as folders', () => {
    for (const k of ['oidc:Client:abc', 'usr:Zoë-名前-😀-é', 'a::b', 'p:', ':', '_x_2F', '../..', 'a/b c?d#e%f']) {
      const path = keyToPath(k);
      expect(path).toMatch(/^[A-Za-z0-9_\-/]+$/);
      expect(
        path
          .split('/')
          .map((s) => decodeSegment(s))
          .join(''),
      ).toBe(k);
    }
    expect(keyToPath('oidc:Client:abc')).toBe('oidc_3A/Client_3A/abc');
    expect(decodeSegment('not.ours')).toBeUndefined();
    expect(decodeSegment('_3a')).toBeUndefined(); // lower-case hex is not our encoding
    expect(encodeSegment('_')).toBe('_5F');
  });

  it('stores records under readable, encoded KV paths in the namespace and mount configured', async () => {
    const s = await createVaultStore(cfg({ namespace: 'ns-paths', path_prefix: 'gw' }), {});
    try {
      await s.set('oidc:Client:c1', { name: 'x' }, { indexes: ['owner:ü'] });
      expect(vault.secretPaths('secret', 'ns-paths')).toEqual(['gw/i/owner_3A_C3_BC/oidc_3AClient_3Ac1', 'gw/r/oidc_3A/Client_3A/c1']);
      expect(vault.secretPaths('secret', '')).not.toContain('gw/r/oidc_3A/Client_3A/c1');
    } finally {
      await s.close();
    }
  });

  it('list by prefix works across folder boundaries and mid-segment prefixes', async () => {
    const s = await createVaultStore(cfg({}), {});
    try {
      for (const k of ['a:b:c', 'a:b', 'a:bc:d', 'a:', 'a', 'ab:x', 'a::z']) await s.set(k, { k });
      expect((await s.list('a:')).map((r) => r.key)).toEqual(['a:', 'a::z', 'a:b', 'a:b:c', 'a:bc:d']);
      expect((await s.list('a:b')).map((r) => r.key)).toEqual(['a:b', 'a:b:c', 'a:bc:d']);
      expect((await s.list('a')).map((r) => r.key)).toEqual(['a', 'a:', 'a::z', 'a:b', 'a:b:c', 'a:bc:d', 'ab:x']);
      expect((await s.list('', { limit: 2 })).map((r) => r.key)).toEqual(['a', 'a:']);
    } finally {
      await s.close();
    }
  });

  it('sweep hard-deletes expired records, tombstones and stale index entries', async () => {
    const s = (await createVaultStore(cfg({ path_prefix: 'sweep' }), {})) as VaultStore;
    try {
      await s.set('x:gone', { v: 1 }, { ttlSeconds: 1, indexes: ['t:1'] });
      await s.set('x:kept', { v: 2 }, { indexes: ['t:1'] });
      await s.set('x:moved', { v: 3 }, { indexes: ['t:1'] });
      expect(vault.secretPaths().filter((p) => p.startsWith('sweep/')).length).toBe(6);
      controlledClock().elapse(1100);
      expect(await s.sweep()).toBe(1);
      expect(vault.secretPaths().filter((p) => p.startsWith('sweep/'))).toEqual([
        'sweep/i/t_3A1/x_3Akept',
        'sweep/i/t_3A1/x_3Amoved',
        'sweep/r/x_3A/kept',
        'sweep/r/x_3A/moved',
      ]);
      expect(await s.listByIndex('t:1')).toEqual(['x:kept', 'x:moved']);
    } finally {
      await s.close();
    }
  });

  it('an expired, non-renewable token gives a clear error without leaking the token; health turns false', async () => {
    const token = vault.issueToken({ ttlSeconds: 60, renewable: false });
    const s = await createVaultStore(cfg({ token }), {});
    try {
      await s.set('k', { v: 1 });
      vault.expireToken(token);
      const err = await s.get('k').then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/permission denied: the Vault token has expired or been revoked/);
      expect(err?.message).not.toContain(token);
      const h = await s.health();
      expect(h.ok).toBe(false);
      expect(h.detail).toMatch(/permission denied/);
    } finally {
      await s.close();
    }
  });

  it('a renewable token is renewed before it expires', async () => {
    const token = vault.issueToken({ ttlSeconds: 2, renewable: true });
    const s = await createVaultStore(cfg({ token }), {});
    try {
      await sleep(2500);
      await s.set('k', { v: 1 });
      expect((await s.get('k'))?.value).toEqual({ v: 1 });
      expect(vault.requests.get('POST renew-self')).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });

  it('AppRole logs in again when Vault starts answering 403 (token expired behind our back)', async () => {
    const s = await createVaultStore(cfg({ auth_method: 'approle', token: undefined, role_id: 'role-123', secret_id: 'secret-456' }), {});
    try {
      await s.set('k', { v: 1 });
      const before = vault.logins;
      vault.expireAllTokens();
      expect((await s.get('k'))?.value).toEqual({ v: 1 });
      expect(vault.logins).toBe(before + 1);
      expect((await s.health()).ok).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('AppRole with wrong credentials and an unreachable Vault fail at start with clear errors', async () => {
    await expect(
      createVaultStore(cfg({ auth_method: 'approle', token: undefined, role_id: 'role-123', secret_id: 'wrong-secret' }), {}),
    ).rejects.toThrow(
      /^cannot connect to Vault at http:\/\/127\.0\.0\.1:\d+: Vault POST auth\/approle\/login failed with HTTP 400: invalid role or secret ID$/,
    );
    const bad = storageSchema.parse({ type: 'vault', vault: { url: 'http://127.0.0.1:1', token: 'hvs.nope', timeout: 1 } });
    await expect(createVaultStore(bad, {})).rejects.toThrow(
      /^cannot connect to Vault at http:\/\/127\.0\.0\.1:1: .*unreachable: ECONNREFUSED/,
    );
  });

  it('a missing KV mount is refused at start', async () => {
    await expect(createVaultStore(cfg({ mount_point: 'not-mounted' }), {})).rejects.toThrow(
      /^cannot use Vault at http:\/\/127\.0\.0\.1:\d+: Vault GET on mount "not-mounted" failed with HTTP 404: no handler for route/,
    );
  });

  it('Kubernetes auth reads the service-account JWT from jwt_path', async () => {
    const jwtPath = join(dir, 'sa-token');
    writeFileSync(jwtPath, 'k8s-jwt-789\n');
    const s = await createVaultStore(cfg({ auth_method: 'kubernetes', token: undefined, role: 'gateway', jwt_path: jwtPath }), {});
    try {
      await s.set('k', { v: 1 });
      expect((await s.get('k'))?.value).toEqual({ v: 1 });
    } finally {
      await s.close();
    }
    const missing = cfg({ auth_method: 'kubernetes', token: undefined, role: 'gateway', jwt_path: join(dir, 'nope') });
    await expect(createVaultStore(missing, {})).rejects.toThrow(/cannot read the Kubernetes service-account token/);
  });

  it('AppRole logs in again before the lease runs out', async () => {
    const short = await VaultStandin.start({ approle: { roleId: 'r', secretId: 's', tokenTtlSeconds: 1 } });
    const s = await createVaultStore(
      storageSchema.parse({
        type: 'vault',
        vault: { url: short.url, auth_method: 'approle', role_id: 'r', secret_id: 's', sweep_interval: 0 },
      }),
      {},
    );
    try {
      await s.set('k', { v: 1 });
      await sleep(1600);
      expect(short.logins).toBeGreaterThanOrEqual(2);
      expect(short.requests.get('403') ?? 0).toBe(0);
      expect((await s.get('k'))?.value).toEqual({ v: 1 });
    } finally {
      await s.close();
      await short.stop();
    }
  });

  it('a Vault that accepts but never answers times out after `timeout`', async () => {
    const s = await createVaultStore(cfg({ timeout: 0.5 }), {});
    try {
      vault.hang = true;
      const t0 = Date.now();
      await expect(s.get('k')).rejects.toThrow(/unreachable: no answer within 500 ms/);
      expect(Date.now() - t0).toBeLessThan(1500);
      const h = await s.health();
      expect(h.ok).toBe(false);
    } finally {
      vault.hang = false;
      await s.close();
    }
  });

  it('outage: operations fail promptly with GW_ERR_STORE_UNAVAILABLE, health is false, and it recovers', async () => {
    const s: Store = await createVaultStore(cfg({ timeout: 1 }), {});
    try {
      await s.set('k', { v: 1 });
      await vault.stop();
      const t0 = Date.now();
      await expect(s.get('k')).rejects.toMatchObject({ code: 'GW_ERR_STORE_UNAVAILABLE' });
      expect(Date.now() - t0).toBeLessThan(2000);
      expect((await s.health()).ok).toBe(false);
      await vault.start();
      expect((await s.get('k'))?.value).toEqual({ v: 1 });
      expect((await s.health()).ok).toBe(true);
      vault.sealed = true;
      await expect(s.get('k')).rejects.toThrow(/HTTP 503: Vault is sealed/);
      expect((await s.health()).detail).toMatch(/sealed/);
    } finally {
      vault.sealed = false;
      await vault.start();
      await s.close();
    }
  });
});

describeRedis('vault + redis split', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => server?.stop());

  it('routes short-lived prefixes to Redis, merges tag lookups and exposes Redis pub/sub', async () => {
    const s = await createVaultStore(
      cfg({ short_lived: 'redis', path_prefix: 'split-redis' }, { redis: { host: '127.0.0.1', port: server.port, key_prefix: 'split:' } }),
      {},
    );
    try {
      expect(s.backend).toBe('vault+redis');
      await s.set('oidc:AuthorizationCode:c1', { v: 1 }, { ttlSeconds: 60, indexes: ['grant:g'] });
      await s.set('oidc:RefreshToken:r1', { v: 2 }, { ttlSeconds: 600, indexes: ['grant:g'] });
      expect(vault.secretPaths().filter((p) => p.startsWith('split-redis/r/'))).toEqual(['split-redis/r/oidc_3A/RefreshToken_3A/r1']);
      expect(await s.listByIndex('grant:g')).toEqual(['oidc:AuthorizationCode:c1', 'oidc:RefreshToken:r1']);
      expect((await s.list('oidc:')).map((r) => r.key)).toEqual(['oidc:AuthorizationCode:c1', 'oidc:RefreshToken:r1']);
      const got: string[] = [];
      await s.subscribe!('rev', (m) => got.push(m));
      await s.publish!('rev', 'g');
      for (let i = 0; i < 20 && got.length === 0; i++) await sleep(50);
      expect(got).toEqual(['g']);
      expect(await s.deleteByIndex('grant:g')).toBe(2);
      expect((await s.health()).ok).toBe(true);
    } finally {
      await s.close();
    }
  });
});
