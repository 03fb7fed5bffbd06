/** Unit tests of the header, path and origin rules (pure functions and constants). */
import { describe, expect, it } from 'vitest';
import {
  buildResponseHeaders,
  buildUpstreamHeaders,
  encodeHeaderList,
  encodeHeaderValue,
  FORWARDED_REQUEST_HEADERS,
  isForwardableRequestHeader,
} from '../../src/proxy/headers.js';
import { backendTarget, publicLocation, upstreamTarget } from '../../src/proxy/path.js';
import { normalizeOrigin, OriginPolicy } from '../../src/kernel/origin.js';
import { parseBearer } from '../../src/proxy/access-token.js';

const NONE = new Set<string>();

describe('request header allowlist', () => {
  it('is exactly the documented list', () => {
    expect([...FORWARDED_REQUEST_HEADERS].sort()).toEqual(
      [
        'accept',
        'accept-encoding',
        'accept-language',
        'content-length',
        'content-type',
        'last-event-id',
        'mcp-method',
        'mcp-name',
        'mcp-protocol-version',
        'mcp-session-id',
        'traceparent',
        'tracestate',
        'user-agent',
      ].sort(),
    );
  });

  it('never forwards credentials, hop-by-hop, identity or forwarding headers', () => {
    for (const h of [
      'authorization',
      'cookie',
      'host',
      'connection',
      'keep-alive',
      'te',
      'trailer',
      'transfer-encoding',
      'upgrade',
      'proxy-authorization',
      'proxy-connection',
      'x-user-id',
      'x-user-email',
      'x-user-anything',
      'x-forwarded-for',
      'x-forwarded-host',
      'forwarded',
      'origin',
      'x-user-assertion',
    ]) {
      expect(isForwardableRequestHeader(h, NONE), h).toBe(false);
    }
  });

  it('forwards mcp-param-* and refuses configured identity names even when allowlisted', () => {
    expect(isForwardableRequestHeader('mcp-param-region', NONE)).toBe(true);
    expect(isForwardableRequestHeader('user-agent', new Set(['user-agent']))).toBe(false);
    expect(isForwardableRequestHeader('mcp-param-who', new Set(['mcp-param-who']))).toBe(false);
  });

  it('builds upstream headers in one pass: drops Connection-listed fields, injects identity and X-Forwarded-*', () => {
    const out = buildUpstreamHeaders({
      incoming: {
        accept: 'application/json, text/event-stream',
        'mcp-session-id': 'abc',
        'last-event-id': 'e1',
        connection: 'keep-alive, last-event-id',
        authorization: 'Bearer x',
        cookie: 'a=b',
        'x-user-id': 'mallory',
        'x-forwarded-for': '6.6.6.6',
        'mcp-param-x': '1',
      },
      stripped: new Set(['x-user-id']),
      identity: [['x-user-id', 'dev:alice']],
      forwardedFor: '127.0.0.1',
      forwardedProto: 'https',
      forwardedHost: 'gw.example',
    });
    expect(out).toEqual({
      accept: 'application/json, text/event-stream',
      'mcp-session-id': 'abc',
      'mcp-param-x': '1',
      'x-user-id': 'dev:alice',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'gw.example',
    });
  });

  it('filters response headers: hop-by-hop, Connection-listed, set-cookie (unless allowed), access-control-*', () => {
    const upstream = {
      'content-type': 'text/event-stream',
      'content-encoding': 'gzip',
      connection: 'x-internal',
      'x-internal': 'secret',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'set-cookie': ['a=1', 'b=2'],
      'access-control-allow-origin': '*',
      'mcp-session-id': 's1',
    };
    expect(buildResponseHeaders(upstream, false)).toEqual({
      'content-type': 'text/event-stream',
      'content-encoding': 'gzip',
      'mcp-session-id': 's1',
    });
    expect(buildResponseHeaders(upstream, true)['set-cookie']).toEqual(['a=1', 'b=2']);
  });
});

