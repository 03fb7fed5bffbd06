/**
 * Regressions for what the attack probe of issue 12 found (P2, P3, P6, P7, P8, P11, P13 here): sessions
 * across routes to one backend, the operator's backend query, absolute-form targets, backend redirects and
 * trailing slashes, control characters in client names, `revoke --user` of an unknown user, and the
 * service in `token.issued`. Real gateways, real SDK servers and clients, raw sockets, real SQLite/Redis.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { main } from '../../src/cli/main.js';
import { storageSchema } from '../../src/config/schema.js';
import { SessionBindings } from '../../src/proxy/sessions.js';
import { createStore } from '../../src/storage/index.js';
import { TEST_SECRET } from '../helpers/config.js';
import { startEchoBackend, startMcpBackend } from '../helpers/mcp-backend.js';
import { BrowserDriver, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { describeRedis, RedisServer } from '../helpers/redis-server.js';
import { bearer } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS, proxyGateway } from '../proxy/fixtures.js';
import { authorizeUrl, logCapture, register, securityWorld } from './world.js';

const LIST = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' });

async function connectSdk(url: string, authorization?: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'probe', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(
    new URL(url),
    authorization ? { requestInit: { headers: { Authorization: authorization } } } : undefined,
  );
  await client.connect(transport);
  onTestFinished(() => client.close());
  return { client, transport };
}

/** A legacy-era request carrying a session id, optionally authenticated. */
async function useSession(url: string, sessionId: string, authorization?: string): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = { ...JSON_RPC_HEADERS, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' };
  if (authorization) headers.authorization = authorization;
  const res = await fetch(url, { method: 'POST', headers, body: LIST });
  return { status: res.status, body: await res.text() };
}

/** Sends raw bytes and returns the whole answer (the connection is closed by `Connection: close`). */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write(bytes);
  });
}

