/**
 * Two real gateway processes (the CLI, one shared YAML file) on one real redis-server, behind a load
 * balancer in the test process whose origin is the shared issuer. The test steers each request to
 * instance A or B and proves that clients, codes, refresh-token families, revocations, MCP session
 * bindings and rate-limit counters are shared, and measures how fast a revocation reaches the other
 * instance (pub/sub; the 1 s storage poll is the safety net).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../helpers/gateway.js';
import { startMcpBackend, type McpBackend } from '../helpers/mcp-backend.js';
import { authorizeOnly, obtainToken } from '../helpers/oauth-client.js';
import { describeRedis, RedisServer } from '../helpers/redis-server.js';
import { ALICE, BOB, startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';
import { pollUntil, runCli, startBalancer, stopProcess, waitForText, type Balancer, type CliRun, type Target } from './helpers.js';

const SECRET = 'multi-instance-secret-multi-instance-secret-0123';
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
});
const RPC_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
/** Measured propagation times, printed at the end. */
const measured: Record<string, number> = {};

describeRedis('two gateway processes, one Redis, one load balancer', () => {
  let redis: RedisServer;
  let idp: UpstreamIdp;
  let backend: McpBackend;
  let lb: Balancer;
  let dir: string;
  let configFile: string;
  const procs: Partial<Record<Target, CliRun>> = {};
  const direct: Record<Target, string> = { A: '', B: '' };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-multi-'));
    redis = await RedisServer.start({ args: ['--appendonly', 'yes'] });
    idp = await startUpstreamIdp([ALICE, BOB], { cleanup: false });
    backend = await startMcpBackend({ cleanup: false });
    lb = await startBalancer();
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${lb.url}/oauth/callback`] });
    configFile = join(dir, 'gateway.yaml');
    writeFileSync(
      configFile,
      [
        'host: 127.0.0.1',
        `issuer: ${lb.url}`,
        `session_secret: ${SECRET}`,
        'trust_proxy: true',
        'logging: {level: warn}',
        'limits: {shutdown_grace: 1}',
        'storage:',
        '  type: redis',
        `  redis: {host: 127.0.0.1, port: ${redis.port}, socket_timeout: 2, socket_connect_timeout: 2, sweep_interval: 0}`,
        'oauth_providers:',
        `  myidp: {issuer: "${idp.issuer}", client_id: gateway, client_secret: gateway-secret, allow_insecure_http: true, scopes: [openid, email, profile, groups]}`,
        'mcp_services:',
        `  calc: {name: Calculator, url: "${backend.url}", oauth_provider: myidp, scopes: ["mcp:tools"]}`,
        'rate_limits: {register_per_minute: 20}',
        // Reuse is detected at once here (the grace window has its own cross-instance test in refresh-grace.test.ts).
        'tokens: {refresh_reuse_grace: 0}',
        '',
      ].join('\n'),
    );
    lb.ports = { A: await freePort(), B: await freePort() };
    for (const t of ['A', 'B'] as const) {
      procs[t] = runCli(['--config', configFile, '--port', String(lb.ports[t])]);
      direct[t] = `http://127.0.0.1:${lb.ports[t]}`;
    }
    await Promise.all([waitForText(procs.A!, 'listening on'), waitForText(procs.B!, 'listening on')]);
  });

  afterAll(async () => {
    await Promise.allSettled([stopProcess(procs.A), stopProcess(procs.B)]);
    await Promise.allSettled([lb?.close(), backend?.close(), idp?.close()]);
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.info(`measured propagation (ms): ${JSON.stringify(measured)}`);
  });

  const form = async (base: string, path: string, body: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(body),
    });
    return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  /** Status of an MCP initialize at one instance's proxy (called directly, bypassing the balancer). */
  const mcp = async (t: Target, accessToken: string, sessionId?: string) => {
    const res = await fetch(`${direct[t]}/calc/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization: `Bearer ${accessToken}`, ...(sessionId ? { 'mcp-session-id': sessionId } : {}) },
      body: INIT,
    });
    await res.arrayBuffer().catch(() => undefined);
    return { status: res.status, session: res.headers.get('mcp-session-id') ?? undefined };
  };
  const signIn = async (t: Target, user = ALICE) => {
    lb.pick = undefined;
    lb.target = t;
    idp.nextUser = user;
    return obtainToken(lb.url, 'calc');
  };

  it('both instances are ready on Redis with pub/sub revocation', async () => {
    for (const t of ['A', 'B'] as const) {
      const res = await fetch(`${direct[t]}/ready`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        status: 'ready',
        storage: { backend: 'redis', healthy: true },
        revocation: { healthy: true, pubsub: true },
        rate_limits: { counters: 'redis' },
      });
    }
  });

  it('a client registered through A works at B (sign-in, token, MCP call)', async () => {
    lb.log.length = 0;
    lb.pick = (req) => (req.url?.startsWith('/oauth/register') ? 'A' : 'B');
    idp.nextUser = ALICE;
    const { tokens } = await obtainToken(lb.url, 'calc');
    expect(lb.log.filter((l) => l.path === '/oauth/register').map((l) => l.to)).toEqual(['A']);
    expect(lb.log.some((l) => l.to === 'B' && l.path === '/oauth/token')).toBe(true);
    expect((await mcp('B', tokens.access_token)).status).toBe(200);
    expect((await mcp('A', tokens.access_token)).status).toBe(200);
  });

  it('a code issued by A is redeemed at B exactly once; the replay at A revokes the grant everywhere', async () => {
    lb.pick = undefined;
    lb.target = 'A';
    idp.nextUser = ALICE;
    const provider = await authorizeOnly(lb.url, 'calc');
    const params = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      code_verifier: provider.codeVerifier(),
      redirect_uri: provider.redirectUri,
      client_id: provider.clientInformation()!.client_id,
    };
    const first = await form(direct.B, '/oauth/token', params);
    expect(first.status).toBe(200);
    const access = String(first.json.access_token);
    expect((await mcp('A', access)).status).toBe(200);
    const replay = await form(direct.A, '/oauth/token', params);
    expect(replay.status).toBe(400);
    expect(replay.json.error).toBe('invalid_grant');
    measured.codeReplayAtA_refusedAtB = await pollUntil(async () => (await mcp('B', access)).status === 401, 1000);
    expect((await mcp('A', access)).status).toBe(401);
    // The refresh token of the first redemption died with the grant.
    const refresh = await form(direct.B, '/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: String(first.json.refresh_token),
      client_id: params.client_id,
    });
    expect(refresh.json.error).toBe('invalid_grant');
  });

  it('refresh-token reuse detected at B revokes the grant everywhere: A refuses the access token within 1 s', async () => {
    const { tokens, provider } = await signIn('A');
    const clientId = provider.clientInformation()!.client_id;
    const rotated = await form(direct.A, '/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: clientId,
    });
    expect(rotated.status).toBe(200);
    const access = String(rotated.json.access_token);
    expect((await mcp('A', access)).status).toBe(200);
    const reuse = await form(direct.B, '/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
      client_id: clientId,
    });
    expect(reuse.status).toBe(400);
    expect(reuse.json.error).toBe('invalid_grant');
    const elapsed = await pollUntil(async () => (await mcp('A', access)).status === 401, 1000);
    measured.refreshReuseAtB_refusedAtA = elapsed;
    expect(elapsed).toBeLessThanOrEqual(1000);
    const again = await form(direct.A, '/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: String(rotated.json.refresh_token),
      client_id: clientId,
    });
    expect(again.json.error).toBe('invalid_grant');
  });

  it('RFC 7009 revocation at A is refused at B within one second (measured)', async () => {
    const { tokens, provider } = await signIn('A');
    expect((await mcp('B', tokens.access_token)).status).toBe(200);
    const rev = await form(direct.A, '/oauth/revoke', { token: tokens.refresh_token!, client_id: provider.clientInformation()!.client_id });
    expect(rev.status).toBe(200);
    const elapsed = await pollUntil(async () => (await mcp('B', tokens.access_token)).status === 401, 1000);
    measured.rfc7009AtA_refusedAtB = elapsed;
    expect(elapsed).toBeLessThanOrEqual(1000);
  });

  it('`mcp-oauth-gateway revoke --grant` (a third process) is refused at A and B within one second of its exit', async () => {
    const { tokens } = await signIn('B');
    const gid = String(decodeJwt(tokens.access_token).gid);
    expect((await mcp('A', tokens.access_token)).status).toBe(200);
    const cli = runCli(['revoke', '--grant', gid, '--config', configFile]);
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toContain('revoked 1 grant');
    const elapsed = await pollUntil(
      async () => (await mcp('A', tokens.access_token)).status === 401 && (await mcp('B', tokens.access_token)).status === 401,
      1000,
    );
    measured.cliRevoke_refusedAtAandB = elapsed;
    expect(elapsed).toBeLessThanOrEqual(1000);
  });

  it('legacy MCP session bindings are shared: a session opened by user 1 via A is 404 for user 2 via B', async () => {
    const alice = await signIn('A', ALICE);
    const bob = await signIn('B', BOB);
    const opened = await mcp('A', alice.tokens.access_token);
    expect(opened.status).toBe(200);
    expect(opened.session).toBeTruthy();
    const before = backend.requests.length;
    const stolen = await fetch(`${direct.B}/calc/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization: `Bearer ${bob.tokens.access_token}`, 'mcp-session-id': opened.session! },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    expect(stolen.status).toBe(404);
    expect(backend.requests.length).toBe(before); // never reached the backend
    const own = await fetch(`${direct.B}/calc/mcp`, {
      method: 'POST',
      headers: {
        ...RPC_HEADERS,
        authorization: `Bearer ${alice.tokens.access_token}`,
        'mcp-session-id': opened.session!,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    expect(own.status).toBe(200);
  });

  it('rate-limit counters are shared: registrations from one IP alternate A/B and hit one limit of 20', async () => {
    lb.pick = undefined;
    const body = JSON.stringify({ redirect_uris: ['http://127.0.0.1:49152/callback'], token_endpoint_auth_method: 'none' });
    const register = async (t: Target) => {
      lb.target = t;
      const res = await fetch(`${lb.url}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '10.7.7.7' },
        body,
      });
      await res.arrayBuffer();
      return res;
    };
    for (let i = 0; i < 20; i++) expect((await register(i % 2 === 0 ? 'A' : 'B')).status).toBe(201);
    for (const t of ['A', 'B'] as const) {
      const res = await register(t);
      expect(res.status).toBe(429);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });
});