describe('identity header value encoding', () => {
  it('passes printable ASCII verbatim', () => {
    expect(encodeHeaderValue('Alice Example')).toBe('Alice Example');
    expect(encodeHeaderValue('a+b@example.com')).toBe('a+b@example.com');
  });
  it('drops control characters (CR/LF never reach a header)', () => {
    expect(encodeHeaderValue('Eve\r\nX-Evil: 1')).toBe('EveX-Evil: 1');
    expect(encodeHeaderValue('\r\n\t')).toBeUndefined();
  });
  it('encodes non-ASCII as an RFC 8187 ext-value', () => {
    expect(encodeHeaderValue('Zoë Ünïcode')).toBe("UTF-8''Zo%C3%AB%20%C3%9Cn%C3%AFcode");
    expect(decodeURIComponent(encodeHeaderValue('日本 (x)')!.slice(7))).toBe('日本 (x)');
    expect(encodeHeaderValue('\uD800 lone')).toBe("UTF-8''%EF%BF%BD%20lone");
    // A value that already looks encoded is encoded again, so decoding is unambiguous.
    expect(encodeHeaderValue("UTF-8''%41")).toBe("UTF-8''UTF-8%27%27%2541");
  });
  it('encodes list elements on their own', () => {
    expect(encodeHeaderList(['staff', 'a,b', 'ünï', '\r\n'])).toBe("staff,UTF-8''a%2Cb,UTF-8''%C3%BCn%C3%AF");
    expect(encodeHeaderList([])).toBeUndefined();
  });
});

describe('backend target', () => {
  const t = backendTarget(new URL('http://b:1/mcp'));
  it('keeps sub-paths and the raw query (repeated keys included)', () => {
    expect(upstreamTarget(t, '/svc/mcp')).toBe('/mcp');
    expect(upstreamTarget(t, '/svc/mcp/x/y?a=1&a=2&b=%20')).toBe('/mcp/x/y?a=1&a=2&b=%20');
    expect(upstreamTarget(t, '/svc/mcp?a=1')).toBe('/mcp?a=1');
    expect(upstreamTarget(t, '/svc/mcp/')).toBe('/mcp/');
  });
  it('merges the backend URL query', () => {
    const q = backendTarget(new URL('http://b:1/mcp?key=k'));
    expect(upstreamTarget(q, '/svc/mcp')).toBe('/mcp?key=k');
    expect(upstreamTarget(q, '/svc/mcp?a=1')).toBe('/mcp?key=k&a=1');
    expect(upstreamTarget(backendTarget(new URL('http://b:1/')), '/svc/mcp/x')).toBe('/x');
    expect(upstreamTarget(backendTarget(new URL('http://b:1')), '/svc/mcp')).toBe('/');
  });
  it('sends the backend path as configured, trailing slash included (P8)', () => {
    const s = backendTarget(new URL('http://b:1/mcp/'));
    expect(upstreamTarget(s, '/svc/mcp')).toBe('/mcp/');
    expect(upstreamTarget(s, '/svc/mcp?a=1')).toBe('/mcp/?a=1');
    expect(upstreamTarget(s, '/svc/mcp/x')).toBe('/mcp/x');
    expect(upstreamTarget(s, '/svc/mcp/')).toBe('/mcp/');
  });
  it('refuses a client query that names an operator parameter (P3)', () => {
    const q = backendTarget(new URL('http://b:1/mcp?tenant=1&a.b=2'));
    expect(q.baseNames).toEqual(new Set(['tenant', 'a_b']));
    for (const query of [
      'tenant=2',
      'TENANT',
      'x=1&tenant=',
      'x;tenant=2',
      'tenant[]=2',
      'a b=1',
      'a.b=1',
      'a_b=1',
      'ten%61nt=1',
      '%20tenant=2',
    ]) {
      expect(upstreamTarget(q, `/svc/mcp?${query}`), query).toMatchObject({ status: 400, error: 'invalid_request' });
    }
    expect(upstreamTarget(q, '/svc/mcp?tenants=1&x=%zz')).toBe('/mcp?tenant=1&a.b=2&tenants=1&x=%zz');
    expect(upstreamTarget(t, '/svc/mcp?tenant=2')).toBe('/mcp?tenant=2');
  });
  it('maps absolute-form targets as origin-form (P7)', () => {
    expect(upstreamTarget(t, 'http://gw.example/svc/mcp')).toBe('/mcp');
    expect(upstreamTarget(t, 'HTTPS://user@gw.example:8443/svc/mcp/x?y=1')).toBe('/mcp/x?y=1');
    for (const raw of ['ftp://gw/svc/mcp', 'http://gw?x=/svc/mcp', 'http://gw', '*', 'svc/mcp'])
      expect(upstreamTarget(t, raw), raw).toMatchObject({ status: 400 });
  });
  it('maps backend Location values to the public URL (P8)', () => {
    const q = backendTarget(new URL('http://b:1/mcp?tenant=1'));
    const at = (loc: string, target = q) => publicLocation(target, 'http://b:1', '/mcp/x?tenant=1', 'https://gw/svc/mcp', loc);
    expect(at('http://b:1/mcp')).toBe('https://gw/svc/mcp');
    expect(at('http://B:1/mcp/')).toBe('https://gw/svc/mcp/');
    expect(at('/mcp/a/b?tenant=1&z=2#f')).toBe('https://gw/svc/mcp/a/b?z=2#f');
    expect(at('y?tenant=1')).toBe('https://gw/svc/mcp/y');
    expect(at('//elsewhere.example/mcp')).toBe('//elsewhere.example/mcp');
    // The backend's own address under another scheme (it trusted X-Forwarded-Proto) is still the backend.
    expect(at('https://b:1/mcp/z')).toBe('https://gw/svc/mcp/z');
    expect(at('https://b:2/mcp')).toBe('https://b:2/mcp');
    expect(at('http://b:1/mcpx')).toBeUndefined();
    expect(at('http://b:1/')).toBeUndefined();
    expect(at('/mcp/x', backendTarget(new URL('http://b:1/')))).toBe('https://gw/svc/mcp/mcp/x');
  });
  it('refuses traversal', () => {
    for (const p of [
      '/svc/mcp/..',
      '/svc/mcp/../admin',
      '/svc/mcp/x/%2e%2e/y',
      '/svc/mcp/%2E./y',
      '/svc/mcp/a%2fb',
      '/svc/mcp/a%5Cb',
      '/svc/mcp/a\\b',
      '/svc/mcp/./x',
    ]) {
      expect(upstreamTarget(t, p), p).toMatchObject({ status: 400, error: 'invalid_request' });
    }
  });
});

