/**
 * The error registry (src/errors.ts) against the wire: every code is produced over real HTTP by a real
 * gateway (real backends, a real redis-server for the storage outage), and the answer has the code's
 * status, `error`, JSON-RPC code (MCP path) and headers. The table below is keyed by code: a code added to
 * the registry without a way to produce it fails the completeness test (and the type check).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createHash } from 'node:crypto';
import { ERROR_CODES, type ErrorCode, type ErrorSpec } from '../../src/errors.js';
import { STDIO_SESSION_PREFIX } from '../../src/stdio/index.js';
import { createGateway } from '../../src/http/app.js';
import { testConfig } from '../helpers/config.js';
import { freePort, startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startEchoBackend, type EchoBackend } from '../helpers/mcp-backend.js';
import { redisAvailable, RedisServer } from '../helpers/redis-server.js';
import { bearer } from '../helpers/tokens.js';
import { pollUntil } from '../multi-instance/helpers.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** The request was JSON-RPC: the answer must be a JSON-RPC error. */
  rpc: boolean;
  /** What was sent, for failure messages. */
  what: string;
  /** The JSON-RPC id the error must carry: a refused tool call answers its request, and so does a local (stdio) server's exit; null otherwise. */
  expectId?: unknown;
}

const JSON_CT = 'application/json';
const STDIO_FIXTURE = fileURLToPath(new URL('../stdio/fixtures/mcp-stdio-server.mjs', import.meta.url));
const MODERN = { 'mcp-protocol-version': '2026-07-28' };
const MODERN_PING = { ...MODERN, 'mcp-method': 'ping' };
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'registry-test', version: '1' } },
});
const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });

/**
 * One HTTP/1.1 exchange with node:http (raw paths are sent as they are; fetch would normalise `%2e%2e`).
 * `body` as an array is sent chunked, one write per element.
 */
function send(
  url: string,
  init: { method?: string; path: string; headers?: Record<string, string>; body?: string | string[] },
): Promise<Answer> {
  const u = new URL(url);
  // The MCP path answers a JSON-RPC request (a POST with a JSON content type) with a JSON-RPC error.
  const jsonRpc =
    /^\/[^/]+\/mcp(\/|\?|$)/.test(init.path) &&
    (init.method ?? 'GET') === 'POST' &&
    (init.headers?.['content-type'] ?? '').includes('json');
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, method: init.method ?? 'GET', path: init.path, headers: { connection: 'close', ...init.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = { unparsable: text.slice(0, 200) };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, rpc: jsonRpc, what: `${init.method ?? 'GET'} ${init.path}` });
        });
        res.on('error', reject);
      },
    );
    // A refused upload may be cut by the server after its answer: that answer is what counts.
    req.on('error', reject);
    if (Array.isArray(init.body)) {
      for (const chunk of init.body) req.write(chunk);
      req.end();
    } else req.end(init.body);
  });
}

const post = (url: string, path: string, contentType: string, body: string | string[], headers: Record<string, string> = {}) =>
  send(url, {
    method: 'POST',
    path,
    headers: { 'content-type': contentType, accept: 'application/json, text/event-stream', ...headers },
    body,
  });

