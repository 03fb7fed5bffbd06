/** What crosses the proxy, both ways: headers, paths, bodies, encodings (real gateway, raw echo backend). */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { FORWARDED_REQUEST_HEADERS } from '../../src/proxy/headers.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS, PING, proxyGateway } from './fixtures.js';
import { rawRequest } from './raw-http.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

/** GET through node:http without decompression, returning the raw bytes and headers. */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function headerNames(rawHeaders: string[]): string[] {
  return rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
}

describe('request headers', () => {
  it('forward exactly the allowlist plus verified identity and X-Forwarded-*, each once', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url } });
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: {
        ...JSON_RPC_HEADERS,
        authorization: await bearer(gw, { service: 'svc' }),
        cookie: 'session=secret',
        'x-user-id': 'mallory',
        'x-user-email': 'mallory@evil.example',
        'x-user-email-verified': 'true',
        'x-user-admin': 'true',
        'x-user-assertion': 'forged',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'gopher',
        forwarded: 'for=6.6.6.6',
        'x-random': 'nope',
        'mcp-protocol-version': '2025-06-18',
        'mcp-session-id': 'sess-1',
        'last-event-id': 'ev-9',
        'accept-language': 'fr',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        tracestate: 'a=b',
        'user-agent': 'test-agent',
        'proxy-authorization': 'Basic x',
        te: 'trailers',
      },
      body: PING,
    });
    expect(r.status).toBe(200);
    const rec = backend.received[0]!;
    const names = headerNames(rec.rawHeaders);
    expect(new Set(names).size).toBe(names.length); // nothing duplicated
    const allowedOrAdded = new Set([
      ...FORWARDED_REQUEST_HEADERS,
      'host',
      'connection',
      'x-user-id',
      'x-user-email',
      'x-user-email-verified',
      'x-user-name',
      'x-user-provider',
      'x-user-avatar',
      'x-user-groups',
      'x-forwarded-for',
      'x-forwarded-proto',
      'x-forwarded-host',
    ]);
    for (const n of names) expect(allowedOrAdded.has(n), n).toBe(true);
    const h = rec.headers;
    expect(h.authorization).toBeUndefined();
    expect(h.cookie).toBeUndefined();
    expect(h['x-user-admin']).toBeUndefined();
    expect(h['x-user-assertion']).toBeUndefined();
    expect(h['x-random']).toBeUndefined();
    expect(h['x-user-id']).toBe('dev:alice');
    expect(h['x-user-email']).toBe('alice@example.com');
    expect(h['x-user-email-verified']).toBe('true');
    expect(h['x-user-name']).toBe('Alice Example');
    expect(h['x-user-provider']).toBe('dev');
    expect(h['x-user-groups']).toBe('staff');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(new URL(gw.url).host);
    expect(h.host).toBe(backend.origin.slice('http://'.length));
    expect(h['mcp-protocol-version']).toBe('2025-06-18');
    expect(h['mcp-session-id']).toBe('sess-1');
    expect(h['last-event-id']).toBe('ev-9');
    expect(h.accept).toBe('application/json, text/event-stream');
    expect(h['content-type']).toBe('application/json');
    expect(h.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(h['user-agent']).toBe('test-agent');
  });

  it('public service: spoofed identity headers stripped, none injected, Authorization not forwarded', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ pub: { url: backend.url, auth_required: false } });
    const r = await fetch(`${gw.url}/pub/mcp`, {
      method: 'POST',
      headers: {
        ...JSON_RPC_HEADERS,
        authorization: 'Bearer whatever',
        'x-user-id': 'mallory',
        'x-user-email': 'm@evil.example',
        cookie: 'a=b',
      },
      body: PING,
    });
    expect(r.status).toBe(200);
    const names = headerNames(backend.received[0]!.rawHeaders);
    expect(names.filter((n) => n.startsWith('x-user-'))).toEqual([]);
    expect(names).not.toContain('authorization');
    expect(names).not.toContain('cookie');
  });

  it('2026-07-28 headers pass through untouched: Mcp-Method, Mcp-Name, Mcp-Param-*', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url } });
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { region: 'eu' } } });
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: {
        ...JSON_RPC_HEADERS,
        authorization: await bearer(gw, { service: 'svc' }),
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-param-region': 'eu',
        'Mcp-Param-X': '=?base64?SGVsbG8=?=',
      },
      body,
    });
    expect(r.status).toBe(200);
    const rec = backend.received[0]!;
    expect(rec.headers['mcp-method']).toBe('tools/call');
    expect(rec.headers['mcp-name']).toBe('echo');
    expect(rec.headers['mcp-param-region']).toBe('eu');
    expect(rec.headers['mcp-param-x']).toBe('=?base64?SGVsbG8=?=');
    expect(rec.headers['mcp-protocol-version']).toBe('2026-07-28');
    expect(rec.body.toString()).toBe(body);
  });

  it('signed identity assertion: verifiable with the gateway JWKS, cached across requests', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url, signed_identity: { enabled: true } } });
    const auth = await bearer(gw, { service: 'svc' });
    await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth, 'x-user-assertion': 'forged' } });
    await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } });
    const [a, b] = backend.received.map((r) => r.headers['x-user-assertion'] as string);
    expect(a).toBeTruthy();
    expect(a).toBe(b);
    expect(decodeProtectedHeader(a!).typ).toBe('identity+jwt');
    const { payload } = await jwtVerify(a!, createLocalJWKSet(gw.ctx.keys.publicJwks()), { issuer: gw.url, audience: `${gw.url}/svc/mcp` });
    expect(payload).toMatchObject({
      sub: 'dev:alice',
      email: 'alice@example.com',
      client_id: 'test-client',
      idp: 'dev',
      groups: ['staff'],
    });
    // The assertion is never accepted as an access token.
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: `Bearer ${a}` } })).status).toBe(401);
  });

  it('X-Forwarded-For appends to a trusted chain only when trust_proxy is set', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false } }, { trust_proxy: true });
    await fetch(`${gw.url}/svc/mcp`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(backend.received[0]!.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
  });
});

