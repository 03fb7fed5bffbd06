/**
 * Step-up with the clients' own OAuth code (MCP authorization, scope challenge handling): a listed tool
 * refused with 403 insufficient_scope, the SDK v2 client re-authorizing with the union of scopes, the
 * consent page asking only for the new scope, the grant growing, the call completing, and refresh keeping
 * the grown scope. SDK v1 (which replaces its scope with the challenged one) completes too, because the
 * challenge names every scope needed, current ones included.
 */
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError as UnauthorizedErrorV1 } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TestOAuthProvider } from '../helpers/oauth-client.js';
import { startCatalogBackend } from '../helpers/tools-backend.js';
import { calcGateway } from './fixtures.js';

/** The v2 provider shape: the test provider plus the discovery state v2 keeps beside the PKCE verifier. */
class V2Provider extends TestOAuthProvider {
  #discovery: unknown;
  discoveryState() {
    return this.#discovery as never;
  }
  saveDiscoveryState(state: unknown) {
    this.#discovery = state;
  }
}

const consentScopes = (body: string) => [...body.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]);

describe('step-up to a tool scope', () => {
  it('SDK v2: 403 → re-authorization with the union → consent for the new scope only → the call completes; refresh keeps it', async () => {
    const backend = await startCatalogBackend({ era: 'legacy' });
    const gw = await calcGateway(backend.url);
    const provider = new V2Provider({ devLogin: { name: 'Alice', email: 'alice@example.com', groups: 'staff' } });
    const url = new URL(`${gw.url}/calc/mcp`);
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    let client = new Client({ name: 'v2-step-up', version: '1.0.0' });
    await expect(client.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
    // First sign-in: the 401 challenge and the PRM name only the required scope.
    expect(new URL(provider.lastWalk!.visited[0]!).searchParams.get('scope')).toBe('read offline_access');
    expect(consentScopes(provider.lastWalk!.shown.find((p) => p.body.includes('Permissions'))!.body)).toEqual(['read']);
    await transport.finishAuth(provider.captured!.code!, provider.captured!.iss);
    const first = provider.tokens()!;
    expect(decodeJwt(first.access_token).scope).toBe('read');

    const t2 = new StreamableHTTPClientTransport(url, { authProvider: provider });
    client = new Client({ name: 'v2-step-up', version: '1.0.0' });
    await client.connect(t2);
    // add is listed (reachable by step-up); the call is refused with the challenge, and the client steps up.
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['search', 'add']);
    await expect(client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })).rejects.toBeInstanceOf(UnauthorizedError);
    const stepUp = provider.lastWalk!;
    expect(new URL(stepUp.visited[0]!).searchParams.get('scope')?.split(' ').sort()).toEqual(['calculate', 'offline_access', 'read']);
    expect(stepUp.pages).toEqual(['consent']); // still signed in at the gateway: no second sign-in
    const page = stepUp.shown.find((p) => p.body.includes('New permissions'))!.body;
    expect(consentScopes(page)).toEqual(['calculate']);
    expect(page).toContain('Already allowed: read.');
    expect(backend.called).toEqual([]);

    await t2.finishAuth(provider.captured!.code!, provider.captured!.iss);
    const grown = provider.tokens()!;
    const claims = decodeJwt(grown.access_token);
    expect(String(claims.scope).split(' ').sort()).toEqual(['calculate', 'read']);
    expect(claims.gid).toBe(decodeJwt(first.access_token).gid); // the same grant, grown
    expect((await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })).content).toEqual([{ type: 'text', text: '42' }]);
    expect(backend.called).toEqual(['tool:add']);

    // Refresh keeps the grown scope.
    const refreshed = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: grown.refresh_token!,
        client_id: String(provider.clientInformation()!.client_id),
        resource: `${gw.url}/calc/mcp`,
      }),
    });
    expect(refreshed.status).toBe(200);
    const again = (await refreshed.json()) as { access_token: string; scope: string };
    expect(String(decodeJwt(again.access_token).scope).split(' ').sort()).toEqual(['calculate', 'read']);
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${again.access_token}`,
        'mcp-session-id': t2.sessionId!,
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 1 } } }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('"text":"2"');
    await client.close();
  });

  it('SDK v1 (challenged scope only) keeps what it had because the challenge names every scope needed', async () => {
    const backend = await startCatalogBackend({ era: 'legacy', json: true });
    const gw = await calcGateway(backend.url);
    // Without a refresh token: SDK v1 1.32.2 answers a 403 with a refresh when it holds one, which cannot
    // widen the scope (RFC 6749 §6), and then gives up ("403 after trying upscoping"); see docs/authorization.md.
    const provider = new TestOAuthProvider({
      devLogin: { name: 'Alice', email: 'alice@example.com', groups: 'staff' },
      clientMetadata: { grant_types: ['authorization_code'] },
    });
    const url = new URL(`${gw.url}/calc/mcp`);
    let transport = new TransportV1(url, { authProvider: provider });
    let client = new ClientV1({ name: 'v1-step-up', version: '1.0.0' });
    await expect(client.connect(transport)).rejects.toBeInstanceOf(UnauthorizedErrorV1);
    await transport.finishAuth(provider.captured!.code!);
    transport = new TransportV1(url, { authProvider: provider });
    client = new ClientV1({ name: 'v1-step-up', version: '1.0.0' });
    await client.connect(transport);
    await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toBeInstanceOf(UnauthorizedErrorV1);
    // v1 asks for exactly the challenged scope: it keeps `read` only because the challenge names it too.
    expect(new URL(provider.lastWalk!.visited[0]!).searchParams.get('scope')).toBe('read calculate');
    expect(consentScopes(provider.lastWalk!.shown.find((p) => p.body.includes('New permissions'))!.body)).toEqual(['calculate']);
    await transport.finishAuth(provider.captured!.code!);
    expect(String(decodeJwt(provider.tokens()!.access_token).scope).split(' ').sort()).toEqual(['calculate', 'read']);
    expect((await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).content).toEqual([{ type: 'text', text: '3' }]);
    expect((await client.callTool({ name: 'search', arguments: { q: 'still' } })).content).toEqual([{ type: 'text', text: 'found still' }]);
    await client.close();
  });
});