describe('P2: sessions are bound to the backend, not the route', () => {
  it('P2: a session opened through one route cannot be used through another route to the same backend', async () => {
    const backend = await startMcpBackend();
    const gw = await proxyGateway({
      notes: { url: backend.url },
      calc: { url: backend.url },
      admin: { url: backend.url },
      pub: { url: backend.url, auth_required: false },
    });
    const bobAuth = (service: string) => bearer(gw, { service, claims: { sub: 'dev:bob', email: 'bob@example.com' } });
    const aliceAuth = (service: string) => bearer(gw, { service });

    // bob's session through the authenticated route; an anonymous caller through the public route.
    const bob = await connectSdk(`${gw.url}/notes/mcp`, await bobAuth('notes'));
    const bobSession = bob.transport.sessionId!;
    expect(bobSession).toBeTruthy();
    const anonymous = await useSession(`${gw.url}/pub/mcp`, bobSession);
    expect(anonymous.status).toBe(404);
    expect(JSON.parse(anonymous.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
    for (const method of ['GET', 'DELETE']) {
      const r = await fetch(`${gw.url}/pub/mcp`, { method, headers: { 'mcp-session-id': bobSession, accept: 'text/event-stream' } });
      expect(r.status, method).toBe(404);
    }
    // Nothing with bob's session id reached the backend without bob's identity.
    expect(backend.requests.filter((r) => r.sessionId === bobSession && r.headers['x-user-id'] !== 'dev:bob')).toEqual([]);

    // alice's session through /calc is not bob's through /admin (another authenticated route).
    const alice = await connectSdk(`${gw.url}/calc/mcp`, await aliceAuth('calc'));
    const aliceSession = alice.transport.sessionId!;
    expect((await useSession(`${gw.url}/admin/mcp`, aliceSession, await bobAuth('admin'))).status).toBe(404);
    expect(backend.requests.filter((r) => r.sessionId === aliceSession && r.headers['x-user-id'] === 'dev:bob')).toEqual([]);

    // The owner keeps the session on any route to that backend, and the sessions still work.
    expect((await useSession(`${gw.url}/admin/mcp`, aliceSession, await aliceAuth('admin'))).status).toBe(200);
    expect((await bob.client.listTools()).tools.length).toBeGreaterThan(0);
    expect((await alice.client.listTools()).tools.length).toBeGreaterThan(0);
    // A public route keeps its own anonymous sessions.
    const anon = await connectSdk(`${gw.url}/pub/mcp`);
    expect((await anon.client.listTools()).tools.length).toBeGreaterThan(0);
  });

  it('P2: the binding is shared by instances on one store, for anonymous callers and other users alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-p2-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const config = storageSchema.parse({ type: 'sqlite', sqlite: { path: join(dir, 'gw.db') } });
    const a = await createStore(config);
    const b = await createStore(config);
    onTestFinished(async () => {
      await a.close();
      await b.close();
    });
    const scope = SessionBindings.scopeOf('http://127.0.0.1:3001');
    const one = new SessionBindings(a);
    const two = new SessionBindings(b);
    // Instance two looked at the id before instance one bound it: its cached "unbound" ends with the cache.
    expect(await two.check(scope, 'sess-1', undefined, 1_000)).toBe('unbound');
    await one.bind(scope, 'sess-1', 'dev:bob', 2_000);
    expect(await two.check(scope, 'sess-1', undefined, 20_000)).toBe('foreign');
    expect(await two.check(scope, 'sess-1', 'dev:alice', 20_000)).toBe('foreign');
    expect(await two.check(scope, 'sess-1', 'dev:bob', 20_000)).toBe('owner');
    // Another backend origin is another scope.
    expect(await two.check(SessionBindings.scopeOf('http://127.0.0.1:3002'), 'sess-1', 'dev:alice', 20_000)).toBe('unbound');
  });
});

describeRedis('P2 on Redis', () => {
  it('P2: a session bound on one gateway instance is refused to an anonymous caller on another instance (Redis)', async () => {
    const redis = await RedisServer.start();
    onTestFinished(() => redis.stop());
    const backend = await startMcpBackend();
    const storage = { type: 'redis', redis: { host: '127.0.0.1', port: redis.port, sweep_interval: 0 } };
    const services = { notes: { url: backend.url }, pub: { url: backend.url, auth_required: false } };
    const first = await proxyGateway(services, { storage });
    const second = await proxyGateway(services, { storage });
    const bob = await connectSdk(`${first.url}/notes/mcp`, await bearer(first, { service: 'notes', claims: { sub: 'dev:bob' } }));
    const sessionId = bob.transport.sessionId!;
    expect((await useSession(`${second.url}/pub/mcp`, sessionId)).status).toBe(404);
    expect(
      (await useSession(`${second.url}/notes/mcp`, sessionId, await bearer(second, { service: 'notes', claims: { sub: 'dev:alice' } })))
        .status,
    ).toBe(404);
    expect(
      (await useSession(`${second.url}/notes/mcp`, sessionId, await bearer(second, { service: 'notes', claims: { sub: 'dev:bob' } })))
        .status,
    ).toBe(200);
  });
});

describe('P3: the operator’s backend query parameters win', () => {
  it('P3: a client query naming a parameter of the backend URL is refused with 400, in every spelling a backend parser could read', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: `${backend.url}?tenant=1&key=k`, auth_required: false } });
    for (const query of [
      'tenant=2',
      'a=1&tenant=2',
      'Tenant=2',
      'ten%61nt=2',
      'tenant%5B%5D=2',
      'tenant[x]=2',
      'a=1;tenant=2',
      '+tenant=2',
      'key',
      'KEY=x',
    ]) {
      const res = await fetch(`${gw.url}/svc/mcp?${query}`, { method: 'POST', headers: JSON_RPC_HEADERS, body: LIST });
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { error: { data: { error: string }; message: string } };
      expect(body.error.data.error, query).toBe('invalid_request');
      expect(body.error.message, query).toMatch(/query parameter '(tenant|key)' is set by the gateway/);
    }
    expect(backend.received).toHaveLength(0);
    // Other parameters pass, after the operator's.
    const ok = await fetch(`${gw.url}/svc/mcp/sub?page=2&tenantx=3`);
    expect(ok.status).toBe(200);
    expect(backend.received.map((r) => r.url)).toEqual(['/mcp/sub?tenant=1&key=k&page=2&tenantx=3']);
  });
});