describe('paths and methods', () => {
  it('keeps sub-paths and repeated query keys; refuses traversal; unknown service 404; other methods 405', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false } });
    await fetch(`${gw.url}/svc/mcp/x/y?a=1&a=2&b=%2F`);
    expect(backend.received[0]!.url).toBe('/mcp/x/y?a=1&a=2&b=%2F');
    for (const p of ['/svc/mcp/%2e%2e/admin', '/svc/mcp/a/../../admin', '/svc/mcp/a%2F..%2F..%2Fadmin']) {
      const raw = await rawRequest(gw.url, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(raw.status, p).toBe(400);
    }
    const unknown = await fetch(`${gw.url}/nope/mcp`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'gw_err_backend_unknown' });
    for (const m of ['PUT', 'PATCH']) {
      const r = await fetch(`${gw.url}/svc/mcp`, { method: m, body: 'x' });
      expect(r.status, m).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, POST, DELETE, OPTIONS');
    }
    const del = await fetch(`${gw.url}/svc/mcp`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    const opt = await fetch(`${gw.url}/svc/mcp`, { method: 'OPTIONS' });
    expect(opt.status).toBe(200);
    expect(backend.received.map((r) => r.method)).toEqual(['GET', 'DELETE', 'OPTIONS']);
  });

  it('odd bytes in the path or in forwarded header values: a 4xx or a clean pass, never a 500', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false } });
    const utf8Path = Buffer.concat([
      Buffer.from('GET /svc/mcp/'),
      Buffer.from('ünï', 'utf8'),
      Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    ]);
    const a = await rawRequest(gw.url, utf8Path);
    expect(a.status).toBeGreaterThanOrEqual(200);
    expect(a.status).toBeLessThan(500);
    const latin1Header = Buffer.concat([
      Buffer.from('GET /svc/mcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nMcp-Name: '),
      Buffer.from('tööl', 'utf8'),
      Buffer.from('\r\n\r\n'),
    ]);
    const b = await rawRequest(gw.url, latin1Header);
    expect(b.status).toBeGreaterThanOrEqual(200);
    expect(b.status).toBeLessThan(500);
  });

  it('OPTIONS without preflight headers is proxied only after authentication', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url } });
    expect((await fetch(`${gw.url}/svc/mcp`, { method: 'OPTIONS' })).status).toBe(401);
    expect(
      (await fetch(`${gw.url}/svc/mcp`, { method: 'OPTIONS', headers: { authorization: await bearer(gw, { service: 'svc' }) } })).status,
    ).toBe(200);
    expect(backend.received).toHaveLength(1);
  });

  it('pinned protocol versions: others get 400 with -32022 and the supported list', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false, protocol_versions: ['2025-06-18', '2025-11-25'] } });
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { ...JSON_RPC_HEADERS, 'mcp-protocol-version': '2026-07-28' },
      body: PING,
    });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32022, data: { supported: ['2025-06-18', '2025-11-25'] } },
    });
    expect(
      (
        await fetch(`${gw.url}/svc/mcp`, {
          method: 'POST',
          headers: { ...JSON_RPC_HEADERS, 'mcp-protocol-version': '2025-11-25' },
          body: PING,
        })
      ).status,
    ).toBe(200);
    // initialize carries no header (the version is in the body): passed on.
    expect((await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: JSON_RPC_HEADERS, body: PING })).status).toBe(200);
    expect(backend.received).toHaveLength(2);
  });
});

