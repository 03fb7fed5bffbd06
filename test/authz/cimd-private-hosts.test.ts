/**
 * `registration.cimd.private_hosts`: Client ID Metadata Documents of internal clients, on a host that
 * resolves to a private or loopback address, fetched over real https (the gateway's real outbound fetch,
 * no `cimdTesting.fetch`) when the operator lists the host; the SSRF guard unchanged for every other host,
 * refusing before any connection with an error that names the rule.
 */
import { hostname } from 'node:os';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, onTestFinished, test } from 'vitest';
import type { LookupAddress } from 'node:dns';
import { cimdTesting, guardedLookup } from '../../src/authz/cimd.js';
import { startCimdServer, type CimdServer } from '../helpers/cimd-server.js';
import { authorizeOnly, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { startWorld } from './setup.js';

const REDIRECT = 'http://127.0.0.1:49152/callback';

/** The document is served on `https://localhost:<port>` (127.0.0.1, certificate for `localhost`). */
async function internalClient(opts: { trustCert?: boolean } = {}): Promise<{ cimd: CimdServer; clientId: string }> {
  const cimd = await startCimdServer();
  if (opts.trustCert !== false) {
    cimdTesting.privateHostCa = cimd.cert;
    onTestFinished(() => void delete cimdTesting.privateHostCa);
  }
  const clientId = `${cimd.origin}/clients/internal-app.json`;
  cimd.documents.set('/clients/internal-app.json', {
    client_id: clientId,
    client_name: 'Internal App',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  });
  return { cimd, clientId };
}

/** GET /oauth/authorize with this client_id as a browser would: the status and the page. */
async function authorize(gw: string, clientId: string) {
  const q = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
    state: 's',
    resource: `${gw}/calc/mcp`,
  });
  const res = await fetch(`${gw}/oauth/authorize?${q}`, { redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), body: await res.text() };
}

describe('registration.cimd.private_hosts', () => {
  test('a listed host resolving to loopback: fetched over real https, full flow', async () => {
    const { cimd, clientId } = await internalClient();
    const { gw } = await startWorld({ registration: { cimd: { private_hosts: ['localhost'] } } });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider: new TestOAuthProvider({ clientMetadataUrl: clientId }) });
    expect(decodeJwt(tokens.access_token).client_id).toBe(clientId);
    expect(cimd.hits).toContain('/clients/internal-app.json');
  });

  test('a listed host is accepted although allowed_hosts names other hosts only', async () => {
    const { cimd, clientId } = await internalClient();
    const { gw } = await startWorld({ registration: { cimd: { allowed_hosts: ['clients.example.com'], private_hosts: ['LocalHost'] } } });
    const r = await authorize(gw.url, clientId);
    expect(r.status, r.body.slice(0, 400)).toBe(303);
    expect(cimd.hits).toEqual(['/clients/internal-app.json']);
  });

  test('the certificate is still verified for a listed host: an untrusted one is a clear 4xx, never a 500', async () => {
    const { cimd, clientId } = await internalClient({ trustCert: false });
    const { gw } = await startWorld({ registration: { cimd: { private_hosts: ['localhost'] } } });
    const r = await authorize(gw.url, clientId);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.location).toBeNull();
    expect(r.body).toContain('client_id metadata document fetch failed');
    expect(cimd.hits).toEqual([]);
  });

  for (const [label, privateHosts] of [
    ['without the opt-in', undefined],
    ['with only another host opted in', ['clients.corp.internal']],
  ] as const) {
    test(`P12: ${label}: a loopback document is refused before any connection, naming the rule (4xx page, no redirect)`, async () => {
      const { cimd, clientId } = await internalClient();
      const { gw } = await startWorld(privateHosts ? { registration: { cimd: { private_hosts: privateHosts } } } : {});
      const r = await authorize(gw.url, clientId);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(r.location).toBeNull();
      expect(r.body).toContain('resolves to a private, loopback or link-local address');
      expect(r.body).toContain('registration.cimd.private_hosts');
      expect(r.body).not.toContain('127.0.0.1');
      expect(cimd.hits).toEqual([]);
      expect(cimd.connections).toBe(0);
    });
  }

  test('P12: every spelling of a loopback address is refused before connecting (IP literals, IPv4-mapped IPv6, trailing dot)', async () => {
    const { cimd } = await internalClient();
    const { gw } = await startWorld({ registration: { cimd: { private_hosts: ['clients.corp.internal'] } } });
    const port = new URL(cimd.origin).port;
    for (const host of [
      '127.0.0.1',
      '127.1',
      '0x7f000001',
      '2130706433',
      '0177.0.0.1',
      '[::1]',
      '[::ffff:127.0.0.1]',
      '[0:0:0:0:0:ffff:7f00:1]',
      'localhost.',
      '0.0.0.0',
      '[::]',
      hostname(),
      '10.0.0.1',
      '169.254.169.254',
      '[fd00::1]',
    ]) {
      const r = await authorize(gw.url, `https://${host}:${port}/clients/internal-app.json`);
      expect(r.status, host).toBeGreaterThanOrEqual(400);
      expect(r.status, host).toBeLessThan(500);
      expect(r.location, host).toBeNull();
      // `localhost.` does not resolve on every system; then that is the (equally early) refusal.
      expect(r.body, host).toMatch(/registration\.cimd\.private_hosts|cannot be resolved/);
    }
    expect(cimd.connections).toBe(0);
  });

  test('P12: a jwks_uri on a loopback host (no CIMD pre-check on that path) is refused before any connection, too', async () => {
    const { cimd } = await internalClient();
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    cimd.documents.set('/keys.json', { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
    const { gw } = await startWorld();
    const provider = new TestOAuthProvider({
      clientMetadata: { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `${cimd.origin}/keys.json` },
    });
    await authorizeOnly(gw.url, 'calc', { provider });
    const clientId = provider.clientInformation()!.client_id;
    const signed = await new SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(`${gw.url}/oauth/token`)
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(privateKey);
    const res = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: provider.captured!.code!,
        code_verifier: provider.codeVerifier(),
        redirect_uri: REDIRECT,
        client_id: clientId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: signed,
      }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    expect(cimd.hits).toEqual([]);
    expect(cimd.connections).toBe(0);
  });

  test('the guarded lookup answers both lookup shapes net.connect uses for public addresses, and refuses special-use ones', async () => {
    const run = (host: string, all: boolean) =>
      new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }>((resolve) =>
        guardedLookup(host, { all }, (err, address, family) => resolve({ err, address, family })),
      );
    expect(await run('93.184.215.14', true)).toEqual({ err: null, address: [{ address: '93.184.215.14', family: 4 }], family: undefined });
    expect(await run('2606:4700::1111', false)).toEqual({ err: null, address: '2606:4700::1111', family: 6 });
    for (const host of ['localhost', '127.0.0.1', '::1', '10.1.2.3', '::ffff:127.0.0.1']) {
      const r = await run(host, true);
      expect(r.err?.code, host).toBe('ESPECIALUSE');
    }
  });
});
