/**
 * Client registration shapes seen in the field (issue 11 §3), each built as that client builds it:
 * loopback redirect URIs without a port (RFC 8252 §7.3), several redirect URI kinds in one registration,
 * and `private_key_jwt` (RFC 7523) with inline `jwks`, a `jwks_uri`, or a CIMD document (ChatGPT).
 */
import { createPrivateKeyJwtAuth } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { decodeJwt, exportJWK, exportPKCS8, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, onTestFinished, test } from 'vitest';
import { cimdTesting } from '../../src/authz/cimd.js';
import { startCimdServer } from '../helpers/cimd-server.js';
import { redisAvailable, RedisServer, redisConfig } from '../helpers/redis-server.js';
import { authorizeOnly, obtainToken, TestOAuthProvider, type TestProviderOptions } from '../helpers/oauth-client.js';
import { startWorld } from './setup.js';

const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

async function post(url: string, body: Record<string, string> | unknown, json = false) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': json ? 'application/json' : 'application/x-www-form-urlencoded' },
    body: json ? JSON.stringify(body) : new URLSearchParams(body as Record<string, string>),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

const register = (gw: string, body: Record<string, unknown>) => post(`${gw}/oauth/register`, body, true);

/** GET /oauth/authorize as a browser would (no cookies): where it sends the person, or the page it shows. */
async function authorizeAttempt(gw: string, clientId: string, redirectUri: string) {
  const q = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    state: 's',
    resource: `${gw}/calc/mcp`,
  });
  const res = await fetch(`${gw}/oauth/authorize?${q}`, { redirect: 'manual' });
  const location = res.headers.get('location');
  return { status: res.status, location: location ? new URL(location, gw) : undefined, body: await res.text() };
}

/** The gateway accepted the redirect URI: the browser goes on to the consent/interaction page. */
function expectAccepted(r: Awaited<ReturnType<typeof authorizeAttempt>>, gw: string): void {
  expect(r.status, r.body.slice(0, 300)).toBe(303);
  expect(r.location?.href.startsWith(`${gw}/interaction/`)).toBe(true);
}

/** Refused: an error page naming redirect_uri, never a redirect (SPEC §2: no open redirector). */
function expectRefused(r: Awaited<ReturnType<typeof authorizeAttempt>>): void {
  expect(r.status).toBe(400);
  expect(r.location).toBeUndefined();
  expect(r.body).toContain('redirect_uri');
}

