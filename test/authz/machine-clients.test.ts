/**
 * Machine clients (issue 16 §3): statically configured confidential clients (`registration.clients`)
 * using `grant_type=client_credentials` with a `resource`, authenticated with client_secret_basic,
 * client_secret_post or private_key_jwt; the token's subject is `client:{client_id}`; the backend is told
 * it is a machine client; only the client's `services`, and the service policy's `machine_clients`.
 * The clients are the MCP SDK v2's own (`ClientCredentialsProvider`, `PrivateKeyJwtProvider`) through the gateway.
 */
import { Client, ClientCredentialsProvider, PrivateKeyJwtProvider, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { describe, expect, test } from 'vitest';
import { problems, testConfig } from '../helpers/config.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';

const CI_SECRET = 'ci-bot-secret-0123456789abcdef';
const POST_SECRET = 'poster-secret-0123456789abcdef';

async function keyPair() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return {
    pub: { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' },
    priv: { ...(await exportJWK(privateKey)), kid: 'k1', alg: 'ES256' },
  };
}

async function startWorld(): Promise<{ gw: StartedGateway; priv: Record<string, unknown> }> {
  const backend = await startMcpBackend();
  const { pub, priv } = await keyPair();
  const gw = await startGateway({
    oauth_providers: { dev: {} },
    mcp_services: {
      calc: { name: 'Calculator', url: backend.url, scopes: ['mcp:tools', 'mcp:admin'], required_scopes: ['mcp:tools'] },
      notes: { name: 'Notes', url: backend.url },
      ops: { name: 'Ops', url: backend.url, policy: { machine_clients: ['keybot'] } },
    },
    registration: {
      clients: [
        { client_id: 'ci-bot', client_secret: CI_SECRET, client_name: 'CI bot', services: ['calc', 'ops'] },
        { client_id: 'poster', client_secret: POST_SECRET, token_endpoint_auth_method: 'client_secret_post', services: ['calc'] },
        { client_id: 'keybot', jwks: { keys: [pub] }, services: ['calc', 'ops'] },
      ],
    },
  });
  return { gw, priv };
}

async function tokenRequest(gw: StartedGateway, fields: Record<string, string>, basic?: [string, string]) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (basic) headers.authorization = `Basic ${Buffer.from(`${basic[0]}:${basic[1]}`).toString('base64')}`;
  const res = await fetch(`${gw.url}/oauth/token`, { method: 'POST', headers, body: new URLSearchParams(fields) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, string> };
}

async function whoami(gw: StartedGateway, service: string, authProvider: ConstructorParameters<typeof StreamableHTTPClientTransport>[1]) {
  const client = new Client({ name: 'machine', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/${service}/mcp`), authProvider));
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return JSON.parse((result.content as Array<{ text: string }>)[0]!.text) as Record<string, string>;
  } finally {
    await client.close();
  }
}

describe('machine clients (client_credentials)', () => {
  test('SDK v2 ClientCredentialsProvider (client_secret_basic) through the gateway: subject client:ci-bot, the backend is told it is a machine client, no email', async () => {
    const { gw } = await startWorld();
    const authProvider = new ClientCredentialsProvider({
      clientId: 'ci-bot',
      clientSecret: CI_SECRET,
      expectedIssuer: gw.url,
      scope: 'mcp:tools',
    });
    const seen = await whoami(gw, 'calc', { authProvider });
    expect(seen).toEqual({
      'x-user-id': 'client:ci-bot',
      'x-user-name': 'CI bot',
      'x-user-kind': 'machine',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': new URL(gw.url).host,
    });
    const claims = decodeJwt(authProvider.tokens()!.access_token);
    expect(claims).toMatchObject({ sub: 'client:ci-bot', client_id: 'ci-bot', aud: `${gw.url}/calc/mcp`, scope: 'mcp:tools' });
    expect(claims.email).toBeUndefined();
  });

  test('SDK v2 PrivateKeyJwtProvider (private_key_jwt, ES256): subject client:keybot; a service whose policy lists it', async () => {
    const { gw, priv } = await startWorld();
    const authProvider = new PrivateKeyJwtProvider({ clientId: 'keybot', privateKey: priv, algorithm: 'ES256', expectedIssuer: gw.url });
    expect((await whoami(gw, 'ops', { authProvider }))['x-user-id']).toBe('client:keybot');
    // No scope requested: the service's required scopes are granted (as for a person's authorization).
    const calc = new PrivateKeyJwtProvider({ clientId: 'keybot', privateKey: priv, algorithm: 'ES256', expectedIssuer: gw.url });
    await whoami(gw, 'calc', { authProvider: calc });
    expect(decodeJwt(calc.tokens()!.access_token)).toMatchObject({ sub: 'client:keybot', scope: 'mcp:tools' });
  });

  test('client_secret_post with resource: an ES256 at+jwt for that service, no refresh token, no-store', async () => {
    const { gw } = await startWorld();
    const r = await tokenRequest(gw, {
      grant_type: 'client_credentials',
      client_id: 'poster',
      client_secret: POST_SECRET,
      resource: `${gw.url}/calc/mcp`,
      scope: 'mcp:tools mcp:admin other',
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body.refresh_token).toBeUndefined();
    expect(decodeJwt(r.body.access_token!)).toMatchObject({
      sub: 'client:poster',
      aud: `${gw.url}/calc/mcp`,
      scope: 'mcp:tools mcp:admin',
    });
  });

  test('refused for a service the client is not configured for, and where the policy leaves it out; the description names the rule', async () => {
    const { gw } = await startWorld();
    const notes = await tokenRequest(gw, { grant_type: 'client_credentials', resource: `${gw.url}/notes/mcp` }, ['ci-bot', CI_SECRET]);
    expect(notes.status).toBe(400);
    expect(notes.body).toEqual({
      error: 'invalid_target',
      error_description: "client 'ci-bot' may not obtain tokens for service 'notes' (registration.clients[].services)",
    });
    const ops = await tokenRequest(gw, { grant_type: 'client_credentials', resource: `${gw.url}/ops/mcp` }, ['ci-bot', CI_SECRET]);
    expect(ops.body).toEqual({
      error: 'invalid_target',
      error_description: "denied by the access policy of service 'ops' (policy.machine_clients)",
    });
    // Through the SDK: the connection fails, no token is kept.
    const authProvider = new ClientCredentialsProvider({ clientId: 'ci-bot', clientSecret: CI_SECRET, expectedIssuer: gw.url });
    await expect(whoami(gw, 'notes', { authProvider })).rejects.toThrow();
    expect(authProvider.tokens()).toBeUndefined();
  });

  test('at the proxy: a machine token for a service it is not configured for, or denied by policy, gets 403', async () => {
    const { gw } = await startWorld();
    const call = async (service: string, sub: string, clientId: string) =>
      (
        await fetch(`${gw.url}/${service}/mcp`, {
          method: 'POST',
          headers: {
            authorization: await bearer(gw, {
              service,
              claims: { sub, client_id: clientId, email: undefined, idp: undefined, gid: undefined },
            }),
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
        })
      ).status;
    expect(await call('notes', 'client:ci-bot', 'ci-bot')).toBe(403);
    expect(await call('ops', 'client:ci-bot', 'ci-bot')).toBe(403);
    expect(await call('ops', 'client:gone', 'gone')).toBe(403);
  });

  test('without resource: refused when the client has several services; wrong secret is 401 invalid_client; DCR cannot register the grant', async () => {
    const { gw } = await startWorld();
    const none = await tokenRequest(gw, { grant_type: 'client_credentials' }, ['ci-bot', CI_SECRET]);
    expect(none.body.error).toBe('invalid_target');
    expect(none.body.error_description).toContain('a resource parameter is required');
    const single = await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'poster', client_secret: POST_SECRET });
    expect(decodeJwt(single.body.access_token!).aud).toBe(`${gw.url}/calc/mcp`);
    const wrong = await tokenRequest(gw, { grant_type: 'client_credentials', resource: `${gw.url}/calc/mcp` }, [
      'ci-bot',
      'not-the-secret-000000',
    ]);
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    const dcr = await fetch(`${gw.url}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'x',
        redirect_uris: [],
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    expect(dcr.status).toBe(400);
    expect(((await dcr.json()) as { error: string }).error).toBe('invalid_client_metadata');
    const meta = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, string[]>;
    expect(meta.grant_types_supported).toContain('client_credentials');
    expect(meta.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'private_key_jwt']),
    );
  });
});

