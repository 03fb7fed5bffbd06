import { decodeJwt } from 'jose';
import { describe, expect, onTestFinished, test } from 'vitest';
import { cimdTesting } from '../../src/authz/cimd.js';
import { startCimdServer, type CimdServer } from '../helpers/cimd-server.js';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { startWorld } from './setup.js';

const REDIRECT = 'http://127.0.0.1:49152/callback';

/** A CIMD server whose documents the gateway (built after this) fetches through the test-only hook. */
async function cimdWorld(extra: Record<string, unknown> = {}): Promise<{ cimd: CimdServer; gw: string; clientId: string }> {
  const cimd = await startCimdServer();
  cimdTesting.fetch = cimd.trustingFetch;
  onTestFinished(() => void delete cimdTesting.fetch);
  const clientId = `${cimd.origin}/clients/test-app.json`;
  cimd.documents.set('/clients/test-app.json', {
    client_id: clientId,
    client_name: 'CIMD Test App',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  });
  const { gw } = await startWorld(extra);
  return { cimd, gw: gw.url, clientId };
}

async function journeyError(gw: string, clientMetadataUrl: string, redirectUri = REDIRECT): Promise<string> {
  const provider = new TestOAuthProvider({ clientMetadataUrl, redirectUri });
  const err = (await obtainToken(gw, 'calc', { provider }).then(
    () => undefined,
    (e: unknown) => e,
  )) as Error | undefined;
  expect(err, 'the journey must fail').toBeInstanceOf(Error);
  return err!.message;
}

describe('Client ID Metadata Documents (CIMD)', () => {
  test('full flow with an https client_id and no registration; the consent page names the client from the document', async () => {
    const { cimd, gw, clientId } = await cimdWorld();
    const provider = new TestOAuthProvider({ clientMetadataUrl: clientId });
    const { tokens } = await obtainToken(gw, 'calc', { provider });
    expect(provider.clientInformation()?.client_id).toBe(clientId);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: clientId, sub: 'myidp:alice', aud: `${gw}/calc/mcp` });
    expect(cimd.hits).toContain('/clients/test-app.json');
    // MCP 2025-11-25: the client and the redirect URI host are shown on the consent page.
    expect(provider.lastWalk?.shown[0]?.body).toContain('CIMD Test App');
    expect(provider.lastWalk?.shown[0]?.body).toContain('http://127.0.0.1:49152');
    const refreshed = await fetch(`${gw}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId }),
    });
    expect(refreshed.status).toBe(200);
  });

  test('a document whose client_id differs from its URL is refused (error page, no redirect)', async () => {
    const { cimd, gw } = await cimdWorld();
    const url = `${cimd.origin}/clients/liar.json`;
    cimd.documents.set('/clients/liar.json', {
      client_id: `${cimd.origin}/clients/someone-else.json`,
      client_name: 'Liar',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
    });
    expect(await journeyError(gw, url)).toMatch(/ended on a page \(40\d\).*client_id metadata document client_id does not match/s);
  });

  test('a redirect URI not listed in the document gets an error page, never a redirect', async () => {
    const { gw, clientId } = await cimdWorld();
    expect(await journeyError(gw, clientId, 'http://127.0.0.1:49152/elsewhere')).toMatch(/ended on a page \(400\).*redirect_uri/s);
  });

  test('registration.cimd.allowed_hosts excluding the host: refused with a clear error, nothing fetched', async () => {
    const { cimd, gw, clientId } = await cimdWorld({ registration: { cimd: { allowed_hosts: ['clients.example.com'] } } });
    expect(await journeyError(gw, clientId)).toMatch(/ended on a page \(40\d\).*not in registration\.cimd\.allowed_hosts/s);
    expect(cimd.hits).toEqual([]);
  });
});
