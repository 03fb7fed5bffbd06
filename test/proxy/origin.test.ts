/** Origin validation (DNS-rebinding protection) and CORS on the proxy routes. */
import { describe, expect, it } from 'vitest';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { proxyGateway } from './fixtures.js';

async function setup() {
  const backend = await startEchoBackend((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'S1', vary: 'Accept', 'access-control-allow-origin': '*' });
    res.end('{}');
  });
  const gw = await proxyGateway(
    { svc: { url: backend.url } },
    { cors: { allow_origins: ['http://localhost:6274'], expose_headers: ['X-Trace'] } },
  );
  return { backend, gw };
}

describe('Origin validation', () => {
  it('refuses look-alike, null and unlisted origins with 403 and no CORS grant; allows exact matches and no Origin', async () => {
    const { gw, backend } = await setup();
    const auth = await bearer(gw, { service: 'svc' });
    for (const origin of [
      'http://localhost.evil.example',
      'http://localhost:6274.evil.example',
      'null',
      'http://localhost:6275',
      'https://localhost:6274',
      'http://evil.example',
    ]) {
      const r = await fetch(`${gw.url}/svc/mcp`, { headers: { origin, authorization: auth } });
      expect(r.status, origin).toBe(403);
      expect(r.headers.get('access-control-allow-origin'), origin).toBeNull();
      expect(((await r.json()) as { error: string }).error, origin).toBe('invalid_request');
    }
    expect(backend.received).toHaveLength(0);
    for (const origin of ['http://localhost:6274', gw.url]) {
      const r = await fetch(`${gw.url}/svc/mcp`, { headers: { origin, authorization: auth } });
      expect(r.status, origin).toBe(200);
      expect(r.headers.get('access-control-allow-origin')).toBe(origin);
    }
    const none = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } });
    expect(none.status).toBe(200);
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS', () => {
  it('answers preflight from allowed origins itself, with the MCP headers and requested mcp-param-*', async () => {
    const { gw, backend } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:6274',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, mcp-param-region, x-not-allowed',
      },
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe('http://localhost:6274');
    expect(r.headers.get('access-control-allow-methods')).toBe('GET, POST, DELETE, OPTIONS');
    const allowed = r.headers.get('access-control-allow-headers')!.split(', ');
    for (const h of [
      'authorization',
      'content-type',
      'accept',
      'mcp-protocol-version',
      'mcp-session-id',
      'last-event-id',
      'mcp-method',
      'mcp-name',
      'mcp-param-region',
    ])
      expect(allowed).toContain(h);
    expect(allowed).not.toContain('x-not-allowed');
    expect(r.headers.get('vary')).toContain('Origin');
    expect(backend.received).toHaveLength(0);
  });

  it('refuses preflight from a disallowed origin without any grant', async () => {
    const { gw } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost.evil.example', 'access-control-request-method': 'POST' },
    });
    expect(r.status).toBe(403);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect(r.headers.get('access-control-allow-methods')).toBeNull();
  });

  it('401 challenges are readable by allowed browser origins (WWW-Authenticate exposed)', async () => {
    const { gw } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { origin: 'http://localhost:6274', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('access-control-allow-origin')).toBe('http://localhost:6274');
    expect(r.headers.get('access-control-expose-headers')).toBe('WWW-Authenticate, Mcp-Session-Id, X-Trace');
    expect(r.headers.get('www-authenticate')).toContain('resource_metadata=');
  });

  it('proxied responses get the gateway CORS headers (backend ones replaced) and Vary: Origin', async () => {
    const { gw } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      headers: { origin: 'http://localhost:6274', authorization: await bearer(gw, { service: 'svc' }) },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe('http://localhost:6274');
    expect(r.headers.get('access-control-expose-headers')).toContain('Mcp-Session-Id');
    expect(r.headers.get('vary')).toBe('Accept, Origin');
    expect(r.headers.get('mcp-session-id')).toBe('S1');
  });
});