/** The checks every produced answer must pass for its registry entry. */
function expectAnswer(code: ErrorCode, a: Answer): void {
  const spec: ErrorSpec = ERROR_CODES[code];
  const at = `${code} from ${a.what}`;
  expect(a.status, at).toBe(spec.status);
  expect(String(a.headers['content-type']), at).toMatch(/^application\/json/);
  expect(a.headers['cache-control'], at).toBe('no-store');
  if (a.rpc) {
    const err = a.body.error as { code?: unknown; message?: unknown; data?: { error?: unknown } } | undefined;
    expect(a.body.jsonrpc, at).toBe('2.0');
    expect(a.body.id, at).toBe(a.expectId ?? null);
    expect(err?.code, at).toBe(spec.rpc);
    expect(err?.data?.error, at).toBe(spec.error);
    expect(typeof err?.message, at).toBe('string');
  } else {
    expect(a.body.error, at).toBe(spec.error);
    expect(typeof a.body.error_description, at).toBe('string');
  }
  if (typeof spec.retryAfter === 'number') expect(a.headers['retry-after'], at).toBe(String(spec.retryAfter));
  if (spec.retryAfter === 'computed') expect(Number(a.headers['retry-after']), at).toBeGreaterThan(0);
  if (spec.allow !== undefined) expect(a.headers.allow, at).toBe(spec.allow);
  if (spec.challenge !== undefined) {
    const challenge = String(a.headers['www-authenticate']);
    expect(challenge, at).toMatch(/^Bearer resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\//);
    if (spec.challenge === 'missing') expect(challenge, at).not.toContain('error=');
    if (spec.challenge === 'invalid') expect(challenge, at).toContain('error="invalid_token"');
    if (spec.challenge === 'scope') expect(challenge, at).toContain('error="insufficient_scope"');
  } else expect(a.headers['www-authenticate'], at).toBeUndefined();
}

/** The shared world: one gateway with a service per situation. */
interface World {
  gw: StartedGateway;
  hanging: EchoBackend;
}

let world: World;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const echo = await startEchoBackend(undefined, { cleanup: false });
  // Never answers: the timeout and the concurrency cap. Its connections are cut when it closes.
  const hanging = await startEchoBackend(
    Object.assign(() => undefined, { streaming: true }),
    { cleanup: false },
  );
  const session = await startEchoBackend(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'session-of-alice' });
      res.end('{"jsonrpc":"2.0","id":1,"result":{}}');
    },
    { cleanup: false },
  );
  const deadPort = await freePort();
  const gw = await startGateway(
    {
      oauth_providers: { dev: {} },
      limits: { shutdown_grace: 1 },
      mcp_services: {
        open: { name: 'open', url: echo.url, auth_required: false, max_request_bytes: 1024, protocol_versions: ['2025-06-18'] },
        svc: { name: 'svc', url: echo.url, oauth_provider: 'dev' },
        scoped: { name: 'scoped', url: echo.url, oauth_provider: 'dev', scopes: ['mcp:read', 'mcp:write'] },
        pol: { name: 'pol', url: echo.url, oauth_provider: 'dev', policy: { emails: ['bob@example.com'] } },
        tooled: { name: 'tooled', url: echo.url, oauth_provider: 'dev', tools: { rules: { danger: { deny: true } } } },
        sess: { name: 'sess', url: session.url, oauth_provider: 'dev' },
        slow: { name: 'slow', url: hanging.url, auth_required: false, timeout: 200 },
        busy: { name: 'busy', url: hanging.url, auth_required: false, max_concurrent: 1 },
        dead: { name: 'dead', url: `http://127.0.0.1:${deadPort}/mcp`, auth_required: false },
        // Local (stdio) services: one that exits at once, one shared process at most.
        'local-exit': { name: 'local-exit', command: [process.execPath, '-e', 'process.exit(3)'], oauth_provider: 'dev' },
        'local-one': {
          name: 'local-one',
          command: [process.execPath, STDIO_FIXTURE],
          oauth_provider: 'dev',
          per_user: false,
          max_processes: 1,
        },
      },
    },
    { cleanup: false },
  );
  closers.push(
    () => gw.close(),
    () => echo.close(),
    () => hanging.close(),
    () => session.close(),
  );
  world = { gw, hanging };
});

afterAll(async () => {
  await Promise.allSettled(closers.map((c) => c()));
});

/** A gateway of its own for one producer (rate limits, a storage outage, an unexpected failure). */
async function ownGateway(raw: Record<string, unknown>): Promise<StartedGateway> {
  return startGateway({ oauth_providers: { dev: {} }, limits: { shutdown_grace: 1 }, ...raw });
}

