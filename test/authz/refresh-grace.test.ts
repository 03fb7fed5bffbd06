/**
 * `tokens.refresh_reuse_grace`: two refreshes of one refresh token within the grace (two windows of one
 * client refreshing at once) both get the SAME new pair; after the grace, reuse revokes the grant as
 * before. On every storage back-end, with truly parallel requests.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { describe, expect, onTestFinished, test } from 'vitest';
import { hkdfSha256 } from '../../src/authz/refresh-grace.js';
import { createGateway } from '../../src/http/app.js';
import { freePort } from '../helpers/gateway.js';
import { controlledClock } from '../helpers/clock.js';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { redisAvailable, RedisServer, redisConfig } from '../helpers/redis-server.js';
import { VaultStandin } from '../helpers/vault-standin.js';
import { startWorld } from './setup.js';

type Reply = { status: number; json: Record<string, unknown> };

async function post(url: string, body: Record<string, string>, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function tmpDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-grace-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The storage back-ends, each started for one test. */
const backends: Record<string, (() => Promise<Record<string, unknown>>) | undefined> = {
  memory: async () => ({ type: 'memory' }),
  sqlite: async () => ({ type: 'sqlite', sqlite: { path: join(tmpDir(), 'gw.db') } }),
  redis: redisAvailable()
    ? async () => {
        const redis = await RedisServer.start();
        onTestFinished(() => redis.stop());
        return redisConfig({ url: redis.url });
      }
    : undefined,
  vault: async () => {
    const vault = await VaultStandin.start();
    onTestFinished(() => vault.stop());
    return { type: 'vault', vault: { url: vault.url, token: vault.rootToken, path_prefix: 'gw-grace', sweep_interval: 0, timeout: 5 } };
  },
};

async function graceWorld(grace: number, storage: Record<string, unknown> = { type: 'memory' }, extra: Record<string, unknown> = {}) {
  const { gw } = await startWorld({ storage, tokens: { refresh_reuse_grace: grace }, ...extra });
  const { tokens, provider } = await obtainToken(gw.url, 'calc');
  const clientId = provider.clientInformation()!.client_id;
  const refresh = (rt = tokens.refresh_token!, more: Record<string, string> = {}) =>
    post(`${gw.url}/oauth/token`, { grant_type: 'refresh_token', refresh_token: rt, client_id: clientId, ...more });
  return { gw, tokens, clientId, refresh, gid: String(decodeJwt(tokens.access_token).gid) };
}

