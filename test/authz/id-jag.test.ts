/**
 * Enterprise-Managed Authorization (issue 16 §2): ID-JAGs signed by a test enterprise IdP key, presented
 * at `/oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` by a configured client.
 * A success with the MCP SDK v2 `CrossAppAccessProvider` through the gateway; each rejection rule (wrong
 * audience, wrong resource, expired, replayed, unknown issuer, unknown client, and the others) as raw
 * token requests; the jti replay record shared by two gateway instances on one Redis.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Client, CrossAppAccessProvider, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { problems } from '../helpers/config.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { describeRedis, RedisServer, redisConfig } from '../helpers/redis-server.js';
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';

const ACME = 'https://acme-idp.example';
const SECRET_1 = 'mcp-client-1-secret-0123456789';
const SECRET_2 = 'mcp-client-2-secret-0123456789';

interface Keys {
  priv: CryptoKey;
  pub: JWK;
}

async function keys(kid: string): Promise<Keys> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { priv: privateKey, pub: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

interface World {
  gw: StartedGateway;
  idp: UpstreamIdp;
  acme: Keys;
  corp: Keys;
}

function gatewayConfig(w: { idp: UpstreamIdp; acme: Keys; jwksUri: string; backend: string }) {
  return {
    oauth_providers: {
      corp: { issuer: w.idp.issuer, client_id: 'gw', client_secret: 'gw-secret', scopes: ['openid', 'email', 'profile', 'groups'] },
    },
    mcp_services: {
      calc: { name: 'Calculator', url: w.backend, scopes: ['mcp:tools', 'mcp:admin'] },
      notes: { name: 'Notes', url: w.backend, scopes: ['notes:read'], policy: { groups: ['staff'] } },
      other: { name: 'Other', url: w.backend },
    },
    registration: {
      clients: [
        {
          client_id: 'mcp-client-1',
          client_secret: SECRET_1,
          grant_types: ['urn:ietf:params:oauth:grant-type:jwt-bearer'],
          services: ['calc', 'notes'],
        },
        {
          client_id: 'mcp-client-2',
          client_secret: SECRET_2,
          grant_types: ['urn:ietf:params:oauth:grant-type:jwt-bearer'],
          services: ['calc'],
        },
      ],
    },
    enterprise_authorization: {
      issuers: [
        { issuer: ACME, jwks: { keys: [w.acme.pub] }, clients: ['mcp-client-1'], claims: { id: 'uid', email: 'mail', groups: 'roles' } },
        // The company IdP that is also the browser sign-in provider: its users get the same ids (corp:…).
        { issuer: w.idp.issuer, jwks_uri: w.jwksUri, clients: ['mcp-client-1', 'mcp-client-2'] },
      ],
    },
  };
}

interface Jag {
  key?: CryptoKey;
  kid?: string;
  typ?: string;
  alg?: string;
  claims?: Record<string, unknown>;
  /** Lifetime in seconds (default 300); `iat` is now unless given. */
  ttl?: number;
}

async function idJag(w: World, gw: string, opt: Jag = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: ACME,
    aud: gw,
    sub: 'ignored-sub',
    uid: 'u-1',
    mail: 'ana@acme.example',
    roles: ['staff', 'dev'],
    resource: `${gw}/calc/mcp`,
    client_id: 'mcp-client-1',
    scope: 'mcp:tools mcp:admin',
    jti: randomUUID(),
    iat: now,
    exp: now + (opt.ttl ?? 300),
    ...opt.claims,
  };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: opt.alg ?? 'ES256', typ: opt.typ ?? 'oauth-id-jag+jwt', kid: opt.kid ?? 'acme-1' })
    .sign(opt.key ?? w.acme.priv);
}

