/**
 * Identity provider trouble never ends a sign-in in a 500: plain http on loopback works without a flag
 * (one warning line at start-up), an unreachable provider (a port that refuses connections, or a real IdP
 * stopped in the middle of the flow) gives a page that says so with "Return to the application", HTTP 503,
 * and `temporarily_unavailable` to the client; start-up and /ready say when the provider cannot be used.
 */
import { Writable } from 'node:stream';
import { decodeJwt } from 'jose';
import { describe, expect, onTestFinished, test } from 'vitest';
import { freePort, startGateway } from '../helpers/gateway.js';
import { startGithubStandin } from '../helpers/github-standin.js';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { startUpstreamIdp } from '../helpers/upstream-idp.js';

const CALC = { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] };

function logSink() {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
      done();
    },
  });
  return { stream, lines, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

function gateway(provider: Record<string, unknown>, log = logSink()) {
  return startGateway(
    () => ({
      logging: { level: 'warn' },
      oauth_providers: { myidp: { client_id: 'gateway', client_secret: 'gateway-secret', ...provider } },
      mcp_services: { calc: { ...CALC, oauth_provider: 'myidp' } },
    }),
    { logStream: log.stream },
  );
}

const readyBody = async (res: Response) => (await res.json()) as { identity_provider?: { state?: string; reason?: string } };

/** A loopback port with nothing listening: connections are refused. */
async function refusedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

async function expectUnavailable(gwUrl: string): Promise<TestOAuthProvider> {
  const provider = new TestOAuthProvider();
  await expect(obtainToken(gwUrl, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'temporarily_unavailable', iss: gwUrl });
  expect(provider.lastWalk?.pages).toEqual(['consent', 'return']);
  const page = provider.lastWalk!.shown[1]!;
  expect(page.status).toBe(503);
  expect(page.body).toContain('Sign-in temporarily unavailable');
  expect(page.body).toContain('The identity provider (myidp) could not be reached');
  expect(page.body).toContain('Return to the application');
  expect(page.body).not.toContain('An internal error occurred');
  return provider;
}

describe('plain http on loopback', () => {
  test('a custom provider on http://127.0.0.1 signs in without allow_insecure_http; one warning line at start-up names it', async () => {
    const gh = await startGithubStandin();
    const log = logSink();
    const gw = await gateway(
      {
        client_id: gh.clientId,
        client_secret: gh.clientSecret,
        authorization_url: `${gh.url}/login/oauth/authorize`,
        token_url: `${gh.url}/login/oauth/access_token`,
        userinfo_url: `${gh.url}/custom/userinfo`,
      },
      log,
    );
    gh.customProfile = { sub: 'u-1', email: 'erin@acme.example', name: 'Erin' };
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'myidp:u-1', email: 'erin@acme.example' });
    const warnings = log.warnings().filter((m) => m.includes('plain http'));
    expect(warnings).toEqual([
      "identity provider 'myidp': plain http (authorization_url, token_url, userinfo_url) is accepted only because it is on a loopback address (127.0.0.0/8, ::1, localhost); use https for any other host",
    ]);
  });

  test('an OpenID Connect provider on http://127.0.0.1 (discovery) signs in without the flag; /ready shows it reachable', async () => {
    const idp = await startUpstreamIdp();
    const gw = await gateway({ issuer: idp.issuer });
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'myidp:alice' });
    const ready = await fetch(`${gw.url}/ready`);
    expect(ready.status).toBe(200);
    expect((await readyBody(ready)).identity_provider).toMatchObject({ provider: 'myidp', kind: 'oidc', state: 'reachable' });
  });
});

describe('identity provider unreachable', () => {
  test('discovery refused: a warning at start-up (start not blocked), /ready reports it, the sign-in page says so and the client gets temporarily_unavailable', async () => {
    const log = logSink();
    const gw = await gateway({ issuer: await refusedUrl() }, log);
    await expect
      .poll(() => log.warnings().find((m) => m.includes('cannot be used yet')))
      .toContain("identity provider 'myidp' cannot be used yet: the identity provider could not be reached");
    const ready = await fetch(`${gw.url}/ready`);
    expect(ready.status).toBe(200); // an IdP outage does not take the instance out of the load balancer
    expect((await readyBody(ready)).identity_provider).toMatchObject({
      provider: 'myidp',
      state: 'unreachable',
      reason: 'discovery: ECONNREFUSED',
    });
    await expectUnavailable(gw.url);
    expect(JSON.stringify(log.lines)).not.toContain('"level":50');
  });

  test('token endpoint refusing connections (custom provider): 503 page with the return button, temporarily_unavailable', async () => {
    const gh = await startGithubStandin();
    const gw = await gateway({
      client_id: gh.clientId,
      client_secret: gh.clientSecret,
      authorization_url: `${gh.url}/login/oauth/authorize`,
      token_url: `${await refusedUrl()}/token`,
      userinfo_url: `${gh.url}/custom/userinfo`,
    });
    await expectUnavailable(gw.url);
    expect((await readyBody(await fetch(`${gw.url}/ready`))).identity_provider).toMatchObject({
      state: 'unreachable',
      reason: 'ECONNREFUSED',
    });
  });

  test('userinfo endpoint refusing connections (custom provider): the same page and error', async () => {
    const gh = await startGithubStandin();
    const gw = await gateway({
      client_id: gh.clientId,
      client_secret: gh.clientSecret,
      authorization_url: `${gh.url}/login/oauth/authorize`,
      token_url: `${gh.url}/login/oauth/access_token`,
      userinfo_url: `${await refusedUrl()}/me`,
    });
    await expectUnavailable(gw.url);
    expect(gh.tokenRequests).toHaveLength(1);
  });

  test('a real IdP stopped in the middle of the flow (after it redirected back with a code): 503 page, temporarily_unavailable', async () => {
    const idp = await startUpstreamIdp();
    const gw = await gateway({ issuer: idp.issuer });
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
    await expect.poll(async () => (await readyBody(await fetch(`${gw.url}/ready`))).identity_provider?.state).toBe('reachable');
    // The IdP stops accepting connections as it sends the person back: the code exchange finds it gone.
    idp.provider.once('authorization.success', (koa) => void koa.res.once('finish', () => void idp.close()));
    await expectUnavailable(gw.url);
  });

  test('an IdP that comes back is used again (discovery retried at the next sign-in)', async () => {
    const port = await freePort();
    const gw = await gateway({ issuer: `http://127.0.0.1:${port}` });
    await expectUnavailable(gw.url);
    const idp = await startUpstreamIdp(undefined, { port });
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'myidp:alice' });
  });
});