/** A gateway with a passthrough service whose provider (a closed port) never answers. */
async function upstreamAuthGateway(): Promise<StartedGateway> {
  const dead = await freePort();
  return startGateway({
    oauth_providers: { corp: { issuer: `http://127.0.0.1:${dead}`, client_id: 'gw', client_secret: 'gw-secret' } },
    upstream_tokens: { secret: 'upstream-token-secret-for-the-registry-test-0123' },
    mcp_services: {
      acts: { name: 'Acts', url: `http://127.0.0.1:${dead}/mcp`, oauth_provider: 'corp', upstream_auth: { mode: 'passthrough' } },
    },
    limits: { shutdown_grace: 1 },
  });
}

/** Bodies over each endpoint's limit (docs/errors.md "Request body too large"). */
async function tooLarge(url: string): Promise<Answer[]> {
  return [
    await post(url, '/oauth/token', 'application/x-www-form-urlencoded', `grant_type=refresh_token&refresh_token=${'x'.repeat(60 * 1024)}`),
    await post(
      url,
      '/oauth/register',
      JSON_CT,
      JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], client_name: 'x'.repeat(70 * 1024) }),
    ),
    await post(url, '/interaction/abc/decision', 'application/x-www-form-urlencoded', `csrf=${'x'.repeat(20 * 1024)}`),
    await post(url, '/open/mcp', 'text/plain', 'x'.repeat(4096)),
    await post(url, '/open/mcp', JSON_CT, 'x'.repeat(4096)),
    await post(
      url,
      '/open/mcp',
      'text/plain',
      Array.from({ length: 8 }, () => 'y'.repeat(512)),
    ),
  ];
}

const EVIL = 'http://evil.example';