async function present(
  gw: StartedGateway,
  assertion: string,
  client: [string, string] = ['mcp-client-1', SECRET_1],
  extra: Record<string, string> = {},
) {
  const res = await fetch(`${gw.url}/oauth/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client[0]}:${client[1]}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion, ...extra }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, string> };
}

describe('Enterprise-Managed Authorization (ID-JAG)', () => {
  let w: World & { jwksHits: () => number };
  beforeAll(async () => {
    w = await startWorldOnce();
  });
  afterAll(async () => closeWorld());

  test('SDK v2 CrossAppAccessProvider through the gateway: the enterprise grant becomes a token for calc; the backend sees the mapped user', async () => {
    const { gw } = w;
    let asked: { authorizationServerUrl: string; resourceUrl: string; scope?: string | undefined } | undefined;
    const authProvider = new CrossAppAccessProvider({
      clientId: 'mcp-client-1',
      clientSecret: SECRET_1,
      expectedIssuer: gw.url,
      assertion: async (c) => {
        asked = { authorizationServerUrl: String(c.authorizationServerUrl), resourceUrl: String(c.resourceUrl), scope: c.scope };
        return idJag(w, String(c.authorizationServerUrl), { claims: { resource: String(c.resourceUrl) } });
      },
    });
    const client = new Client({ name: 'xaa', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/calc/mcp`), { authProvider }));
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    const seen = JSON.parse((result.content as Array<{ text: string }>)[0]!.text) as Record<string, string>;
    await client.close();
    expect(asked).toMatchObject({ authorizationServerUrl: gw.url, resourceUrl: `${gw.url}/calc/mcp` });
    expect(seen).toMatchObject({
      'x-user-id': 'acme-idp.example:u-1',
      'x-user-provider': 'acme-idp.example',
      'x-user-email': 'ana@acme.example',
      'x-user-groups': 'staff,dev',
    });
    expect(seen['x-user-kind']).toBeUndefined();
    const claims = decodeJwt(authProvider.tokens()!.access_token);
    expect(claims).toMatchObject({
      sub: 'acme-idp.example:u-1',
      aud: `${gw.url}/calc/mcp`,
      client_id: 'mcp-client-1',
      idp: 'acme-idp.example',
    });
  });

  test('metadata advertises the grant type and the ID-JAG grant profile', async () => {
    const meta = (await (await fetch(`${w.gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, string[]>;
    expect(meta.grant_types_supported).toContain('urn:ietf:params:oauth:grant-type:jwt-bearer');
    expect(meta.authorization_grant_profiles_supported).toEqual(['urn:ietf:params:oauth:grant-profile:id-jag']);
  });

  test('scopes are the intersection of requested and asserted; no refresh token; no-store; a jwks_uri issuer shares the browser sign-in ids', async () => {
    const { gw } = w;
    const r = await present(gw, await idJag(w, gw.url), undefined, { scope: 'mcp:tools other' });
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body).toMatchObject({ token_type: 'Bearer', scope: 'mcp:tools' });
    expect(r.body.refresh_token).toBeUndefined();
    expect(decodeJwt(r.body.access_token!).scope).toBe('mcp:tools');
    // Nothing requested: every asserted scope.
    const all = await present(gw, await idJag(w, gw.url));
    expect(all.body.scope).toBe('mcp:tools mcp:admin');

    const corpJag = await idJag(w, gw.url, {
      key: w.corp.priv,
      kid: 'corp-1',
      claims: {
        iss: w.idp.issuer,
        sub: 'alice',
        uid: undefined,
        email: 'alice@example.com',
        client_id: 'mcp-client-2',
        scope: 'mcp:tools',
      },
    });
    const hitsBefore = w.jwksHits();
    const corp = await present(gw, corpJag, ['mcp-client-2', SECRET_2]);
    expect(corp.body.error_description).toBeUndefined();
    expect(corp.status).toBe(200);
    expect(decodeJwt(corp.body.access_token!)).toMatchObject({ sub: 'corp:alice', idp: 'corp', email: 'alice@example.com' });
    expect(w.jwksHits()).toBeGreaterThanOrEqual(hitsBefore);
  });

  const rejections: Array<[string, (gw: string) => Jag, RegExp, [string, string]?]> = [
    [
      'wrong audience',
      () => ({ claims: { aud: 'https://other-as.example' } }),
      /^audience: .*aud is not this authorization server's issuer/,
    ],
    [
      'wrong resource (not a service here)',
      (gw) => ({ claims: { resource: `${gw}/nope/mcp` } }),
      /^resource: .*resource is not a service of this gateway/,
    ],
    ['wrong resource (another server)', () => ({ claims: { resource: 'https://mcp.other.example/mcp' } }), /^resource: /],
    [
      'expired',
      () => ({ claims: { iat: Math.floor(Date.now() / 1000) - 1000, exp: Math.floor(Date.now() / 1000) - 700 } }),
      /^exp: .*has expired/,
    ],
    [
      'unknown issuer',
      () => ({ claims: { iss: 'https://evil-idp.example' } }),
      /^unknown_issuer: .*not issued by a trusted enterprise issuer/,
    ],
    [
      'unknown client (not allowed for the issuer)',
      () => ({ claims: { client_id: 'mcp-client-2' } }),
      /^unknown_client: .*not allowed for this issuer/,
      ['mcp-client-2', SECRET_2],
    ],
    [
      'client_id of another client',
      () => ({ claims: { client_id: 'mcp-client-1' } }),
      /^client_mismatch: .*not the authenticated client/,
      ['mcp-client-2', SECRET_2],
    ],
    ['wrong typ', () => ({ typ: 'JWT' }), /^typ: .*typ is not oauth-id-jag\+jwt/],
    ['a lifetime over max_lifetime', () => ({ ttl: 3000 }), /^lifetime: .*lives longer than 600 s/],
    [
      'issued in the future',
      () => ({ claims: { iat: Math.floor(Date.now() / 1000) + 600, exp: Math.floor(Date.now() / 1000) + 900 } }),
      /^iat: .*issued in the future/,
    ],
    ['a scope the service does not have', () => ({ claims: { scope: 'mcp:tools root' } }), /^scope: .*does not have: root/],
    [
      'the service policy (notes needs group staff)',
      (gw) => ({ claims: { resource: `${gw}/notes/mcp`, roles: ['dev'], scope: 'notes:read' } }),
      /^policy: .*access policy of service 'notes'/,
    ],
  ];

  test.each(rejections)('refused: %s (invalid_grant, the rule named)', async (_name, make, message, client) => {
    const r = await present(w.gw, await idJag(w, w.gw.url, make(w.gw.url)), client);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_grant');
    expect(r.body.error_description).toMatch(message);
  });

  test('refused: a signature by another key, and alg none', async () => {
    const other = await keys('acme-1');
    const forged = await present(w.gw, await idJag(w, w.gw.url, { key: other.priv }));
    expect(forged.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/^signature: /) });
    const [h, p] = (await idJag(w, w.gw.url)).split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'oauth-id-jag+jwt' })).toString('base64url')}.${p}.`;
    expect(h).toBeTruthy();
    const r = await present(w.gw, none);
    expect(r.body.error).toBe('invalid_grant');
  });

  test('refused: replayed (the same jti twice), while a fresh jti passes; the service the client is not configured for', async () => {
    const jag = await idJag(w, w.gw.url);
    expect((await present(w.gw, jag)).status).toBe(200);
    const again = await present(w.gw, jag);
    expect(again.body).toEqual({ error: 'invalid_grant', error_description: 'replay: the assertion was already used (jti)' });
    expect((await present(w.gw, await idJag(w, w.gw.url))).status).toBe(200);
    const notConfigured = await present(
      w.gw,
      await idJag(w, w.gw.url, { claims: { resource: `${w.gw.url}/other/mcp`, scope: undefined } }),
    );
    expect(notConfigured.body).toMatchObject({
      error: 'invalid_target',
      error_description: expect.stringContaining('registration.clients[].services'),
    });
  });

  test('client authentication is required (401 invalid_client); a client without the grant is refused; a registration cannot ask for it', async () => {
    const jag = await idJag(w, w.gw.url);
    const wrong = await present(w.gw, jag, ['mcp-client-1', 'wrong-secret-000000000000']);
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    const dcr = await fetch(`${w.gw.url}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], grant_types: ['urn:ietf:params:oauth:grant-type:jwt-bearer'] }),
    });
    expect(dcr.status).toBe(400);
  });
});

// One world for the describe block: the gateway, IdP and backend started once (the rules are independent requests).
let world: (World & { jwksHits: () => number }) | undefined;
const closers: Array<() => Promise<unknown>> = [];
async function startWorldOnce() {
  const idp = await startUpstreamIdp(undefined, { cleanup: false });
  closers.push(() => idp.close());
  const backend = await startMcpBackend({ cleanup: false });
  closers.push(() => backend.close());
  const acme = await keys('acme-1');
  const corp = await keys('corp-1');
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [corp.pub] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  const gw = await startGateway(
    gatewayConfig({ idp, acme, jwksUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, backend: backend.url }),
    { cleanup: false },
  );
  closers.push(() => gw.close());
  world = { gw, idp, acme, corp, jwksHits: () => hits };
  return world;
}
async function closeWorld() {
  for (const c of closers.reverse()) await c();
}

describeRedis('ID-JAG replay across instances', () => {
  test('two gateways on one Redis: an ID-JAG used at one is refused at the other', async () => {
    const redis = await RedisServer.start();
    onTestFinished(() => redis.stop());
    const idp = await startUpstreamIdp();
    const backend = await startMcpBackend();
    const acme = await keys('acme-1');
    const cfg = () => ({
      ...gatewayConfig({ idp, acme, jwksUri: 'http://127.0.0.1:9/jwks', backend: backend.url }),
      storage: redisConfig({ url: redis.url }),
    });
    const first = await startGateway(cfg);
    // The second instance listens elsewhere but has the same issuer, as instances behind a load balancer do.
    const second = await startGateway(() => ({ ...cfg(), issuer: first.url }));
    const jag = await idJag({ gw: first, idp, acme, corp: acme }, first.url);
    expect((await present(first, jag)).status).toBe(200);
    const replay = await present(second, jag);
    expect(replay.body).toEqual({ error: 'invalid_grant', error_description: 'replay: the assertion was already used (jti)' });
  });
});

describe('enterprise_authorization: configuration', () => {
  const text = (
    issuers: string[],
    clients: string[] = [
      '    - {client_id: c1, client_secret: "0123456789abcdef01", grant_types: [urn:ietf:params:oauth:grant-type:jwt-bearer], services: [calc]}',
    ],
  ) =>
    [
      'issuer: https://gw.example.com',
      'session_secret: 0123456789abcdef0123456789abcdef0123',
      'oauth_providers:',
      '  okta: {issuer: "https://corp.okta.com", client_id: a, client_secret: b}',
      'mcp_services:',
      '  calc: {name: C, url: "http://127.0.0.1:9/mcp"}',
      'registration:',
      '  clients:',
      ...clients,
      'enterprise_authorization:',
      '  issuers:',
      ...issuers,
    ].join('\n');

  test('each problem at its key: no key source, both, a private key, http jwks_uri, an unknown client, a client without the grant', () => {
    const found = problems(
      text(
        [
          '    - {issuer: "https://a.example", clients: [c1]}',
          '    - {issuer: "https://b.example", jwks: {keys: [{kty: EC, crv: P-256, x: a, y: b, d: c}]}, clients: [c1, nobody]}',
          '    - {issuer: "https://c.example", jwks_uri: "http://keys.example/jwks", clients: [c1]}',
        ],
        [
          '    - {client_id: c1, client_secret: "0123456789abcdef01", grant_types: [urn:ietf:params:oauth:grant-type:jwt-bearer], services: [calc]}',
          '    - {client_id: c2, client_secret: "0123456789abcdef01", grant_types: [urn:ietf:params:oauth:grant-type:jwt-bearer], services: [calc]}',
        ],
      ),
    );
    const at = Object.fromEntries(found.map((p) => [p.path, p.message]));
    expect(at['enterprise_authorization.issuers.0']).toContain('needs exactly one of jwks');
    expect(at['enterprise_authorization.issuers.1.jwks.keys.0']).toContain('public keys only');
    expect(at['enterprise_authorization.issuers.1.clients.1']).toContain("client 'nobody' is not under registration.clients");
    expect(at['enterprise_authorization.issuers.2.jwks_uri']).toContain('plain http on a non-loopback host');
    expect(at['registration.clients.1.grant_types']).toContain(
      "client 'c2' has the jwt-bearer grant but no enterprise_authorization.issuers[].clients lists it",
    );
  });

  test('the provider name defaults to the oauth_providers key with the same issuer, which services may then name', () => {
    const ok = text(['    - {issuer: "https://corp.okta.com", jwks_uri: "https://corp.okta.com/keys", clients: [c1]}']).replace(
      'calc: {name: C, url: "http://127.0.0.1:9/mcp"}',
      'calc: {name: C, url: "http://127.0.0.1:9/mcp", oauth_provider: [okta]}',
    );
    expect(() => problems(ok)).toThrow(/expected the configuration to be refused/);
  });
});