describe('loopback redirect URIs registered without a port: any port (RFC 8252 §7.3)', () => {
  for (const host of ['localhost', '127.0.0.1', '[::1]']) {
    test(`http://${host}/callback registered, used with a random port at /oauth/authorize and /oauth/token`, async () => {
      const { gw } = await startWorld();
      const port = 40000 + Math.floor(Math.random() * 20000);
      const used = `http://${host}:${port}/callback`;
      // The client registers the port-less URI (as Claude Code's and opencode's CIMD documents do) and
      // listens on an ephemeral port.
      const provider = new TestOAuthProvider({ redirectUri: used, clientMetadata: { redirect_uris: [`http://${host}/callback`] } });
      const { tokens } = await obtainToken(gw.url, 'calc', { provider });
      expect(decodeJwt(tokens.access_token).aud).toBe(`${gw.url}/calc/mcp`);
      expect(provider.lastWalk?.redirect?.origin).toBe(`http://${host}:${port}`);
      // Another port works too; the same client, no new registration.
      const again = new TestOAuthProvider({
        redirectUri: `http://${host}:${port + 1}/callback`,
        clientInformation: provider.clientInformation()!,
      });
      await obtainToken(gw.url, 'calc', { provider: again });
    });
  }

  test('the token request must repeat the exact redirect_uri of the authorization request, port included (RFC 6749 §4.1.3)', async () => {
    const { gw } = await startWorld();
    const provider = await authorizeOnly(gw.url, 'calc', {
      redirectUri: 'http://localhost:50001/callback',
      clientMetadata: { redirect_uris: ['http://localhost/callback'] },
    });
    const body = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      code_verifier: provider.codeVerifier(),
      client_id: provider.clientInformation()!.client_id,
    };
    const other = await post(`${gw.url}/oauth/token`, { ...body, redirect_uri: 'http://localhost:50002/callback' });
    expect(other.status).toBe(400);
    expect(other.json.error).toBe('invalid_grant');
  });

  test('Claude Code CIMD shape (port-less localhost and 127.0.0.1, no application_type): an ephemeral port works', async () => {
    const cimd = await startCimdServer();
    cimdTesting.fetch = cimd.trustingFetch;
    onTestFinished(() => void delete cimdTesting.fetch);
    const clientId = `${cimd.origin}/oauth/claude-code-client-metadata`;
    cimd.documents.set('/oauth/claude-code-client-metadata', {
      client_id: clientId,
      client_name: 'Claude Code',
      client_uri: 'https://claude.ai',
      redirect_uris: ['http://localhost/callback', 'http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const { gw } = await startWorld();
    const { tokens } = await obtainToken(gw.url, 'calc', {
      provider: new TestOAuthProvider({ clientMetadataUrl: clientId, redirectUri: 'http://localhost:61234/callback' }),
    });
    expect(decodeJwt(tokens.access_token).client_id).toBe(clientId);
  });

  test('application_type web: loopback redirect URIs get any port as well (SPEC §2: whatever the application type)', async () => {
    const { gw } = await startWorld();
    const reg = await register(gw.url, {
      application_type: 'web',
      redirect_uris: ['http://127.0.0.1/callback', 'https://app.example/cb'],
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status).toBe(201);
    const id = String(reg.json.client_id);
    expectAccepted(await authorizeAttempt(gw.url, id, 'http://127.0.0.1:43123/callback'), gw.url);
    expectRefused(await authorizeAttempt(gw.url, id, 'https://app.example:8443/cb'));
    expectRefused(await authorizeAttempt(gw.url, id, 'http://127.0.0.1:43123/other'));
  });

  test('everything else stays exact: path, query, host; a non-loopback host never gets port relaxation', async () => {
    const { gw } = await startWorld();
    const reg = await register(gw.url, {
      redirect_uris: [
        'http://localhost/callback',
        'http://127.0.0.1/cb?app=1',
        'https://app.example/cb',
        'cursor://anysphere.cursor-mcp/oauth/callback',
      ],
    });
    expect(reg.status).toBe(201);
    const id = String(reg.json.client_id);
    expectAccepted(await authorizeAttempt(gw.url, id, 'http://127.0.0.1:5000/cb?app=1'), gw.url);
    for (const uri of [
      'http://localhost:5000/callback/',
      'http://localhost:5000/Callback',
      'http://localhost:5000/callback?x=1',
      'http://localhost:5000/callback#f',
      'http://127.0.0.1:5000/callback', // another loopback host than registered
      'http://[::1]:5000/callback',
      'http://127.0.0.1:5000/cb',
      'http://127.0.0.1:5000/cb?app=2',
      'https://localhost:5000/callback',
      'https://app.example:443/cb/',
      'https://app.example:8443/cb',
      'http://app.example/cb',
      'cursor://anysphere.cursor-mcp:8080/oauth/callback',
      'http://localhost.app.example:5000/callback',
    ]) {
      expectRefused(await authorizeAttempt(gw.url, id, uri));
    }
  });
});

describe('several redirect URIs of different kinds in one registration', () => {
  test('Cursor (custom scheme, https, loopback) and VS Code (loopback with and without port, https): each usable, nothing else', async () => {
    const { gw } = await startWorld();
    const shapes = {
      // Cursor: one DCR request carries all three.
      cursor: [
        'cursor://anysphere.cursor-mcp/oauth/callback',
        'https://www.cursor.com/agents/mcp/oauth/callback',
        'http://localhost:8787/callback',
      ],
      // VS Code: 33418, or a random port when it is busy; the web builds redirect through vscode.dev.
      vscode: ['https://vscode.dev/redirect', 'https://insiders.vscode.dev/redirect', 'http://127.0.0.1/', 'http://127.0.0.1:33418/'],
    };
    for (const [name, uris] of Object.entries(shapes)) {
      const reg = await register(gw.url, {
        client_name: name,
        redirect_uris: uris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
      expect(reg.status, JSON.stringify(reg.json)).toBe(201);
      expect(reg.json.redirect_uris).toEqual(uris);
      const info = { client_id: String(reg.json.client_id) };
      // The full flow on every registered URI; the VS Code loopback one on a random port as well.
      for (const used of [...uris, ...(name === 'vscode' ? ['http://127.0.0.1:51515/'] : [])]) {
        const provider = new TestOAuthProvider({ redirectUri: used, clientInformation: info });
        const { tokens } = await obtainToken(gw.url, 'calc', { provider });
        expect(provider.lastWalk?.redirect?.href.startsWith(used), used).toBe(true);
        expect(decodeJwt(tokens.access_token).client_id).toBe(info.client_id);
      }
    }
    const cursorId = String((await register(gw.url, { redirect_uris: shapes.cursor })).json.client_id);
    for (const uri of [
      'cursor://anysphere.cursor-mcp/oauth/callback2',
      'cursor://other.app/oauth/callback',
      'https://www.cursor.com/agents/mcp/oauth/callback/x',
      'http://localhost:8787/other',
      'https://vscode.dev/redirect',
    ]) {
      expectRefused(await authorizeAttempt(gw.url, cursorId, uri));
    }
  });

  test('javascript:, data: and other script-capable schemes are refused with invalid_redirect_uri (400, OAuth JSON)', async () => {
    const { gw } = await startWorld();
    const good = ['http://127.0.0.1/callback'];
    for (const bad of [
      'javascript:alert(document.cookie)',
      'JavaScript:alert(1)',
      ' javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:msgbox(1)',
      'file:///etc/passwd',
      'blob:https://app.example/1',
    ]) {
      for (const extra of [{}, { application_type: 'web' }]) {
        const res = await register(gw.url, { redirect_uris: [...good, bad], ...extra });
        expect(res.status, `${bad} ${JSON.stringify(extra)}`).toBe(400);
        expect(res.headers.get('content-type')).toContain('application/json');
        expect(res.json.error).toBe('invalid_redirect_uri');
        expect(String(res.json.error_description)).toMatch(/redirect_uris/);
        expect(res.json.client_id).toBeUndefined();
      }
    }
  });
});

async function keyPair() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: `k-${crypto.randomUUID()}`, use: 'sig', alg: 'ES256' };
  return { jwk, privateKey, pem: await exportPKCS8(privateKey) };
}

/** The MCP TypeScript SDK's own private_key_jwt client authentication (auth-extensions.js). */
class JwtClientProvider extends TestOAuthProvider {
  constructor(
    opts: TestProviderOptions,
    private readonly key: { pem: string; kid: string },
  ) {
    super(opts);
  }
  addClientAuthentication = async (
    headers: Headers,
    params: URLSearchParams,
    url: string | URL,
    metadata?: Parameters<ReturnType<typeof createPrivateKeyJwtAuth>>[3],
  ) => {
    const id = this.clientInformation()!.client_id;
    return createPrivateKeyJwtAuth({ issuer: id, subject: id, privateKey: this.key.pem, alg: 'ES256' })(headers, params, url, metadata);
  };
}

async function assertion(clientId: string, key: Parameters<SignJWT['sign']>[0], aud: string, jti = crypto.randomUUID()): Promise<string> {
  return new SignJWT({ jti })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(aud)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(key);
}

describe('token_endpoint_auth_method private_key_jwt (RFC 7523)', () => {
  test('advertised in the AS metadata with the accepted signing algorithms (RFC 8414 §2)', async () => {
    const { gw } = await startWorld();
    const md = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, string[]>;
    for (const k of [
      'token_endpoint_auth_methods_supported',
      'revocation_endpoint_auth_methods_supported',
      'introspection_endpoint_auth_methods_supported',
    ]) {
      expect(md[k]).toEqual(expect.arrayContaining(['none', 'private_key_jwt']));
    }
    expect(md.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'RS256']));
    expect(md.token_endpoint_auth_signing_alg_values_supported).not.toContain('HS256');
  });

  test('DCR with inline jwks: registered as asked, no secret; the SDK exchanges the code and refreshes with signed assertions', async () => {
    const { gw } = await startWorld();
    const key = await keyPair();
    const provider = new JwtClientProvider(
      {
        clientMetadata: {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [key.jwk] },
        } as TestProviderOptions['clientMetadata'],
      },
      { pem: key.pem, kid: key.jwk.kid },
    );
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const info = provider.clientInformation() as Record<string, unknown>;
    expect(info.token_endpoint_auth_method).toBe('private_key_jwt');
    expect(info.client_secret).toBeUndefined();
    const clientId = String(info.client_id);
    expect(decodeJwt(tokens.access_token).client_id).toBe(clientId);

    const refresh = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId };
    // Without an assertion, with one signed by another key, or for another audience: invalid_client.
    const stranger = await keyPair();
    for (const extra of [
      {},
      { client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(clientId, stranger.privateKey, gw.url) },
      { client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(clientId, key.privateKey, 'https://elsewhere.example') },
    ]) {
      const res = await post(`${gw.url}/oauth/token`, { ...refresh, ...extra });
      expect(res.status).toBe(401);
      expect(res.json.error).toBe('invalid_client');
    }
    // The token endpoint URL as audience (what most libraries send), then the same assertion again.
    const signed = await assertion(clientId, key.privateKey, `${gw.url}/oauth/token`);
    const ok = await post(`${gw.url}/oauth/token`, { ...refresh, client_assertion_type: ASSERTION_TYPE, client_assertion: signed });
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    const replayed = await post(`${gw.url}/oauth/token`, {
      ...refresh,
      refresh_token: String(ok.json.refresh_token),
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: signed,
    });
    expect(replayed.status).toBe(401);
    expect(replayed.json.error).toBe('invalid_client');
  });

  test.skipIf(!redisAvailable())(
    'one client assertion sent in parallel (Redis: the requests truly interleave): exactly one authenticates (atomic jti check)',
    async () => {
      const redis = await RedisServer.start();
      onTestFinished(() => redis.stop());
      const { gw } = await startWorld({ storage: redisConfig({ url: redis.url }) });
      const key = await keyPair();
      const provider = new JwtClientProvider(
        {
          clientMetadata: {
            token_endpoint_auth_method: 'private_key_jwt',
            jwks: { keys: [key.jwk] },
          } as TestProviderOptions['clientMetadata'],
        },
        { pem: key.pem, kid: key.jwk.kid },
      );
      const { tokens } = await obtainToken(gw.url, 'calc', { provider });
      const clientId = provider.clientInformation()!.client_id;
      const signed = await assertion(clientId, key.privateKey, gw.url);
      const results = await Promise.all(
        Array.from({ length: 6 }, () =>
          post(`${gw.url}/oauth/token`, {
            grant_type: 'refresh_token',
            refresh_token: tokens.refresh_token!,
            client_id: clientId,
            client_assertion_type: ASSERTION_TYPE,
            client_assertion: signed,
          }),
        ),
      );
      expect(results.map((r) => `${r.status} ${String(r.json.error ?? '')}`).sort()).toEqual([
        '200 ',
        ...Array(5).fill('401 invalid_client'),
      ]);
    },
  );

  test('DCR with jwks_uri: the keys are fetched from it and the code is exchanged with a signed assertion', async () => {
    const cimd = await startCimdServer();
    cimdTesting.fetch = cimd.trustingFetch;
    onTestFinished(() => void delete cimdTesting.fetch);
    const key = await keyPair();
    cimd.documents.set('/keys/jwks.json', { keys: [key.jwk] });
    const { gw } = await startWorld();
    const provider = new JwtClientProvider(
      { clientMetadata: { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `${cimd.origin}/keys/jwks.json` } },
      { pem: key.pem, kid: key.jwk.kid },
    );
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    expect((provider.clientInformation() as Record<string, unknown>).jwks_uri).toBe(`${cimd.origin}/keys/jwks.json`);
    expect(tokens.access_token).toBeTruthy();
    expect(cimd.hits).toContain('/keys/jwks.json');
  });

  test('DCR private_key_jwt without any keys is refused (invalid_client_metadata), never a 500', async () => {
    const { gw } = await startWorld();
    const res = await register(gw.url, { redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'private_key_jwt' });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_client_metadata');
    expect(String(res.json.error_description)).toMatch(/jwks/);
  });

  test('ChatGPT CIMD shape: private_key_jwt with jwks_uri, https redirect URIs; the code is exchanged with a signed assertion', async () => {
    const cimd = await startCimdServer();
    cimdTesting.fetch = cimd.trustingFetch;
    onTestFinished(() => void delete cimdTesting.fetch);
    const key = await keyPair();
    const clientId = `${cimd.origin}/oauth/conn_0123456789abcdef/client.json`;
    const redirect = 'https://chatgpt.com/connector/oauth/0123456789abcdef';
    cimd.documents.set('/oauth/jwks.json', { keys: [key.jwk] });
    cimd.documents.set('/oauth/conn_0123456789abcdef/client.json', {
      client_id: clientId,
      client_name: 'ChatGPT',
      client_uri: 'https://chatgpt.com',
      redirect_uris: ['https://chatgpt.com/connector_platform_oauth_redirect', redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
      token_endpoint_auth_signing_alg: 'ES256',
      jwks_uri: `${cimd.origin}/oauth/jwks.json`,
    });
    const { gw } = await startWorld();
    const provider = await authorizeOnly(gw.url, 'calc', { clientMetadataUrl: clientId, redirectUri: redirect });
    const code = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      code_verifier: provider.codeVerifier(),
      redirect_uri: redirect,
      client_id: clientId,
    };
    // A public-client exchange (no assertion) is refused: the document asked for private_key_jwt.
    const none = await post(`${gw.url}/oauth/token`, code);
    expect(none.status).toBe(401);
    expect(none.json.error).toBe('invalid_client');
    // ChatGPT's assertion: aud is the token endpoint exactly.
    const ok = await post(`${gw.url}/oauth/token`, {
      ...code,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await assertion(clientId, key.privateKey, `${gw.url}/oauth/token`),
    });
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(decodeJwt(String(ok.json.access_token))).toMatchObject({ client_id: clientId, aud: `${gw.url}/calc/mcp` });
    expect(cimd.hits).toEqual(expect.arrayContaining(['/oauth/conn_0123456789abcdef/client.json', '/oauth/jwks.json']));
  });
});
