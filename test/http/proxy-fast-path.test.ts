/**
 * The proxy's fast path (src/http/proxy-fast-path.ts): `/{id}/mcp` requests skip fastify, and every
 * answer is the one fastify's route gives. The same requests go once the fast way and once through
 * fastify's router and hooks (the same request with an X-Forwarded-For header, which the fast path leaves
 * to fastify; trust_proxy is off, so the header changes nothing else), and must get the same status,
 * headers that matter and body; the backend must receive the same request.
 */
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { fastPathService } from '../../src/http/proxy-fast-path.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS, PING, proxyGateway } from '../proxy/fixtures.js';

describe('fastPathService', () => {
  const ids = new Set(['svc', 'a.b-c_d']);
  it('matches /{id}/mcp, its query and its sub-paths for configured ids only', () => {
    expect(fastPathService('/svc/mcp', ids)).toBe('svc');
    expect(fastPathService('/svc/mcp?x=1', ids)).toBe('svc');
    expect(fastPathService('/svc/mcp/sub/path', ids)).toBe('svc');
    expect(fastPathService('/a.b-c_d/mcp', ids)).toBe('a.b-c_d');
    for (const url of ['/svc/mcpx', '/svc/mc', '/svc', '/other/mcp', '//svc/mcp', '/Svc/mcp', '/%73vc/mcp', 'svc/mcp', '/svc/MCP', '', '/'])
      expect(fastPathService(url, ids), url).toBeUndefined();
  });
});

interface Seen {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

const COMPARED_HEADERS = [
  'content-type',
  'www-authenticate',
  'cache-control',
  'access-control-allow-origin',
  'allow',
  'retry-after',
  'vary',
];

function overSocket(base: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Seen> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('proxy fast path answers as fastify routing does', () => {
  it('the same status, headers and body for every kind of request, and the same request at the backend', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway(
      {
        svc: { url: backend.url, scopes: ['mcp:read'] },
        open: { url: backend.url, auth_required: false },
        pinned: { url: backend.url, protocol_versions: ['2025-06-18'] },
      },
      { cors: { allow_origins: ['https://app.example'] } },
    );
    // The fast path is the server's request listener (in front of fastify's).
    expect(gw.app.server.listeners('request').map((l) => l.name)).toEqual(['proxyFastPath']);
    const token = await bearer(gw, { service: 'svc', claims: { scope: 'mcp:read' } });
    const cases: Array<[string, string, Record<string, string>, string?]> = [
      ['POST', '/svc/mcp', JSON_RPC_HEADERS, PING],
      ['POST', '/svc/mcp', { ...JSON_RPC_HEADERS, authorization: token }, PING],
      ['POST', '/svc/mcp', { ...JSON_RPC_HEADERS, authorization: 'Bearer not-a-token' }, PING],
      ['GET', '/svc/mcp?x=1&y=%20', { accept: 'application/json', authorization: token }],
      ['GET', '/svc/mcp/sub/path', { authorization: token }],
      ['GET', '/svc/mcp/', { authorization: token }],
      ['GET', '/svc/mcp/../../secret', { authorization: token }],
      ['GET', '/svc/mcp/%2e%2e/x', { authorization: token }],
      ['DELETE', '/svc/mcp', { authorization: token, 'mcp-session-id': 'abc' }],
      ['POST', '/svc/mcp', { ...JSON_RPC_HEADERS, origin: 'https://evil.example' }, PING],
      ['POST', '/svc/mcp', { ...JSON_RPC_HEADERS, origin: 'https://app.example', authorization: token }, PING],
      ['OPTIONS', '/svc/mcp', { origin: 'https://app.example', 'access-control-request-method': 'POST' }],
      ['OPTIONS', '/svc/mcp', {}],
      ['PUT', '/svc/mcp', { authorization: token }, '{}'],
      ['POST', '/open/mcp', JSON_RPC_HEADERS, PING],
      [
        'POST',
        '/pinned/mcp',
        { ...JSON_RPC_HEADERS, authorization: await bearer(gw, { service: 'pinned' }), 'mcp-protocol-version': '1999-01-01' },
        PING,
      ],
      ['POST', '/nope/mcp', JSON_RPC_HEADERS, PING],
      ['POST', '/svc/mcp', { ...JSON_RPC_HEADERS, authorization: token, 'content-length': String(100 * 1024 * 1024) }, undefined],
    ];
    for (const [method, path, given, body] of cases) {
      const headers = given;
      if (headers['content-length'] && body === undefined) continue; // declared-only sizes: socket case below
      const before = backend.received.length;
      const fast = await overSocket(gw.url, method, path, headers, body);
      const fastAtBackend = backend.received.slice(before);
      const res = await overSocket(gw.url, method, path, { ...headers, 'x-forwarded-for': '192.0.2.1' }, body);
      const injected = { statusCode: res.status, headers: res.headers, body: res.body };
      const injectedAtBackend = backend.received.slice(before + fastAtBackend.length);
      const label = `${method} ${path} ${JSON.stringify(headers)}`;
      expect(fast.status, label).toBe(injected.statusCode);
      for (const h of COMPARED_HEADERS) expect(fast.headers[h], `${label} ${h}`).toEqual(injected.headers[h]);
      if (fast.headers['content-type']?.toString().includes('json') && fast.status !== 200)
        expect(JSON.parse(fast.body), label).toEqual(JSON.parse(injected.body));
      // The backend saw the same request (method, target, headers; the forwarded-for address may differ: inject's is 127.0.0.1).
      expect(fastAtBackend.length, label).toBe(injectedAtBackend.length);
      for (let i = 0; i < fastAtBackend.length; i++) {
        const a = fastAtBackend[i]!;
        const b = injectedAtBackend[i]!;
        expect([a.method, a.url, a.bodySha256], label).toEqual([b.method, b.url, b.bodySha256]);
        expect({ ...a.headers, 'x-forwarded-for': '', 'content-length': '' }, label).toEqual({
          ...b.headers,
          'x-forwarded-for': '',
          'content-length': '',
        });
      }
    }
  });

  it('an X-Forwarded-For chain from a trusted proxy is applied as before (fastify path)', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ open: { url: backend.url, auth_required: false } }, { trust_proxy: true });
    const r = await overSocket(gw.url, 'POST', '/open/mcp', { ...JSON_RPC_HEADERS, 'x-forwarded-for': '203.0.113.7' }, PING);
    expect(r.status).toBe(200);
    expect(backend.received.at(-1)!.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    const plain = await overSocket(gw.url, 'POST', '/open/mcp', JSON_RPC_HEADERS, PING);
    expect(plain.status).toBe(200);
    expect(backend.received.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});
