/**
 * Input hardening that is not random: body size limits on every endpoint, header size limits, strict
 * content types where the RFCs require them, and secrets kept out of the logs on the proxy path.
 */
import { describe, expect, test } from 'vitest';
import { obtainToken } from '../helpers/oauth-client.js';
import { rawRequest } from '../proxy/raw-http.js';
import { logCapture, postForm, postJson, register, securityWorld } from './world.js';

describe('body size limits', () => {
  test('oversized JSON to /oauth/register is 413; oversized forms to /oauth/token, /oauth/revoke, /oauth/introspect are 413', async () => {
    const { gw } = await securityWorld();
    const big = { redirect_uris: ['http://127.0.0.1/cb'], client_name: 'x'.repeat(70 * 1024) };
    const reg = await postJson(`${gw.url}/oauth/register`, big);
    expect(reg.status).toBe(413);
    for (const path of ['/oauth/token', '/oauth/revoke', '/oauth/introspect']) {
      const res = await postForm(`${gw.url}${path}`, { grant_type: 'refresh_token', refresh_token: 'x'.repeat(60 * 1024), token: 'y' });
      expect(res.status, path).toBe(413);
      expect(res.json.error).toBe('invalid_request');
    }
  });

  test('oversized consent form is refused (4xx), the proxy enforces limits.max_request_bytes (413)', async () => {
    const { gw } = await securityWorld({ limits: { shutdown_grace: 1, max_request_bytes: 1024 } });
    const decision = await postForm(`${gw.url}/interaction/abc/decision`, { csrf: 'x'.repeat(20 * 1024) });
    expect(decision.status).toBe(413);
    const proxy = await fetch(`${gw.url}/pub/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(4096),
    });
    expect(proxy.status).toBe(413);
  });

  test('headers over 16 KiB get 431 from Node (on the OAuth and the proxy routes alike)', async () => {
    const { gw } = await securityWorld();
    for (const path of ['/oauth/token', '/calc/mcp', '/health']) {
      const head = `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\nConnection: close\r\n\r\n`;
      expect((await rawRequest(gw.url, head)).status, path).toBe(431);
      const many = `GET ${path} HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(40)}\r\n`).join('')}Connection: close\r\n\r\n`;
      expect((await rawRequest(gw.url, many)).status, path).toBe(431);
    }
    expect((await fetch(`${gw.url}/health`)).status).toBe(200);
  });
});

describe('strict content types', () => {
  test('the token, revocation and introspection endpoints accept only application/x-www-form-urlencoded', async () => {
    const { gw } = await securityWorld();
    for (const path of ['/oauth/token', '/oauth/revoke', '/oauth/introspect']) {
      for (const ct of ['application/json', 'text/plain', 'multipart/form-data; boundary=x']) {
        const res = await fetch(`${gw.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': ct },
          body: '{"grant_type":"refresh_token"}',
        });
        expect(res.status, `${path} ${ct}`).toBe(400);
        expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
      }
    }
  });

  test('registration accepts only JSON (415 otherwise), and only a JSON object', async () => {
    const { gw } = await securityWorld();
    for (const ct of ['application/x-www-form-urlencoded', 'text/plain', 'application/xml']) {
      const res = await fetch(`${gw.url}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': ct },
        body: 'redirect_uris=http://127.0.0.1/cb',
      });
      // 415 from fastify, or 400 invalid_client_metadata for text/plain (fastify parses it as a string).
      expect([400, 415], ct).toContain(res.status);
      expect(((await res.json()) as { client_id?: string }).client_id).toBeUndefined();
    }
    for (const body of ['[]', '"x"', 'null', '1', '{', '{"redirect_uris":["http://127.0.0.1/cb"],"__proto__":{"x":1}}']) {
      const res = await postJson(`${gw.url}/oauth/register`, body);
      expect(res.status, body).toBe(400);
    }
    expect((await register(gw.url)).status).toBe(201);
  });
});

describe('secrets never reach the logs (proxy path included)', () => {
  test('a full flow plus proxied requests with Authorization, Cookie and session ids logs none of them, at debug level', async () => {
    const log = logCapture();
    const { gw, backend } = await securityWorld({ logging: { level: 'debug' } }, { logStream: log.stream });
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const secrets = [
      tokens.access_token,
      tokens.refresh_token!,
      provider.captured!.code!,
      provider.codeVerifier(),
      'gateway-upstream-secret-value',
    ];
    const sessionId = 'mcp-session-secret-0123456789abcdef';
    const auth = `Bearer ${tokens.access_token}`;
    for (const headers of [
      { authorization: auth, 'mcp-session-id': sessionId, cookie: 'sid=cookie-secret-value' },
      { authorization: `${auth}x` },
      { authorization: 'Bearer forged-secret-token-value' },
      { authorization: auth, origin: 'http://evil.example' },
    ] as Array<Record<string, string>>) {
      await fetch(`${gw.url}/calc/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      });
      await fetch(`${gw.url}/calc/mcp/sub/path?x=1`, { headers });
    }
    expect(backend.received.length).toBeGreaterThan(0);
    secrets.push(sessionId, 'cookie-secret-value', 'forged-secret-token-value');
    const text = log.text();
    expect(text.length).toBeGreaterThan(1000);
    for (const s of secrets) expect(text.includes(s), `a secret (${s.slice(0, 10)}…) appears in the log`).toBe(false);
    // No JWT-looking value at all.
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