describe('origin rules', () => {
  const policy = new OriginPolicy(
    {
      allow_origins: ['http://localhost:6274', 'https://app.example.com'],
      allow_credentials: false,
      allow_methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      allow_headers: [],
      expose_headers: ['X-Extra'],
    },
    'https://gw.example.com',
  );
  it('compares scheme, host and port exactly', () => {
    expect(policy.check(undefined)).toBe('absent');
    expect(policy.check('https://gw.example.com')).toBe('allowed');
    expect(policy.check('http://localhost:6274')).toBe('allowed');
    expect(policy.check('HTTP://LOCALHOST:6274')).toBe('allowed');
    expect(policy.check('https://app.example.com:443')).toBe('allowed');
    expect(policy.check('http://localhost.evil.example')).toBe('forbidden');
    expect(policy.check('http://localhost:6274.evil.example')).toBe('forbidden');
    expect(policy.check('http://localhost')).toBe('forbidden');
    expect(policy.check('https://localhost:6274')).toBe('forbidden');
    expect(policy.check('http://app.example.com')).toBe('forbidden');
    expect(policy.check('https://app.example.com.evil')).toBe('forbidden');
    expect(policy.check('null')).toBe('forbidden');
    expect(policy.check('')).toBe('forbidden');
    expect(policy.check('https://app.example.com/path')).toBe('forbidden');
  });
  it('normalises origins', () => {
    expect(normalizeOrigin('https://A.example:443')).toBe('https://a.example');
    expect(normalizeOrigin('http://user@a.example')).toBeUndefined();
  });
  it('exposes WWW-Authenticate and Mcp-Session-Id plus configured headers', () => {
    expect(policy.responseHeaders('http://localhost:6274')['access-control-expose-headers']).toBe(
      'WWW-Authenticate, Mcp-Session-Id, X-Extra',
    );
  });
});

describe('parseBearer', () => {
  it('classifies Authorization values', () => {
    expect(parseBearer(undefined)).toEqual({ kind: 'absent' });
    expect(parseBearer('Basic abc')).toEqual({ kind: 'absent' });
    expect(parseBearer('Bearer')).toEqual({ kind: 'malformed' });
    expect(parseBearer('Bearer ')).toEqual({ kind: 'malformed' });
    expect(parseBearer('Bearer a b')).toEqual({ kind: 'malformed' });
    expect(parseBearer('Bearer  abc.def')).toEqual({ kind: 'token', token: 'abc.def' });
    expect(parseBearer('bearer abc')).toEqual({ kind: 'token', token: 'abc' });
    expect(parseBearer('Bearer ' + 'x'.repeat(10_000))).toEqual({ kind: 'malformed' });
    expect(parseBearer('Bearer ü')).toEqual({ kind: 'malformed' });
  });
});
