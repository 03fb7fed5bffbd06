/**
 * The whole product, as a user meets it: a real MCP SDK client given only `{issuer}/{service}/mcp`
 * discovers the gateway, registers, signs in at a real upstream OpenID provider, and calls tools on real
 * SDK backends that receive the verified identity, on two services with separately bound tokens.
 */
import { decodeJwt } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { BOB, gatewayProvider, startUpstreamIdp } from '../helpers/upstream-idp.js';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { connectByDiscovery, textOf } from '../helpers/sdk-session.js';

describe('end to end: discovery, sign-in, tools on two services', () => {
  it('an SDK client given only the MCP URL signs in and calls tools with the right identity', async () => {
    const idp = await startUpstreamIdp();
    const calc = await startMcpBackend();
    const notes = await startMcpBackend({ json: true });
    const gw = await startGateway(() => ({
      oauth_providers: {
        corp: gatewayProvider(idp, ['openid', 'email', 'profile', 'groups']),
      },
      mcp_services: {
        calc: { name: 'Calculator', url: calc.url, oauth_provider: 'corp', scopes: ['mcp:tools'] },
        notes: { name: 'Notes', url: notes.url, oauth_provider: 'corp', scopes: ['notes:read'] },
      },
    }));
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });

    const browser = new BrowserDriver();
    const a = await connectByDiscovery(`${gw.url}/calc/mcp`, { browser });
    onTestFinished(() => a.close());
    expect(a.challenged).toBe(true);
    const pages = a.provider.lastWalk?.pages ?? [];
    expect(pages).toContain('consent');
    const token = a.provider.tokens()!.access_token;
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      aud: `${gw.url}/calc/mcp`,
      iss: gw.url,
      sub: 'corp:alice',
      email: 'alice@example.com',
      scope: 'mcp:tools',
    });

    expect((await a.client.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'progress', 'whoami']);
    const who = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} })));
    expect(who).toMatchObject({
      'x-user-id': 'corp:alice',
      'x-user-email': 'alice@example.com',
      'x-user-name': 'Alice Example',
      'x-user-provider': 'corp',
    });
    expect(who.authorization).toBeUndefined();

    // The calc token is bound to calc: the notes service refuses it (RFC 8707 audience).
    const foreign = await fetch(`${gw.url}/notes/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(foreign.status).toBe(401);
    expect(foreign.headers.get('www-authenticate')).toContain('error="invalid_token"');

    // A second user on the second service, through the same discovery path, with a separate token.
    idp.nextUser = BOB;
    const b = await connectByDiscovery(`${gw.url}/notes/mcp`, { browser: new BrowserDriver() });
    onTestFinished(() => b.close());
    expect(decodeJwt(b.provider.tokens()!.access_token)).toMatchObject({
      aud: `${gw.url}/notes/mcp`,
      sub: 'corp:bob',
      scope: 'notes:read',
    });
    const whoB = JSON.parse(textOf(await b.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoB).toMatchObject({ 'x-user-id': 'corp:bob', 'x-user-email': 'bob@other.example' });

    // Progress notifications stream through the gateway.
    const progress: number[] = [];
    await a.client.callTool({ name: 'progress', arguments: { count: 3, intervalMs: 10 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(progress).toEqual([1, 2, 3]);

    // What happened is visible in Prometheus metrics, with bounded labels.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/mcp_gateway_tokens_issued_total\{grant_type="authorization_code"\} 2/);
    expect(metrics).toMatch(/mcp_gateway_sign_ins_total\{outcome="success"\} 2/);
    expect(metrics).toMatch(/mcp_gateway_proxy_requests_total\{service="calc",status="200"\} \d+/);
    expect(metrics).toMatch(/mcp_gateway_proxy_requests_total\{service="notes",status="401"\} 2/); // the discovery challenge and the foreign token
    expect(metrics).toMatch(/mcp_gateway_proxy_ttfb_seconds_count\{service="calc"\} \d+/);
    expect(metrics).not.toContain('alice');
  });
});