describe('a provider that answers but cannot be used', () => {
  test('an issuer that serves no discovery document: a 502 page that says so, server_error to the client, never a 500', async () => {
    const gh = await startGithubStandin(); // no /.well-known/openid-configuration (it answers 4xx there)
    const log = logSink();
    const gw = await gateway({ issuer: gh.url }, log);
    await expect.poll(() => log.warnings().find((m) => m.includes('cannot be used yet'))).toContain('discovery document could not be used');
    const ready = await readyBody(await fetch(`${gw.url}/ready`));
    expect(ready.identity_provider, JSON.stringify(ready)).toMatchObject({
      state: 'failed',
      reason: expect.stringMatching(/^discovery: HTTP 4\d\d$/),
    });
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'server_error' });
    expect(provider.lastWalk?.pages).toEqual(['consent', 'return']);
    const page = provider.lastWalk!.shown[1]!;
    expect(page.status).toBe(502);
    expect(page.body).toContain('Sign-in failed');
    expect(page.body).toMatch(/discovery document could not be used \(HTTP 4\d\d\)/);
  });
});

describe('configuration mistakes found at the first sign-in are named on the page', () => {
  const custom = (gh: { url: string; clientId: string; clientSecret: string }, extra: Record<string, unknown>) => ({
    client_id: gh.clientId,
    client_secret: gh.clientSecret,
    authorization_url: `${gh.url}/login/oauth/authorize`,
    token_url: `${gh.url}/login/oauth/access_token`,
    userinfo_url: `${gh.url}/custom/userinfo`,
    ...extra,
  });

  test('a token_url with the wrong path: 502 page naming the HTTP status, server_error to the client', async () => {
    const gh = await startGithubStandin();
    const gw = await gateway(custom(gh, { token_url: `${gh.url}/no/such/token` }));
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'server_error' });
    const page = provider.lastWalk!.shown[1]!;
    expect(page.status).toBe(502);
    expect(page.body).toMatch(/could not be completed \(HTTP 404\)/);
    expect(page.body).toContain('Return to the application');
  });

  test('a userinfo document without the user id claim: the page names the claims.id key to set', async () => {
    const gh = await startGithubStandin();
    gh.customProfile = { uid: 'u-9', email: 'x@acme.example' };
    const gw = await gateway(custom(gh, {}));
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'server_error' });
    expect(provider.lastWalk!.shown[1]!.body).toContain('oauth_providers.myidp.claims.id names the claim to use');
  });
});

describe('a loopback issuer does not open plain http to other hosts', () => {
  test('a discovery document on loopback that lists a plain-http token endpoint elsewhere: refused (502 page, /ready failed), the code never goes there', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: 'http://idp.example.com/token',
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
    const gw = await gateway({ issuer: `http://127.0.0.1:${(server.address() as { port: number }).port}` });
    await expect
      .poll(async () => (await readyBody(await fetch(`${gw.url}/ready`))).identity_provider)
      .toMatchObject({ state: 'failed', reason: 'insecure_endpoint' });
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'server_error' });
    expect(provider.lastWalk!.shown[1]).toMatchObject({ status: 502 });
    expect(provider.lastWalk!.shown[1]!.body).toContain('lists token_endpoint over plain http on a non-loopback host');
  });
});

describe('timeouts count as unreachable', () => {
  test('a provider that accepts the connection and never answers: openid-client and fetch timeouts both map to temporarily_unavailable', async () => {
    const { createServer } = await import('node:http');
    const oidc = await import('openid-client');
    const { isUnavailable, startFailure, callbackFailure } = await import('../../src/upstream/http.js');
    const silent = createServer(() => undefined); // never responds
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => (silent.closeAllConnections(), silent.close(() => r()))));
    const url = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;

    const discovery = await oidc
      .discovery(new URL(url), 'c', 's', undefined, { execute: [oidc.allowInsecureRequests], timeout: 0.2 })
      .catch((e: unknown) => e);
    expect(isUnavailable(discovery)).toBe(true);
    expect(startFailure(discovery).oauthError).toBe('temporarily_unavailable');

    const fetched = await fetch(url, { signal: AbortSignal.timeout(200) }).catch((e: unknown) => e);
    expect(isUnavailable(fetched)).toBe(true);
    expect(callbackFailure(fetched)).toMatchObject({ oauthError: 'temporarily_unavailable', httpStatus: 503 });

    // Not every failure is an outage: a plain bug stays server_error (502 page).
    expect(isUnavailable(new TypeError('x is not a function'))).toBe(false);
    expect(callbackFailure(new Error('boom'))).toMatchObject({ oauthError: 'server_error', httpStatus: 502 });
  });
});