describe('responses', () => {
  it('status, body and headers relayed; hop-by-hop and Set-Cookie removed unless allowed', async () => {
    const backend = await startEchoBackend((_req, res) => {
      res.writeHead(418, {
        'content-type': 'application/json',
        'set-cookie': ['a=1; Path=/', 'b=2'],
        'x-custom': 'yes',
        connection: 'x-hop',
        'x-hop': 'drop me',
        'mcp-session-id': 'S1',
        'access-control-allow-origin': '*',
      });
      res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"HeaderMismatch"}}');
    });
    const gw = await proxyGateway({
      a: { url: backend.url, auth_required: false },
      b: { url: backend.url, auth_required: false, allow_set_cookie: true },
    });
    const r = await rawGet(`${gw.url}/a/mcp`, {});
    expect(r.status).toBe(418);
    expect(r.body.toString()).toBe('{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"HeaderMismatch"}}');
    expect(r.headers['set-cookie']).toBeUndefined();
    expect(r.headers['x-custom']).toBe('yes');
    expect(r.headers['x-hop']).toBeUndefined();
    expect(r.headers['mcp-session-id']).toBe('S1');
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    const allowed = await rawGet(`${gw.url}/b/mcp`, {});
    expect(allowed.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2']);
  });

  it('gzip passes through: same bytes, same Content-Encoding, Accept-Encoding forwarded', async () => {
    const payload = gzipSync(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text: 'x'.repeat(50_000) } })));
    const backend = await startEchoBackend((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': payload.length });
      res.end(payload);
    });
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false } });
    const r = await rawGet(`${gw.url}/svc/mcp`, { 'accept-encoding': 'gzip' });
    expect(backend.received[0]!.headers['accept-encoding']).toBe('gzip');
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.headers['content-length']).toBe(String(payload.length));
    expect(sha(r.body)).toBe(sha(payload));
  });
});

describe('bodies', () => {
  it('5 MB both ways, streamed, byte-identical (Content-Length and chunked uploads)', async () => {
    const big = randomBytes(5 * 1024 * 1024 + 17);
    const backend = await startEchoBackend((req, res, rec) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(big);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ length: rec.bodyLength, sha: rec.bodySha256 }));
    });
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false } });
    const up = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(await up.json()).toEqual({ length: big.length, sha: sha(big) });
    expect(backend.received[0]!.headers['content-length']).toBe(String(big.length));
    const chunked = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < big.length; i += 1024 * 1024) c.enqueue(big.subarray(i, i + 1024 * 1024));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(await chunked.json()).toEqual({ length: big.length, sha: sha(big) });
    const down = await fetch(`${gw.url}/svc/mcp`);
    expect(sha(Buffer.from(await down.arrayBuffer()))).toBe(sha(big));
  });

  it('413 for a declared or streamed body over the limit', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false, max_request_bytes: 1024 * 1024 } });
    const declared = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: JSON_RPC_HEADERS,
      body: Buffer.alloc(1024 * 1024 + 1, 32),
    });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32600 } });
    expect(backend.received).toHaveLength(0);
    const streamed = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 3; i++) c.enqueue(new Uint8Array(512 * 1024));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({
      error: 'invalid_request',
      error_description: 'Request body too large (GW_ERR_BODY_TOO_LARGE)',
    });
    // Exactly at the limit is fine.
    expect(
      (await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: JSON_RPC_HEADERS, body: Buffer.alloc(1024 * 1024, 32) })).status,
    ).toBe(200);
  });
});
