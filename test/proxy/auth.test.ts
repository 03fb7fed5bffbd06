/** Bearer validation, scopes, revocation and access policy on the proxy (real gateway, real backend). */
import { generateKeyPair, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { bearer, mintToken } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS, PING, proxyGateway } from './fixtures.js';
import { rawRequest } from './raw-http.js';

async function setup() {
  const backend = await startEchoBackend();
  const gw = await proxyGateway({
    svc: { url: backend.url, scopes: ['mcp:read', 'mcp:write'] },
    other: { url: backend.url },
    pol: { url: backend.url, policy: { emails: ['bob@example.com'] } },
  });
  return { backend, gw };
}

function challengeOf(gw: { url: string }, id: string, extra = ''): string {
  return `Bearer resource_metadata="${gw.url}/.well-known/oauth-protected-resource/${id}/mcp"${extra}`;
}

describe('proxy authentication', () => {
  it('missing token: 401 with resource_metadata and scope, no error code, backend not reached', async () => {
    const { gw, backend } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe(challengeOf(gw, 'svc', ', scope="mcp:read mcp:write"'));
    expect(await r.json()).toMatchObject({ error: 'invalid_request', error_description: 'Authentication required' });
    // A JSON-RPC request gets a JSON-RPC shaped error.
    const rpc = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: JSON_RPC_HEADERS, body: PING });
    expect(rpc.status).toBe(401);
    expect(await rpc.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Authentication required' } });
    // Another scheme counts as "no credentials" (RFC 6750 §3.1).
    const basic = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: 'Basic abc' } });
    expect(basic.status).toBe(401);
    expect(basic.headers.get('www-authenticate')).not.toContain('error=');
    expect(backend.received).toHaveLength(0);
  });

  it('valid token reaches the backend; the Authorization header does not', async () => {
    const { gw, backend } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { ...JSON_RPC_HEADERS, authorization: await bearer(gw, { service: 'svc' }) },
      body: PING,
    });
    expect(r.status).toBe(200);
    expect(backend.received).toHaveLength(1);
    expect(backend.received[0]!.headers.authorization).toBeUndefined();
    expect(backend.received[0]!.headers['x-user-id']).toBe('dev:alice');
  });

  it('expired, foreign-audience, wrong-typ, wrong-issuer and foreign-key tokens: 401 invalid_token', async () => {
    const { gw, backend } = await setup();
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const foreign = { ...(await exportJWK(privateKey)), kid: gw.ctx.keys.privateJwks().keys[0]!.kid };
    const tokens = {
      expired: await mintToken(gw, { service: 'svc', ttl: -60 }),
      audience: await mintToken(gw, { service: 'other' }),
      typ: await mintToken(gw, { service: 'svc', typ: 'JWT' }),
      issuer: await mintToken(gw, { service: 'svc', claims: { iss: 'http://evil.example' } }),
      key: await mintToken(gw, { service: 'svc', key: foreign }),
      noSub: await mintToken(gw, { service: 'svc', claims: { sub: undefined } }),
      subNotString: await mintToken(gw, { service: 'svc', claims: { sub: 42 } }),
      noClient: await mintToken(gw, { service: 'svc', claims: { client_id: undefined } }),
      audPrefix: await mintToken(gw, { claims: { aud: `${gw.url}/svc` } }),
    };
    for (const [name, t] of Object.entries(tokens)) {
      const r = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: `Bearer ${t}` } });
      expect(r.status, name).toBe(401);
      expect(r.headers.get('www-authenticate'), name).toBe(challengeOf(gw, 'svc', ', scope="mcp:read mcp:write", error="invalid_token"'));
      expect(((await r.json()) as { error: string }).error, name).toBe('invalid_token');
    }
    // A token valid for `svc` is still foreign at `other`, also once cached.
    const good = await bearer(gw, { service: 'svc' });
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: good } })).status).toBe(200);
    expect((await fetch(`${gw.url}/other/mcp`, { headers: { authorization: good } })).status).toBe(401);
    expect(backend.received).toHaveLength(1);
  });

  it('aud array: accepted only as the single value of this service', async () => {
    const { gw } = await setup();
    const single = await bearer(gw, { service: 'svc', claims: { aud: [`${gw.url}/svc/mcp`] } });
    const multi = await bearer(gw, { service: 'svc', claims: { aud: [`${gw.url}/svc/mcp`, `${gw.url}/other/mcp`] } });
    const odd = await bearer(gw, { service: 'svc', claims: { aud: [{ x: 1 }] } });
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: single } })).status).toBe(200);
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: multi } })).status).toBe(401);
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: odd } })).status).toBe(401);
  });

  it('malformed Authorization values are 401, never 500', async () => {
    const { gw } = await setup();
    const values = [
      'Bearer',
      'Bearer ',
      'Bearer  x',
      'Bearer a b',
      'Bearer a.b.c',
      'Basic abc',
      'Bearer ' + 'A'.repeat(10_240),
      'x'.repeat(10_240),
      'Bearer eyJhbGciOiJub25lIn0.e30.',
      'Bearer ....',
    ];
    for (const v of values) {
      const r = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: v } });
      expect(r.status, v.slice(0, 20)).toBe(401);
    }
    // Non-latin1 bytes (UTF-8 on the wire), which fetch refuses to send.
    const head = Buffer.concat([
      Buffer.from(`GET /svc/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer `),
      Buffer.from('ünïcødé→🔑', 'utf8'),
      Buffer.from('\r\n\r\n'),
    ]);
    const raw = await rawRequest(gw.url, head);
    expect(raw.status).toBe(401);
  });

  it('insufficient scope: 403 naming every required scope', async () => {
    const { gw, backend } = await setup();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      headers: { authorization: await bearer(gw, { service: 'svc', claims: { scope: 'mcp:read' } }) },
    });
    expect(r.status).toBe(403);
    expect(r.headers.get('www-authenticate')).toBe(challengeOf(gw, 'svc', ', scope="mcp:read mcp:write", error="insufficient_scope"'));
    expect(await r.json()).toMatchObject({ error: 'insufficient_scope', scope: 'mcp:read mcp:write' });
    expect(backend.received).toHaveLength(0);
  });

  it('revoked grant: 401, also for a token already verified and cached', async () => {
    const { gw } = await setup();
    const gid = 'grant-to-revoke';
    const auth = await bearer(gw, { service: 'svc', claims: { gid } });
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } })).status).toBe(200);
    await gw.ctx.revocations.revoke(gid);
    const r = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const fresh = await bearer(gw, { service: 'svc', claims: { gid } });
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: fresh } })).status).toBe(401);
  });

  it('the verified-token cache: a hit needs the exact header; a forged token with the same signature never rides on it', async () => {
    const { gw, backend } = await setup();
    const token = await mintToken(gw, { service: 'svc' });
    const call = (authorization: string) => fetch(`${gw.url}/svc/mcp`, { headers: { authorization } }).then((r) => r.status);
    expect(await call(`Bearer ${token}`)).toBe(200);
    // The same token spelled differently (scheme case, spaces) is verified on its own and accepted.
    expect(await call(`bearer   ${token}  `)).toBe(200);
    // Another payload under the cached token's signature (so the same header end, the cache's key): 401,
    // before and after the genuine header was cached, and the genuine one still works afterwards.
    const [h, , sig] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'dev:mallory', aud: `${gw.url}/svc/mcp` })).toString('base64url')}.${sig}`;
    expect(await call(`Bearer ${forged}`)).toBe(401);
    expect(await call(`Bearer ${token}`)).toBe(200);
    expect(await call(`Bearer ${forged}`)).toBe(401);
    expect(backend.received.map((r) => r.headers['x-user-id'])).toEqual(['dev:alice', 'dev:alice', 'dev:alice']);
    // A token of another service is refused from the cache too (RFC 8707: one token, one service).
    const other = `Bearer ${await mintToken(gw, { service: 'other' })}`;
    expect((await fetch(`${gw.url}/other/mcp`, { headers: { authorization: other } })).status).toBe(200);
    expect(await call(other)).toBe(401);
  });

  it('revocation status unknown (storage down): fail closed with 503 Retry-After', async () => {
    const { gw } = await setup();
    const auth = await bearer(gw, { service: 'svc' });
    const store = gw.ctx.store as { list: (...a: unknown[]) => Promise<unknown> };
    const original = store.list;
    store.list = async () => {
      throw new Error('down');
    };
    await gw.ctx.revocations.refresh();
    expect(gw.ctx.revocations.healthy).toBe(false);
    const r = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBeTruthy();
    store.list = original;
    await gw.ctx.revocations.refresh();
    expect((await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } })).status).toBe(200);
  });

  it('access policy: 403 with a reason, audited and counted', async () => {
    const { gw, backend } = await setup();
    const r = await fetch(`${gw.url}/pol/mcp`, { headers: { authorization: await bearer(gw, { service: 'pol' }) } });
    expect(r.status).toBe(403);
    expect(await r.json()).toMatchObject({ error: 'access_denied', error_description: expect.stringContaining('access policy') });
    const ok = await fetch(`${gw.url}/pol/mcp`, {
      headers: { authorization: await bearer(gw, { service: 'pol', claims: { email: 'Bob@Example.com', sub: 'dev:bob' } }) },
    });
    expect(ok.status).toBe(200);
    expect(backend.received).toHaveLength(1);
    const metrics = await gw.ctx.metrics.registry.metrics();
    expect(metrics).toMatch(/mcp_gateway_policy_denials_total\{service="pol",stage="request"\} 1/);
    expect(metrics).toMatch(/mcp_gateway_proxy_requests_total\{service="pol",status="403"\} 1/);
    await expect.poll(() => gw.ctx.metrics.registry.metrics()).toMatch(/mcp_gateway_proxy_requests_total\{service="pol",status="200"\} 1/);
  });

  it('CR/LF and non-ASCII in claims never reach a header and never 500', async () => {
    const { gw, backend } = await setup();
    const auth = await bearer(gw, {
      service: 'svc',
      claims: { name: 'Eve\r\nX-Injected: 1', email: 'eve@example.com\n', groups: ['a,b', 'Zoë', 7], picture: '\u0000' },
    });
    const r = await fetch(`${gw.url}/svc/mcp`, { headers: { authorization: auth } });
    expect(r.status).toBe(200);
    const h = backend.received[0]!.headers;
    expect(h['x-user-name']).toBe('EveX-Injected: 1');
    expect(h['x-injected']).toBeUndefined();
    expect(h['x-user-email']).toBe('eve@example.com');
    expect(h['x-user-groups']).toBe("UTF-8''a%2Cb,UTF-8''Zo%C3%AB");
    expect(h['x-user-avatar']).toBeUndefined();
  });
});