/** A forbidden Origin at the MCP proxy and at the OAuth endpoints (docs/errors.md "Origin not allowed"). */
async function originRefusals(url: string): Promise<Answer[]> {
  const preflight = { origin: EVIL, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' };
  return [
    await post(url, '/open/mcp', JSON_CT, PING, { origin: EVIL }),
    await send(url, { path: '/open/mcp', headers: { origin: EVIL } }),
    await post(url, '/oauth/token', 'application/x-www-form-urlencoded', 'grant_type=authorization_code&code=stolen', { origin: EVIL }),
    await post(url, '/oauth/register', JSON_CT, JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'] }), { origin: EVIL }),
    await send(url, { method: 'OPTIONS', path: '/oauth/token', headers: preflight }),
    await send(url, { method: 'OPTIONS', path: '/.well-known/oauth-authorization-server', headers: preflight }),
  ];
}

/** How each code is produced on the wire. Keyed by code: the registry and this table must list the same codes. */
const PRODUCERS: Record<ErrorCode, (w: World) => Promise<Answer[]>> = {
  GW_ERR_NOT_FOUND: async ({ gw }) => [
    await send(gw.url, { path: '/no-such-route' }),
    await send(gw.url, { path: '/services/nosuch' }),
    // Protected resource metadata: an unknown service, one that needs no authentication, none named.
    await send(gw.url, { path: '/.well-known/oauth-protected-resource/nosuch/mcp' }),
    await send(gw.url, { path: '/.well-known/oauth-protected-resource/open/mcp' }),
    await send(gw.url, { path: '/.well-known/oauth-protected-resource' }),
  ],
  GW_ERR_BAD_REQUEST: async ({ gw }) => [
    await post(gw.url, '/oauth/register', JSON_CT, '{"redirect_uris":'),
    await post(gw.url, '/open/mcp/%2e%2e/admin', JSON_CT, PING),
    await send(gw.url, { path: '/open/mcp/%2e%2e/admin' }),
  ],
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: async ({ gw }) => [await post(gw.url, '/oauth/register', 'application/xml', '<client/>')],
  GW_ERR_BODY_TOO_LARGE: async ({ gw }) => tooLarge(gw.url),
  GW_ERR_CLIENT_METADATA_INVALID: async ({ gw }) => [
    await post(gw.url, '/oauth/register', JSON_CT, JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], client_name: 'evil\r\nname' })),
  ],
  GW_ERR_REDIRECT_URI_INVALID: async ({ gw }) => [
    await post(gw.url, '/oauth/register', JSON_CT, JSON.stringify({ redirect_uris: ['http://app.example.com/cb'] })),
  ],
  GW_ERR_REGISTRATION_DISABLED: async () => {
    const gw = await ownGateway({ registration: { mode: 'off' } });
    return [await post(gw.url, '/oauth/register', JSON_CT, JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'] }))];
  },
  GW_ERR_METHOD_NOT_ALLOWED: async ({ gw }) => [await send(gw.url, { method: 'PUT', path: '/open/mcp' })],
  GW_ERR_BACKEND_UNKNOWN: async ({ gw }) => [await post(gw.url, '/nosuch/mcp', JSON_CT, PING), await send(gw.url, { path: '/nosuch/mcp' })],
  GW_ERR_ORIGIN_FORBIDDEN: async ({ gw }) => originRefusals(gw.url),
  GW_ERR_TOKEN_MISSING: async ({ gw }) => [await send(gw.url, { path: '/svc/mcp' }), await post(gw.url, '/svc/mcp', JSON_CT, PING)],
  GW_ERR_TOKEN_INVALID: async ({ gw }) => [
    await post(gw.url, '/svc/mcp', JSON_CT, PING, { authorization: 'Bearer not-a-token' }),
    await send(gw.url, { path: '/svc/mcp', headers: { authorization: await bearer(gw, { service: 'svc', ttl: -120 }) } }),
    // A token for another service (wrong audience).
    await send(gw.url, { path: '/svc/mcp', headers: { authorization: await bearer(gw, { service: 'scoped' }) } }),
  ],
  GW_ERR_INSUFFICIENT_SCOPE: async ({ gw }) => [
    await post(gw.url, '/scoped/mcp', JSON_CT, PING, {
      authorization: await bearer(gw, { service: 'scoped', claims: { scope: 'mcp:read' } }),
    }),
  ],
  GW_ERR_POLICY_DENIED: async ({ gw }) => [
    await post(gw.url, '/pol/mcp', JSON_CT, PING, { authorization: await bearer(gw, { service: 'pol' }) }),
  ],
  GW_ERR_TOOL_DENIED: async ({ gw }) => {
    const call = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'danger', arguments: {} } });
    const a = await post(gw.url, '/tooled/mcp', JSON_CT, call, { authorization: await bearer(gw, { service: 'tooled' }) });
    return [{ ...a, expectId: 7 }];
  },
  GW_ERR_HEADER_MISMATCH: async ({ gw }) => {
    const call = JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'echo', arguments: {} } });
    const headers = {
      authorization: await bearer(gw, { service: 'tooled' }),
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
    };
    // A local (stdio) service checks the 2026-07-28 headers too: a lying Mcp-Method, a missing one.
    const local = await bearer(gw, { service: 'local-one' });
    return [
      await post(gw.url, '/tooled/mcp', JSON_CT, call, { ...headers, 'mcp-name': 'danger' }),
      await post(gw.url, '/tooled/mcp', JSON_CT, call, headers),
      await post(gw.url, '/local-one/mcp', JSON_CT, PING, { ...MODERN, authorization: local, 'mcp-method': 'tools/list' }),
      await post(gw.url, '/local-one/mcp', JSON_CT, PING, { ...MODERN, authorization: local }),
    ];
  },
  GW_ERR_PROTOCOL_VERSION: async ({ gw }) => [await post(gw.url, '/open/mcp', JSON_CT, PING, { 'mcp-protocol-version': '1999-01-01' })],
  GW_ERR_SESSION_UNKNOWN: async ({ gw }) => {
    const alice = await bearer(gw, { service: 'sess' });
    const opened = await post(gw.url, '/sess/mcp', JSON_CT, PING, { authorization: alice });
    expect(opened.status).toBe(200);
    expect(opened.headers['mcp-session-id']).toBe('session-of-alice');
    const bob = await bearer(gw, { service: 'sess', claims: { sub: 'dev:bob' } });
    return [await post(gw.url, '/sess/mcp', JSON_CT, PING, { authorization: bob, 'mcp-session-id': 'session-of-alice' })];
  },
  GW_ERR_RATE_LIMITED: async () => {
    const gw = await ownGateway({
      rate_limits: { enabled: true, authorize_per_minute: 1, failed_auth_per_minute: 1 },
      mcp_services: { svc: { name: 'svc', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev' } },
    });
    await send(gw.url, { path: '/oauth/authorize' });
    const oauth = await send(gw.url, { path: '/oauth/authorize' });
    let proxied: Answer | undefined;
    for (let i = 0; i < 5 && proxied?.status !== 429; i++)
      proxied = await post(gw.url, '/svc/mcp', JSON_CT, PING, { authorization: 'Bearer rejected' });
    return [oauth, proxied!];
  },
  GW_ERR_UPSTREAM_TIMEOUT: async ({ gw }) => [await post(gw.url, '/slow/mcp', JSON_CT, PING)],
  GW_ERR_UPSTREAM_UNREACHABLE: async ({ gw }) => [
    await post(gw.url, '/dead/mcp', JSON_CT, PING),
    await send(gw.url, { path: '/dead/mcp' }),
  ],
  GW_ERR_OVERLOADED: async ({ gw, hanging }) => {
    const arrived = hanging.nextRequest();
    const held = new AbortController();
    const first = fetch(`${gw.url}/busy/mcp`, { signal: held.signal }).catch(() => undefined);
    await arrived;
    try {
      return [await post(gw.url, '/busy/mcp', JSON_CT, PING)];
    } finally {
      held.abort();
      await first;
    }
  },
  GW_ERR_STDIO_EXITED: async ({ gw }) => [
    {
      ...(await post(gw.url, '/local-exit/mcp', JSON_CT, PING, {
        ...MODERN_PING,
        authorization: await bearer(gw, { service: 'local-exit' }),
      })),
      expectId: 1,
    },
  ],
  GW_ERR_STDIO_LIMIT: async ({ gw }) => {
    const auth = await bearer(gw, { service: 'local-one' });
    // The legacy-era process is the one allowed; a 2026-07-28 request needs a second.
    const opened = await post(gw.url, '/local-one/mcp', JSON_CT, INIT, { authorization: auth });
    expect(opened.status).toBe(200);
    return [await post(gw.url, '/local-one/mcp', JSON_CT, PING, { ...MODERN_PING, authorization: auth })];
  },
  GW_ERR_STDIO_SESSION_ELSEWHERE: async ({ gw }) => {
    // The record another instance writes for a session it opened (src/stdio/index.ts).
    const id = 'session-on-another-instance';
    await gw.ctx.store.set(
      `${STDIO_SESSION_PREFIX}local-one:${createHash('sha256').update(id).digest('hex')}`,
      { instance: 'other' },
      { ttlSeconds: 60 },
    );
    const auth = await bearer(gw, { service: 'local-one' });
    return [
      await post(gw.url, '/local-one/mcp', JSON_CT, PING, { authorization: auth, 'mcp-session-id': id }),
      await send(gw.url, { path: '/local-one/mcp', headers: { authorization: auth, accept: 'text/event-stream', 'mcp-session-id': id } }),
    ];
  },
  GW_ERR_STORE_UNAVAILABLE: async () => {
    const redis = await RedisServer.start();
    onTestFinished(() => redis.stop());
    const gw = await ownGateway({
      storage: {
        type: 'redis',
        redis: { host: '127.0.0.1', port: redis.port, socket_timeout: 1, socket_connect_timeout: 1, sweep_interval: 0 },
      },
      mcp_services: { svc: { name: 'svc', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev' } },
    });
    const auth = await bearer(gw, { service: 'svc' });
    await redis.kill();
    await pollUntil(async () => !gw.ctx.availability.up && !gw.ctx.revocations.healthy, 5000);
    return [
      await post(gw.url, '/oauth/token', 'application/x-www-form-urlencoded', 'grant_type=authorization_code&code=nope'),
      await send(gw.url, { path: '/svc/mcp', headers: { authorization: auth } }),
      await post(gw.url, '/svc/mcp', JSON_CT, PING, { authorization: auth }),
    ];
  },
  GW_ERR_UPSTREAM_AUTH_REQUIRED: async () => {
    // upstream_auth without a stored upstream token for the user: the connect link, never a 401.
    const gw = await upstreamAuthGateway();
    return [await post(gw.url, '/acts/mcp', JSON_CT, PING, { authorization: await bearer(gw, { service: 'acts' }) })];
  },
  GW_ERR_UPSTREAM_TOKEN_FAILED: async () => {
    // A stored token due for refresh while the provider is unreachable: 502, the token is kept.
    const gw = await upstreamAuthGateway();
    await gw.ctx.credentials!.saveSignIn('corp', 'dev:alice', { access_token: 'old', refresh_token: 'r', expires_in: 1 }, 'sign_in');
    return [await post(gw.url, '/acts/mcp', JSON_CT, PING, { authorization: await bearer(gw, { service: 'acts' }) })];
  },
  GW_ERR_INTERNAL: async () => {
    // An unexpected failure in a route: the gateway's own error handler answers. (The route is the only way
    // to make the gateway fail unexpectedly on purpose; everything it answers through is the real one.)
    const port = await freePort();
    const gw = await createGateway(testConfig({ issuer: `http://127.0.0.1:${port}`, port }), { silent: true });
    onTestFinished(() => gw.close());
    gw.app.get('/fails', async () => {
      throw new Error('secret detail: redis://10.0.0.7');
    });
    const url = await gw.listen();
    const a = await send(url, { path: '/fails' });
    expect(JSON.stringify(a.body)).not.toContain('secret detail');
    return [a];
  },
};

describe('error registry on the wire', () => {
  it('every registry code has a way to produce it, and nothing else is listed', () => {
    expect(Object.keys(PRODUCERS).sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it.each(Object.keys(ERROR_CODES) as ErrorCode[])('%s is produced with its status, error, JSON-RPC code and headers', async (code) => {
    if (code === 'GW_ERR_STORE_UNAVAILABLE' && !redisAvailable() && process.env.GW_REQUIRE_REDIS !== '1') {
      console.warn(
        '!!!!! SKIPPING GW_ERR_STORE_UNAVAILABLE on the wire: redis-server not found (GW_REQUIRE_REDIS=1 makes this a failure) !!!!!',
      );
      return;
    }
    const produced = await PRODUCERS[code](world);
    expect(produced.length, code).toBeGreaterThan(0);
    for (const a of produced) expectAnswer(code, a);
  });

  it('a forbidden origin gets one answer at the MCP proxy and the OAuth endpoints, with no CORS grant', async () => {
    const answers = await originRefusals(world.gw.url);
    const plain = answers.filter((a) => !a.rpc);
    expect(plain.map((a) => a.what)).toEqual(expect.arrayContaining(['GET /open/mcp', 'POST /oauth/token', 'OPTIONS /oauth/token']));
    const shapes = new Set(plain.map((a) => JSON.stringify([a.status, a.body.error, a.body.error_description])));
    const spec = ERROR_CODES.GW_ERR_ORIGIN_FORBIDDEN;
    expect([...shapes]).toEqual([JSON.stringify([403, spec.error, spec.message])]);
    const rpc = answers.find((a) => a.rpc)!.body.error as { code: number; message: string; data: { error: string } };
    expect([rpc.code, rpc.message, rpc.data.error]).toEqual([spec.rpc, spec.message, spec.error]);
    for (const a of answers) expect(a.headers['access-control-allow-origin'], a.what).toBeUndefined();
  });

  it('a body too large gets one answer everywhere: 413, one error, one description', async () => {
    const answers = await tooLarge(world.gw.url);
    const plain = answers.filter((a) => !a.rpc);
    expect(plain.length).toBeGreaterThanOrEqual(5);
    const shapes = new Set(plain.map((a) => JSON.stringify([a.status, a.body.error, a.body.error_description])));
    expect([...shapes]).toEqual([
      JSON.stringify([413, ERROR_CODES.GW_ERR_BODY_TOO_LARGE.error, ERROR_CODES.GW_ERR_BODY_TOO_LARGE.message]),
    ]);
    // The JSON-RPC form on the MCP path says the same.
    const rpc = answers.find((a) => a.rpc)!.body.error as { code: number; message: string; data: { error: string } };
    expect([rpc.code, rpc.message, rpc.data.error]).toEqual([
      -32600,
      ERROR_CODES.GW_ERR_BODY_TOO_LARGE.message,
      ERROR_CODES.GW_ERR_BODY_TOO_LARGE.error,
    ]);
  });
});

/**
 * The other direction: nothing in src/ writes a refusal of its own. A status of 4xx/5xx set from a literal, or
 * an OAuth error body built in place, is allowed only in the renderers and in the few places listed, each
 * with why. HTML pages come from one renderer (src/authz/html.ts), with its headers.
 */
describe('every answer comes from the registry renderers', () => {
  const src = fileURLToPath(new URL('../../src', import.meta.url));
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
  const rel = (file: string) => relative(src, file).split(sep).join('/');
  /** The renderers: the JSON one (fastify, with its reply helper in the kernel), the proxy's, the registry's body. */
  const RENDERERS = new Set(['errors.ts', 'http/errors.ts', 'kernel/error-reply.ts', 'proxy/respond.ts']);
  /** Lines (file and a piece of the line) that look like a refusal and are not one. */
  const NOT_REFUSALS: Array<[string, string, string]> = [
    ['http/operational-routes.ts', 'reply.code(503)', '/ready: the readiness report, its Retry-After from the registry'],
    [
      'authz/interactions.ts',
      'finish(req, reply, {',
      'an interaction result oidc-provider sends to the client (RFC 6749 §4.1.2.1 redirect)',
    ],
    ['authz/events.ts', 'error_description: err.error_description', 'an audit event of an oidc-provider error'],
    ['demo/mcp-server.ts', 'res.writeHead(405', 'the demo MCP backend, not the gateway'],
  ];
  const INLINE = [
    /\.code\(\s*[45]\d\d\b/,
    /writeHead\(\s*[45]\d\d\b/,
    /(?:statusCode|\.status)\s*=\s*[45]\d\d\b/,
    /\berror_description\s*:/,
  ];

  it('no 4xx/5xx status or OAuth error body is written outside the renderers', () => {
    const found: string[] = [];
    for (const file of files(src)) {
      const name = rel(file);
      if (RENDERERS.has(name)) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (!INLINE.some((re) => re.test(line))) return;
          if (NOT_REFUSALS.some(([f, piece]) => f === name && line.includes(piece))) return;
          found.push(`${name}:${i + 1}: ${line.trim().slice(0, 120)}`);
        });
    }
    expect(found).toEqual([]);
  });

  /**
   * The HTML renderers: the sign-in pages' (src/authz/html.ts) and the operator console's (src/admin/html.ts,
   * a stricter CSP without 'unsafe-inline' and its own layout; it takes its escaping from the first).
   */
  const HTML_RENDERERS = new Set(['authz/html.ts', 'admin/html.ts']);

  it("HTML is rendered only by src/authz/html.ts (page, PAGE_HEADERS) and the console's src/admin/html.ts, and oidc-provider pages use the first", () => {
    const found: string[] = [];
    for (const file of files(src)) {
      const name = rel(file);
      if (HTML_RENDERERS.has(name)) continue;
      const text = readFileSync(file, 'utf8');
      if (/<!doctype|<html|text\/html/i.test(text)) found.push(name);
      // koa pages (oidc-provider's renderError, logout): every one sets PAGE_HEADERS and renders with page().
      const koaPages = text.match(/koa\.type = 'html';/g)?.length ?? 0;
      if (koaPages > 0) {
        expect(text.match(/for \(const \[k, v\] of Object\.entries\(PAGE_HEADERS\)\) koa\.set\(k, v\);/g)?.length, name).toBe(koaPages);
        expect(text.match(/koa\.body = page\(/g)?.length, name).toBe(koaPages);
      }
    }
    expect(found).toEqual([]);
  });
});