describe('machine clients: configuration', () => {
  const head = [
    'issuer: https://gw.example.com',
    'session_secret: 0123456789abcdef0123456789abcdef0123',
    'oauth_providers:',
    '  github: {client_id: c, client_secret: d}',
    'mcp_services:',
    '  calc: {name: C, url: "http://127.0.0.1:9/mcp"}',
    '  open: {name: O, url: "http://127.0.0.1:9/mcp", auth_required: false}',
    'clients:',
    '  - {client_id: app, redirect_uris: ["http://127.0.0.1/cb"]}',
    'registration:',
    '  clients:',
  ];
  test('loads; default grant client_credentials', () => {
    const cfg = testConfig({
      oauth_providers: { dev: {} },
      mcp_services: { calc: { name: 'C', url: 'http://127.0.0.1:9/mcp' } },
      registration: { clients: [{ client_id: 'ci', client_secret: CI_SECRET, services: ['calc'] }] },
    });
    expect(cfg.registration.clients[0]?.grant_types).toEqual(['client_credentials']);
  });

  test('every problem at its key: unknown or public service, missing secret, private key in jwks, a repeated client_id', () => {
    const found = problems(
      [
        ...head,
        '    - {client_id: a, services: [calc, nope]}',
        '    - {client_id: b, client_secret: "0123456789abcdef0", services: [open]}',
        '    - {client_id: c, jwks: {keys: [{kty: EC, crv: P-256, x: a, y: b, d: c}]}, services: [calc]}',
        '    - {client_id: app, client_secret: "0123456789abcdef0", services: [calc]}',
      ].join('\n'),
    );
    const at = Object.fromEntries(found.map((p) => [p.path, p.message]));
    expect(at['registration.clients.0.services.1']).toContain("service 'nope' is not under mcp_services");
    expect(at['registration.clients.0.client_secret']).toContain("client 'a' uses client_secret_basic: set client_secret");
    expect(at['registration.clients.1.services.0']).toContain("service 'open' is public");
    expect(at['registration.clients.2.jwks.keys.0']).toContain('must hold public keys only');
    expect(at['registration.clients.3.client_id']).toContain("client_id 'app' is already used by clients[0]");
    expect(found.find((p) => p.path === 'registration.clients.0.services.1')?.line).toBe(12);
  });
});
