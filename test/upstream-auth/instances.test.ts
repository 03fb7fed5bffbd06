/**
 * Across instances and restarts (docs/upstream-auth.md): two gateways on one real redis-server share the
 * users' connections, and a refresh due while both serve the same user at once happens exactly once (the
 * IdP rotates refresh tokens, so a second refresh would be a replay and revoke the grant); a gateway
 * restarted on its SQLite file keeps them, and a rotated `upstream_tokens.secret` still opens them while
 * the old one is listed in `previous_secrets`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { createGateway, type Gateway } from '../../src/http/app.js';
import { testConfig } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';
import { describeRedis, RedisServer, redisConfig } from '../helpers/redis-server.js';
import { startBalancer } from '../multi-instance/helpers.js';
import { VaultStandin } from '../helpers/vault-standin.js';
import { connect, gatewayConfig, registerAtIdp, startIdp, startWorld, UPSTREAM_SECRET, upstreamWhoami } from './world.js';

async function started(config: ReturnType<typeof testConfig>): Promise<{ gw: Gateway; port: number }> {
  const gw = await createGateway(config, { silent: true });
  const address = await gw.listen();
  return { gw, port: Number(new URL(address).port) };
}

describeRedis('upstream_auth on Redis, two instances', () => {
  it('share connections, and refresh single-flight across instances', async () => {
    const redis = await RedisServer.start();
    onTestFinished(() => redis.stop());
    const { idp, backend } = await startIdp({ accessTokenTtl: 60, rotateRefreshTokens: true });
    const lb = await startBalancer();
    onTestFinished(() => lb.close());
    const config = testConfig({
      issuer: lb.url,
      limits: { shutdown_grace: 1 },
      ...gatewayConfig(idp, backend, { storage: redisConfig({ url: redis.url }), refreshBeforeExpiry: 4 }),
    });
    const a = await started(config);
    onTestFinished(() => a.gw.close());
    const b = await started(config);
    onTestFinished(() => b.gw.close());
    lb.ports = { A: a.port, B: b.port };
    registerAtIdp(idp, [lb.url]);

    lb.target = 'A';
    const session = await connect(lb.url, 'files');
    onTestFinished(() => session.close());
    const first = await upstreamWhoami(session);
    expect(first.api.sub).toBe('alice');
    // Signed in through A; B finds the same connection in Redis.
    lb.target = 'B';
    expect((await upstreamWhoami(session)).received).toBe(first.received);

    // Due for refresh: the stored token's expiry moved inside the refresh window (the refreshed one then
    // stays fresh for the rest of the test, however slow the machine). Eight calls at once, both instances.
    const tokens = a.gw.ctx.credentials!.tokens;
    const held = (await tokens.get('sign_in', 'corp', 'corp:alice', true))!;
    await tokens.put('sign_in', 'corp', 'corp:alice', { ...held, expires_at: Date.now() + 2000 });
    b.gw.ctx.credentials!.tokens.forgetAll();
    let n = 0;
    lb.pick = () => (n++ % 2 === 0 ? 'A' : 'B');
    const results = await Promise.all(Array.from({ length: 8 }, () => upstreamWhoami(session)));
    expect(new Set(lb.log.slice(-8).map((l) => l.to))).toEqual(new Set(['A', 'B']));
    for (const r of results) expect(r.api.sub).toBe('alice');
    expect(new Set(results.map((r) => r.received)).size).toBe(1);
    expect(results[0]!.received).not.toBe(first.received);
    expect(idp.grants.filter((g) => g.grant_type === 'refresh_token')).toHaveLength(1);
    const refreshes = async (gw: Gateway) =>
      (await gw.ctx.metrics.registry.getSingleMetricAsString('mcp_gateway_upstream_token_refreshes_total')).match(
        /outcome="success"} (\d+)/,
      )?.[1] ?? '0';
    expect(Number(await refreshes(a.gw)) + Number(await refreshes(b.gw))).toBe(1);
  });
});

it('a restart on SQLite keeps the connections; a rotated secret opens them through previous_secrets', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-upstream-restart-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const { idp, backend } = await startIdp();
  const port = await freePort();
  const base = gatewayConfig(idp, backend, { storage: { type: 'sqlite', sqlite: { path: join(dir, 'gw.db') } } });
  const configWith = (upstream_tokens: Record<string, unknown>) =>
    testConfig({ issuer: `http://127.0.0.1:${port}`, port, limits: { shutdown_grace: 1 }, ...base, upstream_tokens });
  registerAtIdp(idp, [`http://127.0.0.1:${port}`]);

  const one = await started(configWith({ secret: UPSTREAM_SECRET }));
  const session = await connect(`http://127.0.0.1:${port}`, 'files');
  onTestFinished(() => session.close());
  const before = await upstreamWhoami(session);
  expect(before.api.sub).toBe('alice');
  await one.gw.close();

  // Same file, same secret: the same MCP session and the same upstream token, without a new sign-in.
  const two = await started(configWith({ secret: UPSTREAM_SECRET }));
  expect((await upstreamWhoami(session)).received).toBe(before.received);
  await two.gw.close();

  // A new secret alone cannot open the stored tokens: the user is asked to connect.
  const NEXT = 'the-next-upstream-token-secret-after-rotation-98765';
  const three = await started(configWith({ secret: NEXT }));
  const err = await upstreamWhoami(session).then(
    () => undefined,
    (e: Error & { code?: number }) => e,
  );
  expect(err?.code).toBe(403);
  await three.gw.close();

  // With the old one in previous_secrets they open again.
  const four = await started(configWith({ secret: NEXT, previous_secrets: [UPSTREAM_SECRET] }));
  onTestFinished(() => four.gw.close());
  expect((await upstreamWhoami(session)).received).toBe(before.received);
  expect(idp.grants.filter((g) => g.grant_type === 'authorization_code')).toHaveLength(1);
});

it('on Vault (KV v2 stand-in): stored, refreshed under the lock, deleted by the user index', async () => {
  const vault = await VaultStandin.start();
  onTestFinished(() => vault.stop());
  const storage = {
    type: 'vault',
    vault: { url: vault.url, token: vault.rootToken, path_prefix: 'gw-upstream', sweep_interval: 0, timeout: 5 },
  };
  const { idp, gw } = await startWorld({ storage, accessTokenTtl: 60, refreshBeforeExpiry: 4 });
  const session = await connect(gw.url, 'files');
  onTestFinished(() => session.close());
  const first = await upstreamWhoami(session);
  expect(first.api.sub).toBe('alice');
  const tokens = gw.ctx.credentials!.tokens;
  const held = (await tokens.get('sign_in', 'corp', 'corp:alice', true))!;
  await tokens.put('sign_in', 'corp', 'corp:alice', { ...held, expires_at: Date.now() + 2000 });
  const next = await upstreamWhoami(session);
  expect(next.api.sub).toBe('alice');
  expect(next.received).not.toBe(first.received);
  expect(idp.grants.filter((g) => g.grant_type === 'refresh_token')).toHaveLength(1);
  expect(await gw.ctx.credentials!.disconnect('corp:alice')).toBe(1);
  const err = await upstreamWhoami(session).then(
    () => undefined,
    (e: Error & { code?: number }) => e,
  );
  expect(err?.code).toBe(403);
});