describe('refresh reuse grace', () => {
  for (const [name, start] of Object.entries(backends)) {
    test.skipIf(!start)(`${name}: 8 truly parallel refreshes of one token all get the same new pair; the grant lives on`, async () => {
      const storage = await start!();
      const { gw, tokens, refresh, gid } = await graceWorld(10, storage);
      const results = await Promise.all(Array.from({ length: 8 }, () => refresh()));
      for (const r of results) expect(r.status, JSON.stringify(r.json)).toBe(200);
      const pairs = new Set(results.map((r) => `${String(r.json.access_token)} ${String(r.json.refresh_token)}`));
      expect(pairs.size).toBe(1);
      const [first] = results;
      expect(first!.json.refresh_token).not.toBe(tokens.refresh_token);
      expect(gw.ctx.revocations.isRevoked(gid)).toBe(false);
      // The shared new pair works: at the proxy, and its refresh token rotates once more.
      expect(
        (await fetch(`${gw.url}/calc/mcp`, { headers: { authorization: `Bearer ${String(first!.json.access_token)}` } })).status,
      ).not.toBe(401);
      const next = await refresh(String(first!.json.refresh_token));
      expect(next.status).toBe(200);
      // Nothing stored holds the new tokens in plaintext (SPEC §2/§4): the shared pair is sealed.
      const dump = JSON.stringify(await gw.ctx.store.list('', { limit: 10_000 }));
      expect(dump).toContain('gw:rt-grace:');
      for (const secret of [first!.json.refresh_token, first!.json.access_token, next.json.refresh_token])
        expect(dump).not.toContain(String(secret));
      const db = (storage as { sqlite?: { path: string } }).sqlite?.path;
      if (db) {
        for (const f of [db, `${db}-wal`])
          if (existsSync(f)) expect(readFileSync(f).includes(String(first!.json.refresh_token))).toBe(false);
      }
    });
  }

  test.skipIf(!redisAvailable())(
    'two gateway instances on one Redis: parallel refreshes split across them all get the same new pair',
    async () => {
      const redis = await RedisServer.start();
      onTestFinished(() => redis.stop());
      const { gw, tokens, clientId, gid } = await graceWorld(10, redisConfig({ url: redis.url }));
      // The second instance: the same configuration (issuer, session_secret, storage), another port.
      const second = await createGateway({ ...gw.ctx.config, port: await freePort() }, { silent: true });
      onTestFinished(() => second.close());
      const url2 = await second.listen();
      const body = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId };
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => post(`${i % 2 ? url2 : gw.url}/oauth/token`, body)));
      for (const r of results) expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(new Set(results.map((r) => String(r.json.refresh_token))).size).toBe(1);
      expect(gw.ctx.revocations.isRevoked(gid)).toBe(false);
      expect(second.ctx.revocations.isRevoked(gid)).toBe(false);
    },
  );

  test('a sequential reuse inside the grace gets the same pair with a shorter expires_in; after the grace it revokes the grant', async () => {
    const { gw, refresh, gid } = await graceWorld(2);
    const clock = controlledClock();
    const a = await refresh();
    clock.elapse(1100);
    const b = await refresh();
    expect(b.status).toBe(200);
    expect(b.json.refresh_token).toBe(a.json.refresh_token);
    expect(b.json.access_token).toBe(a.json.access_token);
    expect(Number(b.json.expires_in)).toBeLessThan(Number(a.json.expires_in));
    clock.elapse(1200);
    const late = await refresh();
    expect(late.status).toBe(400);
    expect(late.json.error).toBe('invalid_grant');
    expect(gw.ctx.revocations.isRevoked(gid)).toBe(true);
    expect((await refresh(String(a.json.refresh_token))).json.error).toBe('invalid_grant');
  });

  test('inside the grace the old refresh token is still inactive for introspection (only a refresh grant is answered from the grace)', async () => {
    const { gw, tokens, clientId, refresh } = await graceWorld(10);
    expect((await refresh()).status).toBe(200);
    const introspected = await post(`${gw.url}/oauth/introspect`, { token: tokens.refresh_token!, client_id: clientId });
    expect(introspected.json.active).toBe(false);
    expect((await refresh()).status).toBe(200);
  });

  test('a reuse inside the grace with other parameters (scope) is not a repeat: the grant is revoked', async () => {
    const { gw, refresh, gid } = await graceWorld(10);
    expect((await refresh()).status).toBe(200);
    const other = await refresh(undefined, { scope: 'mcp:tools' });
    expect(other.status).toBe(400);
    expect(other.json.error).toBe('invalid_grant');
    expect(gw.ctx.revocations.isRevoked(gid)).toBe(true);
  });

  test('the grace never skips client authentication: a confidential client without its secret gets invalid_client, not the pair', async () => {
    const client = {
      client_id: 'grace-conf',
      client_secret: 'grace-confidential-secret-0123456789',
      redirect_uris: ['http://127.0.0.1:49152/callback'],
      token_endpoint_auth_method: 'client_secret_post',
    };
    const { gw } = await startWorld({ tokens: { refresh_reuse_grace: 10 }, clients: [client] });
    const provider = new TestOAuthProvider({
      clientInformation: {
        client_id: client.client_id,
        client_secret: client.client_secret,
        token_endpoint_auth_method: 'client_secret_post',
      },
    });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const body = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: client.client_id };
    const a = await post(`${gw.url}/oauth/token`, { ...body, client_secret: client.client_secret });
    expect(a.status).toBe(200);
    const stranger = await post(`${gw.url}/oauth/token`, { ...body, client_secret: 'wrong' });
    expect(stranger.status).toBe(401);
    expect(stranger.json.refresh_token).toBeUndefined();
    const b = await post(`${gw.url}/oauth/token`, { ...body, client_secret: client.client_secret });
    expect(b.json.refresh_token).toBe(a.json.refresh_token);
  });

  test('grace 0 (the default): two parallel refreshes are a replay, as before (exactly one 200, the grant revoked)', async () => {
    const { gw, refresh, gid } = await graceWorld(0);
    const results = await Promise.all([refresh(), refresh()]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 400]);
    expect(gw.ctx.revocations.isRevoked(gid)).toBe(true);
    expect(JSON.stringify(await gw.ctx.store.list('gw:rt-grace:'))).toBe('[]');
  });
});

describe('the response key derivation', () => {
  test('hkdfSha256 gives the bytes of hkdfSync (RFC 5869, SHA-256, one 32-byte block), so sealed answers open across versions', () => {
    for (let i = 0; i < 50; i++) {
      const token = randomBytes(32 + i).toString('base64url');
      const salt = randomBytes(32);
      const info = 'refresh reuse grace: response';
      expect(hkdfSha256(token, salt, Buffer.from(info)).equals(Buffer.from(hkdfSync('sha256', token, salt, info, 32)))).toBe(true);
    }
  });
});