describe('P7: absolute-form request targets', () => {
  it('P7: an absolute-form target (raw socket) reaches the backend as its origin-form path, never with the authority in it', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ pub: { url: backend.url, auth_required: false }, svc: { url: backend.url } });
    const port = Number(new URL(gw.url).port);
    const send = (target: string, extra = '') =>
      rawExchange(
        port,
        `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}Content-Type: application/json\r\nContent-Length: ${LIST.length}\r\nConnection: close\r\n\r\n${LIST}`,
      );

    const plain = await send(`http://127.0.0.1:${port}/pub/mcp`);
    expect(plain).toMatch(/^HTTP\/1\.1 200/);
    const sub = await send(`HTTP://other.example:8080/pub/mcp/sub?x=1`);
    expect(sub).toMatch(/^HTTP\/1\.1 200/);
    const token = await bearer(gw, { service: 'svc' });
    const authed = await send(`http://127.0.0.1:${port}/svc/mcp`, `Authorization: ${token}\r\n`);
    expect(authed).toMatch(/^HTTP\/1\.1 200/);
    expect(backend.received.map((r) => r.url)).toEqual(['/mcp', '/mcp/sub?x=1', '/mcp']);
    // Still checked like any path: traversal in an absolute-form target is refused.
    expect(await send(`http://127.0.0.1:${port}/pub/mcp/%2e%2e/admin`)).toMatch(/^HTTP\/1\.1 400/);
    expect(backend.received).toHaveLength(3);
  });
});

