/**
 * Security regressions on the proxy and the operational surface (original-behaviour §8.1): S4 forged
 * tokens, S7 identity spoofing, S11 Origin/CORS, S12 cookies across users, S16 infrastructure detail,
 * S17 rate limits and policy, S18 odd claims.
 */
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createGateway } from '../../src/http/app.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import type { Store, StoreHealth } from '../../src/storage/store.js';
import { TEST_SECRET, testConfig } from '../helpers/config.js';
import { controlledClock } from '../helpers/clock.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { bearer, mintToken } from '../helpers/tokens.js';
import { BOB } from '../helpers/upstream-idp.js';
import { EVE, get, register, securityWorld } from './world.js';

const CALC_SCOPES = { scope: 'mcp:tools mcp:read' };

describe('S4: no shared signing secret, no forged or eternal tokens', () => {
  test('S4: the default and placeholder session_secret are refused at start-up (unless debug)', () => {
    for (const session_secret of [undefined, 'change-this-in-production', 'CHANGE-THIS-IN-PRODUCTION', 'short', 'x'.repeat(31)]) {
      expect(
        () => parseConfig({ storage: { type: 'memory' }, ...(session_secret !== undefined ? { session_secret } : {}) }),
        String(session_secret),
      ).toThrow(/session_secret/);
    }
    expect(() => parseConfig({ storage: { type: 'memory' }, debug: true })).not.toThrow();
    expect(() => parseConfig({ storage: { type: 'memory' }, session_secret: TEST_SECRET })).not.toThrow();
  });

  test('S4: self-minted HS256 (with the session secret or the old default), alg none and foreign-key tokens are refused at the proxy', async () => {
    const { gw, backend } = await securityWorld();
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: gw.url,
      aud: `${gw.url}/calc/mcp`,
      sub: 'myidp:alice',
      client_id: 'x',
      scope: 'mcp:tools mcp:read',
      iat: now,
      exp: now + 300,
      jti: 'j',
    };
    const hs = async (secret: string) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(new TextEncoder().encode(secret));
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const foreignJwk = { ...(await exportJWK(privateKey)), kid: gw.ctx.keys.privateJwks().keys[0]!.kid };
    const embedded = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', jwk: await exportJWK(publicKey) })
      .sign(privateKey);
    const forged = [
      await hs('change-this-in-production'),
      await hs(TEST_SECRET),
      new UnsecuredJWT(claims).encode(),
      `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`,
      await mintToken(gw, { service: 'calc', claims: CALC_SCOPES, key: foreignJwk }),
      embedded,
      // The gateway's own key, but the identity assertion type (never an access token).
      await mintToken(gw, { service: 'calc', claims: CALC_SCOPES, typ: 'identity+jwt' }),
    ];
    for (const token of forged) {
      const res = await fetch(`${gw.url}/calc/mcp`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect(backend.received).toHaveLength(0);
  });

  test('S4: a token without exp, or with exp in the past, is refused', async () => {
    const { gw, backend } = await securityWorld();
    for (const token of [
      await mintToken(gw, { service: 'calc', claims: { ...CALC_SCOPES, exp: undefined } }),
      await mintToken(gw, { service: 'calc', claims: CALC_SCOPES, ttl: -30 }),
      await mintToken(gw, { service: 'calc', claims: { ...CALC_SCOPES, exp: '9999999999' } }),
    ]) {
      expect((await fetch(`${gw.url}/calc/mcp`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    }
    expect(backend.received).toHaveLength(0);
  });

  test('S4: access tokens are ES256 with a kid published at /oauth/jwks; the JWKS has no private parts', async () => {
    const { gw } = await securityWorld();
    const jwks = (await (await fetch(`${gw.url}/oauth/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) {
      expect(k.kid).toBeTruthy();
      expect(k.d).toBeUndefined();
      expect(k.k).toBeUndefined();
      expect(['EC', 'RSA', 'OKP']).toContain(k.kty);
    }
  });
});

describe('S7: identity headers cannot be spoofed', () => {
  test('S7: on a protected service client-sent x-user-* (any case) never reach the backend, even when the token lacks the claim', async () => {
    const { gw, backend } = await securityWorld();
    const token = await bearer(gw, {
      service: 'calc',
      claims: { ...CALC_SCOPES, email: undefined, name: undefined, picture: undefined, groups: undefined },
    });
    const res = await fetch(`${gw.url}/calc/mcp`, {
      headers: {
        authorization: token,
        'X-User-Email': 'ceo@example.com',
        'x-user-id': 'myidp:ceo',
        'X-USER-GROUPS': 'admins',
        'x-user-name': 'CEO',
        'x-user-avatar': 'x',
        'x-user-provider': 'evil',
        'x-user-assertion': 'forged.jwt.value',
        'x-forwarded-for': '10.0.0.1',
        'x-forwarded-host': 'evil.example',
        forwarded: 'for=10.0.0.1',
      },
    });
    expect(res.status).toBe(200);
    const h = backend.received[0]!.headers;
    expect(h['x-user-id']).toBe('dev:alice');
    expect(h['x-user-email']).toBeUndefined();
    expect(h['x-user-groups']).toBeUndefined();
    expect(h['x-user-name']).toBeUndefined();
    expect(h['x-user-avatar']).toBeUndefined();
    expect(h['x-user-provider']).toBe('dev');
    expect(h['x-user-assertion']).toBeUndefined();
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-host']).toBe(new URL(gw.url).host);
    expect(h.forwarded).toBeUndefined();
  });

  test('S7: on a public service client-sent identity headers are stripped and none are injected', async () => {
    const { gw, backend } = await securityWorld();
    const res = await fetch(`${gw.url}/pub/mcp`, {
      headers: { 'x-user-email': 'ceo@example.com', 'x-user-id': 'admin', authorization: 'Bearer anything' },
    });
    expect(res.status).toBe(200);
    const names = backend.received[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n.startsWith('x-user-'))).toEqual([]);
    expect(names).not.toContain('authorization');
  });

  test('S7: renamed identity headers and the assertion header are stripped too', async () => {
    const { gw, backend } = await securityWorld({}, {}, (url) => ({
      calc: {
        name: 'Calc',
        url,
        oauth_provider: 'myidp',
        identity_headers: { email: 'x-auth-email', id: 'remote-user' },
        signed_identity: { enabled: true, header: 'x-identity' },
      },
      pub: { name: 'Public', url, auth_required: false, identity_headers: { email: 'x-auth-email' } },
    }));
    const spoof = { 'x-auth-email': 'ceo@example.com', 'remote-user': 'ceo', 'x-identity': 'forged' };
    await fetch(`${gw.url}/calc/mcp`, {
      headers: { authorization: await bearer(gw, { service: 'calc', claims: { email: undefined } }), ...spoof },
    });
    await fetch(`${gw.url}/pub/mcp`, { headers: spoof });
    const [prot, pub] = backend.received;
    expect(prot!.headers['x-auth-email']).toBeUndefined();
    expect(prot!.headers['remote-user']).toBe('dev:alice');
    expect(prot!.headers['x-identity']).not.toBe('forged');
    expect(pub!.headers['x-auth-email']).toBeUndefined();
    expect(pub!.headers['remote-user']).toBeUndefined();
    expect(pub!.headers['x-identity']).toBeUndefined();
  });
});

describe('S11: Origin checks are exact; blocked preflights get nothing', () => {
  test('S11: prefix/suffix look-alike origins get 403 and no CORS grant; the preflight from a blocked origin too', async () => {
    const { gw, backend } = await securityWorld({
      cors: { allow_origins: ['http://localhost', 'https://app.example.com'], allow_credentials: true },
    });
    const auth = await bearer(gw, { service: 'calc', claims: CALC_SCOPES });
    for (const origin of [
      'http://localhost.evil.example',
      'http://localhost:80.evil.example',
      'https://app.example.com.evil.example',
      'https://evil-app.example.com',
      'https://app.example.comx',
      'http://app.example.com',
      'null',
      'http://localhost/path',
      'http://user@localhost',
    ]) {
      const res = await fetch(`${gw.url}/calc/mcp`, { headers: { origin, authorization: auth } });
      expect(res.status, origin).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
      const pre = await fetch(`${gw.url}/calc/mcp`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
      });
      expect(pre.status, origin).toBe(403);
      expect(pre.headers.get('access-control-allow-origin')).toBeNull();
      expect(pre.headers.get('access-control-allow-headers')).toBeNull();
    }
    expect(backend.received).toHaveLength(0);
    const ok = await fetch(`${gw.url}/calc/mcp`, { headers: { origin: 'https://app.example.com', authorization: auth } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  test('S11: allow_origins "*" never combines with credentials (no reflected origin + Allow-Credentials)', async () => {
    const { gw } = await securityWorld({ cors: { allow_origins: ['*'], allow_credentials: true } });
    const res = await fetch(`${gw.url}/calc/mcp`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });
});

describe('S12: no cookie jar shared between users', () => {
  test('S12: a backend Set-Cookie for one user is never replayed to the backend for another user (with and without allow_set_cookie)', async () => {
    let n = 0;
    const backend = await startEchoBackend((_req, res) => {
      n++;
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': [`session=user-secret-${n}; Path=/; HttpOnly`] });
      res.end('{}');
    });
    const { gw } = await securityWorld({}, {}, () => ({
      a: { name: 'A', url: backend.url, oauth_provider: 'myidp' },
      b: { name: 'B', url: backend.url, oauth_provider: 'myidp', allow_set_cookie: true },
    }));
    for (const svc of ['a', 'b']) {
      const alice = await fetch(`${gw.url}/${svc}/mcp`, {
        headers: { authorization: await bearer(gw, { service: svc, claims: { sub: 'myidp:alice' } }) },
      });
      expect(alice.status).toBe(200);
      if (svc === 'a') expect(alice.headers.get('set-cookie')).toBeNull();
      else expect(alice.headers.get('set-cookie')).toContain('session=user-secret-');
      const bob = await fetch(`${gw.url}/${svc}/mcp`, {
        headers: { authorization: await bearer(gw, { service: svc, claims: { sub: 'myidp:bob' } }), cookie: 'session=client-sent' },
      });
      expect(bob.status).toBe(200);
    }
    for (const rec of backend.received) expect(rec.headers.cookie).toBeUndefined();
  });
});

describe('S16: no unauthenticated infrastructure detail', () => {
  class LeakyStore extends MemoryStore {
    down = true;
    override async health(): Promise<StoreHealth> {
      return this.down
        ? {
            ok: false,
            backend: 'memory',
            detail: 'Redis at 10.1.2.3:6379 (password hunter2-secret): connect ECONNREFUSED /var/lib/gateway/data.db',
          }
        : super.health();
    }
  }

  test('S16: /health and /ready do not reveal storage hosts, credentials or file paths', async () => {
    const store = new LeakyStore();
    const gw = await createGateway(
      testConfig({ mcp_services: { pub: { name: 'P', url: 'http://10.9.8.7:3000/mcp', auth_required: false } } }),
      { silent: true, store: store as Store },
    );
    try {
      for (const url of ['/health', '/ready']) {
        const res = await gw.app.inject({ url });
        expect(res.statusCode).toBeLessThan(600);
        for (const leak of ['10.1.2.3', 'hunter2', '/var/lib', 'ECONNREFUSED', '10.9.8.7'])
          expect(res.body, `${url} leaks ${leak}`).not.toContain(leak);
      }
    } finally {
      await gw.close();
      await store.close();
    }
  });

  test('S16: no /openapi.json, /docs or /storage/status; catalogue and metadata never name a backend URL', async () => {
    const { gw, backend } = await securityWorld();
    for (const path of [
      '/openapi.json',
      '/docs',
      '/docs/',
      '/documentation',
      '/storage/status',
      '/swagger.json',
      '/.env',
      '/config.yaml',
    ]) {
      expect((await get(`${gw.url}${path}`)).status, path).toBe(404);
    }
    const backendHost = new URL(backend.url).host;
    for (const path of [
      '/services',
      '/services/calc',
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-protected-resource/calc/mcp',
      '/health',
      '/ready',
    ]) {
      const r = await get(`${gw.url}${path}`);
      expect(r.text, path).not.toContain(backendHost);
      expect(r.text, path).not.toContain('gateway-upstream-secret-value');
    }
  });

  test('S16: the IdP profile is kept without upstream tokens or raw claims', async () => {
    const { gw } = await securityWorld();
    await obtainToken(gw.url, 'calc');
    const account = await gw.ctx.store.get<Record<string, unknown>>('gw:account:myidp:alice');
    expect(Object.keys(account!.value).sort()).toEqual([
      'email',
      'emailVerified',
      'groups',
      'id',
      'name',
      'picture',
      'provider',
      'subject',
    ]);
  });
});

describe('S17: rate limits, client expiry, access policy', () => {
  test('S17: /oauth/register answers 429 with Retry-After after rate_limits.register_per_minute', async () => {
    const { gw } = await securityWorld({ rate_limits: { enabled: true, register_per_minute: 3 } });
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof register>> | undefined;
    for (let i = 0; i < 5; i++) {
      last = await register(gw.url);
      statuses.push(last.status);
    }
    expect(statuses.slice(0, 3)).toEqual([201, 201, 201]);
    expect(statuses[3]).toBe(429);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(last!.json.client_id).toBeUndefined();
  });

  test('S17: /oauth/token and /oauth/authorize are rate-limited too', async () => {
    const { gw } = await securityWorld({ rate_limits: { enabled: true, token_per_minute: 2, authorize_per_minute: 2 } });
    const token: number[] = [];
    for (let i = 0; i < 4; i++)
      token.push(
        (
          await fetch(`${gw.url}/oauth/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: 'grant_type=refresh_token&refresh_token=x&client_id=y',
          })
        ).status,
      );
    expect(token.at(-1)).toBe(429);
    const authz: number[] = [];
    for (let i = 0; i < 4; i++) authz.push((await fetch(`${gw.url}/oauth/authorize?client_id=nope`, { redirect: 'manual' })).status);
    expect(authz.at(-1)).toBe(429);
  });

  test('S17: registration.client_ttl makes dynamically registered clients expire', async () => {
    const { gw } = await securityWorld({ registration: { client_ttl: 1 } });
    const clock = controlledClock();
    const clientId = String((await register(gw.url)).json.client_id);
    clock.elapse(1300);
    const res = await fetch(
      `${gw.url}/oauth/authorize?${new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: 'http://127.0.0.1:49152/callback', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`,
      { redirect: 'manual' },
    );
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  test('S17: an account outside the email-domain allowlist gets no token at sign-in and 403 at the proxy', async () => {
    const { gw, idp, backend } = await securityWorld();
    idp.nextUser = BOB;
    await expect(obtainToken(gw.url, 'weather')).rejects.toMatchObject({ oauthError: 'access_denied' });
    const minted = await bearer(gw, {
      service: 'weather',
      claims: { sub: 'myidp:bob', email: 'bob@other.example', scope: 'weather:read' },
    });
    const res = await fetch(`${gw.url}/weather/mcp`, { headers: { authorization: minted } });
    expect(res.status).toBe(403);
    expect(backend.received).toHaveLength(0);
  });
});

describe('S18: odd claim shapes never give a 500', () => {
  test('S18: aud arrays (several values), wrong-typed claims and CR/LF claims are a 401 or a clean pass, never 5xx', async () => {
    const { gw, backend } = await securityWorld();
    const aud = `${gw.url}/calc/mcp`;
    const cases: Array<[Record<string, unknown>, number]> = [
      [{ aud: [aud, `${gw.url}/weather/mcp`] }, 401],
      [{ aud: [aud, aud] }, 401],
      [{ aud: [] }, 401],
      [{ aud: 42 }, 401],
      [{ aud: { a: aud } }, 401],
      [{ aud: [aud] }, 200],
      [{ sub: 42 }, 401],
      [{ sub: ['a'] }, 401],
      [{ client_id: null }, 401],
      [{ scope: ['mcp:tools', 'mcp:read'] }, 403],
      [{ groups: 'not-a-list' }, 200],
      [{ email: { x: 1 } }, 200],
      [{ sub: 'myidp:eve\r\nX-Injected: 1' }, 200],
      [{ name: 'a\u0000b\r\n', email: 'e\r\n@x', groups: ['g\r\nh', 1, null], picture: 'https://x/\r\nSet-Cookie: a=b' }, 200],
      [{ gid: { not: 'a string' } }, 200],
    ];
    for (const [claims, status] of cases) {
      const token = await mintToken(gw, { service: 'calc', claims: { ...CALC_SCOPES, ...claims } });
      const res = await fetch(`${gw.url}/calc/mcp`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, JSON.stringify(claims)).toBe(status);
    }
    for (const rec of backend.received) {
      for (let i = 1; i < rec.rawHeaders.length; i += 2) expect(rec.rawHeaders[i]).not.toMatch(/[\r\n\0]/);
      expect(rec.headers['x-injected']).toBeUndefined();
      expect(rec.headers['set-cookie']).toBeUndefined();
    }
  });

  test('S18: a hostile IdP user (CR/LF in name, picture, groups) signs in; nothing reaches a header, the page escapes it', async () => {
    const { gw, idp, backend } = await securityWorld();
    idp.nextUser = EVE;
    const provider = new TestOAuthProvider();
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const res = await fetch(`${gw.url}/calc/mcp`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(res.status).toBe(200);
    const h = backend.received[0]!.headers;
    expect(h['x-injected']).toBeUndefined();
    expect(h['x-group-injected']).toBeUndefined();
    expect(h['set-cookie']).toBeUndefined();
    expect(h['x-user-name']).not.toMatch(/[\r\n]/);
    for (const page of provider.lastWalk!.shown) expect(page.body).not.toContain('<script>alert(1)</script>');
    // The refreshed token carries the same claims and is handled the same way.
    const refreshed = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
        client_id: provider.clientInformation()!.client_id,
      }),
    });
    expect(refreshed.status).toBe(200);
  });

  test('S18: an IdP subject with CR/LF fails the sign-in with a page (never a 500) and no code', async () => {
    // Map the user id to the `name` claim, which carries CR/LF for Eve.
    const world = await securityWorld({}, {}, undefined, { claims: { id: 'name' } });
    world.idp.nextUser = EVE;
    const provider = new TestOAuthProvider();
    const err = (await obtainToken(world.gw.url, 'calc', { provider }).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error | undefined;
    expect(err).toBeInstanceOf(Error);
    const last = provider.lastWalk!.shown.at(-1)!;
    expect(last.status).toBeLessThan(600);
    expect(last.status).not.toBe(500);
    expect(provider.captured?.code).toBeUndefined();
  });
});