describe('P8: backend redirects and trailing slashes', () => {
  it('P8: a backend Location is rewritten to the gateway URL of the service (or refused), and a trailing-slash backend URL is sent as configured', async () => {
    let origin = '';
    const backend = await startEchoBackend((_req, res, rec) => {
      const redirect = (status: number, location: string) => {
        res.writeHead(status, { location, 'content-length': 0 });
        res.end();
      };
      // Like a server mounted at `/mcp/` (Starlette, Express strict routing): the other spelling redirects.
      if (rec.url === '/mcp' || rec.url === '/mcp?tenant=1') return redirect(307, `${origin}/mcp/`);
      if (rec.url.startsWith('/mcp/out')) return redirect(302, `${origin}/internal/login`);
      if (rec.url.startsWith('/mcp/rel')) return redirect(303, '/mcp/sub?tenant=1&a=b');
      if (rec.url.startsWith('/mcp/ext')) return redirect(302, 'https://elsewhere.example/x');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    origin = backend.origin;
    const gw = await proxyGateway({
      slash: { url: `${origin}/mcp/`, auth_required: false },
      plain: { url: `${origin}/mcp`, auth_required: false },
      q: { url: `${origin}/mcp?tenant=1`, auth_required: false },
    });
    const get = (path: string) => fetch(`${gw.url}${path}`, { redirect: 'manual' });

    // Trailing slash kept: the backend answers directly, no redirect.
    const slash = await get('/slash/mcp');
    expect(slash.status).toBe(200);
    expect(backend.received.at(-1)!.url).toBe('/mcp/');
    expect((await get('/slash/mcp/x')).status).toBe(200);
    expect(backend.received.at(-1)!.url).toBe('/mcp/x');

    const moved = await get('/plain/mcp');
    expect(moved.status).toBe(307);
    expect(moved.headers.get('location')).toBe(`${gw.url}/plain/mcp/`);
    // Relative, with the operator's parameter: rewritten, and the operator's parameter not revealed.
    const relative = await get('/q/mcp/rel');
    expect(relative.status).toBe(303);
    expect(relative.headers.get('location')).toBe(`${gw.url}/q/mcp/sub?a=b`);
    // Elsewhere on the backend: no public URL exists, refused without revealing it.
    const out = await get('/plain/mcp/out');
    expect(out.status).toBe(502);
    expect(out.headers.get('location')).toBeNull();
    const text = await out.text();
    expect(text).toContain('redirected to an address this gateway does not publish');
    expect(text).not.toContain(origin);
    // Another site: relayed unchanged.
    const ext = await get('/plain/mcp/ext');
    expect(ext.status).toBe(302);
    expect(ext.headers.get('location')).toBe('https://elsewhere.example/x');
    // The redirect is followable end to end.
    const followed = await fetch(`${gw.url}/plain/mcp`);
    expect(followed.status).toBe(200);
    expect(followed.url).toBe(`${gw.url}/plain/mcp/`);
  });
});

describe('P6: control characters in client names', () => {
  it('P6: registration refuses client names with CR, LF, NUL, ESC or other control characters, naming the rule', async () => {
    const { gw } = await securityWorld();
    for (const name of [
      'Evil\r\nfake-row  x  y',
      'a\nb',
      'nul\u0000',
      'red\u001b[31m',
      'del\u007f',
      'c1\u009b2J',
      'line\u2028sep',
      'tab\there',
    ]) {
      const res = await register(gw.url, { client_name: name });
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(res.json.error).toBe('invalid_client_metadata');
      expect(String(res.json.error_description)).toContain('client_name must not contain control characters');
    }
    const localised = await register(gw.url, { client_name: 'Fine', 'client_name#fr': 'Mal\r\nformé' });
    expect(localised.status).toBe(400);
    expect(String(localised.json.error_description)).toContain('client_name#fr');
    // Ordinary names, right-to-left ones included, still register.
    for (const name of ['Claude Desktop', 'Zoë’s “client” <b>', 'תוכנה\u200f'])
      expect((await register(gw.url, { client_name: name })).status, name).toBe(201);
  });

  it('P6: the consent page neutralises bidi controls in the client name', async () => {
    const { gw } = await securityWorld();
    const clientId = String((await register(gw.url, { client_name: 'Calendar \u202Eexe.txt\u202C \u2066x\u2069' })).json.client_id);
    const browser = new BrowserDriver();
    const first = await browser.request(new URL(authorizeUrl(gw.url, { client_id: clientId })));
    const html = await (await browser.request(new URL(first.headers.get('location')!, gw.url))).text();
    expect(html).toContain('/decision');
    expect(html).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
    expect(html).toContain('Calendar \ufffdexe.txt\ufffd \ufffdx\ufffd');
  });

  it('P6: clients list and grants list escape every control and bidi character they print (table and JSON)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-p6-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'gw.db');
    const cfg = join(dir, 'gateway.yaml');
    writeFileSync(
      cfg,
      `session_secret: ${TEST_SECRET}\nissuer: http://127.0.0.1:9\nstorage:\n  type: sqlite\n  sqlite: {path: ${db}}\noauth_providers:\n  corp: {issuer: "http://127.0.0.1:2", client_id: g, client_secret: s, allow_insecure_http: true}\n`,
    );
    // Records as a client registered before this check (or fetched as CIMD metadata) would have left them.
    const store = await createStore(storageSchema.parse({ type: 'sqlite', sqlite: { path: db } }));
    const hostile = 'Evil\u001b[2J\r\nfake-row  x  y\u202Eevil\u009b\\';
    await store.set('oidc:Client:c1', {
      client_id: 'c1',
      client_name: hostile,
      redirect_uris: ['http://127.0.0.1:1/cb\u001b]8;;x'],
      token_endpoint_auth_method: 'none',
    });
    await store.set('oidc:Grant:g1', { accountId: 'corp:eve\r\nforged', clientId: 'c1', iat: 1, exp: 2, resources: { 'x\u202E': 'y' } });
    await store.close();

    const run = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main([...args, '--config', cfg], { out: (t) => out.push(t), err: (t) => err.push(t) }, {});
      return { code, text: out.join('\n') + err.join('\n') };
    };
    // eslint-disable-next-line no-control-regex
    const unsafe = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
    const table = await run(['clients', 'list']);
    expect(table.code).toBe(0);
    expect(table.text).not.toMatch(unsafe);
    expect(table.text.split('\n')).toHaveLength(2); // header + one row: no forged row
    expect(table.text).toContain('Evil\\x1b[2J\\x0d\\x0afake-row  x  y\\u{202e}evil\\x9b\\\\');
    const grants = await run(['grants', 'list']);
    expect(grants.text).not.toMatch(unsafe);
    expect(grants.text.split('\n')).toHaveLength(2);
    expect(grants.text).toContain('corp:eve\\x0d\\x0aforged');
    for (const args of [
      ['clients', 'list', '--json'],
      ['grants', 'list', '--json'],
      ['clients', 'show', 'c1'],
    ]) {
      const json = await run(args);
      expect(json.code, args.join(' ')).toBe(0);
      expect(json.text, args.join(' ')).not.toMatch(unsafe);
      expect(JSON.stringify(JSON.parse(json.text)), args.join(' ')).toMatch(/Evil|corp:eve/);
    }
    expect((JSON.parse((await run(['clients', 'show', 'c1'])).text) as { client_name: string }).client_name).toBe(hostile);
  });
});

describe('P11: revoke --user of an unknown user', () => {
  it('P11: revoke --user with an unknown id says no such user exists, shows the id format, and exits non-zero', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-p11-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'gw.db');
    const cfg = join(dir, 'gateway.yaml');
    writeFileSync(
      cfg,
      `session_secret: ${TEST_SECRET}\nissuer: http://127.0.0.1:9\nstorage:\n  type: sqlite\n  sqlite: {path: ${db}}\noauth_providers:\n  corp: {issuer: "http://127.0.0.1:2", client_id: g, client_secret: s, allow_insecure_http: true}\n`,
    );
    const store = await createStore(storageSchema.parse({ type: 'sqlite', sqlite: { path: db } }));
    // carol signed in once (her account exists) but holds no grant.
    await store.set('gw:account:corp:carol', { id: 'corp:carol', provider: 'corp', subject: 'carol' });
    await store.close();
    const run = async (user: string) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['revoke', '--user', user, '--config', cfg], { out: (t) => out.push(t), err: (t) => err.push(t) }, {});
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    for (const user of ['alice', 'corp:nobody']) {
      const r = await run(user);
      expect(r.code, user).toBe(1);
      expect(r.out, user).toBe('');
      expect(r.err, user).toContain(`no user '${user}'`);
      expect(r.err, user).toContain('{provider}:{subject}');
      expect(r.err, user).toContain('providers here: corp');
    }
    const known = await run('corp:carol');
    expect(known.code).toBe(0);
    expect(known.out).toContain('revoked 0 grant(s)');
  });
});

describe('P13: token.issued names the service and the grant type', () => {
  it('P13: token.issued audit events carry the service (audience), grant type and scope, never the token', async () => {
    const log = logCapture();
    const { gw } = await securityWorld({ logging: { level: 'info' } }, { logStream: log.stream });
    const provider = new TestOAuthProvider();
    const { tokens } = await obtainToken(gw.url, 'weather', { provider, scope: 'weather:read' });
    const refreshed = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
        client_id: provider.clientInformation()!.client_id,
      }),
    });
    expect(refreshed.status).toBe(200);
    const second = (await refreshed.json()) as { access_token: string };
    const events = log
      .text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.audit === true && e.event === 'token.issued');
    const gid = String(decodeJwt(tokens.access_token).gid);
    expect(events).toEqual([
      expect.objectContaining({
        grant_type: 'authorization_code',
        service: 'weather',
        scope: 'weather:read',
        grant_id: gid,
        user: 'myidp:alice',
      }),
      expect.objectContaining({
        grant_type: 'refresh_token',
        service: 'weather',
        scope: 'weather:read',
        grant_id: gid,
        user: 'myidp:alice',
      }),
    ]);
    const text = log.text();
    for (const secret of [tokens.access_token, tokens.refresh_token!, second.access_token]) expect(text.includes(secret)).toBe(false);
  });
});
