/** Real SDK clients through the gateway to real SDK servers; legacy session binding across users. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { SessionBindings } from '../../src/proxy/sessions.js';
import { bearer } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS, proxyGateway } from './fixtures.js';

async function connect(
  gw: StartedGateway,
  service: string,
  authorization: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'sdk-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/${service}/mcp`), {
    requestInit: { headers: { Authorization: authorization } },
  });
  await client.connect(transport);
  return { client, transport };
}

function textOf(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]?.text ?? '';
}

describe('MCP SDK client through the gateway', () => {
  it('lists and calls tools on an SSE-mode and a JSON-mode service with the right identity', async () => {
    const sse = await startMcpBackend();
    const json = await startMcpBackend({ json: true });
    const gw = await proxyGateway({ sse: { url: sse.url }, json: { url: json.url, identity_headers: { id: 'x-remote-user' } } });
    const a = await connect(gw, 'sse', await bearer(gw, { service: 'sse' }));
    const b = await connect(
      gw,
      'json',
      await bearer(gw, { service: 'json', claims: { sub: 'dev:bob', email: 'bob@example.com', name: 'Bøb', groups: ['ops', 'dev'] } }),
    );

    expect((await a.client.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'progress', 'whoami']);
    expect((await b.client.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'progress', 'whoami']);
    expect(textOf(await a.client.callTool({ name: 'echo', arguments: { text: 'héllo' } }))).toBe('héllo');

    const whoA = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoA).toMatchObject({
      'x-user-id': 'dev:alice',
      'x-user-email': 'alice@example.com',
      'x-user-name': 'Alice Example',
      'x-user-provider': 'dev',
      'x-user-groups': 'staff',
      'x-forwarded-proto': 'http',
    });
    expect(whoA.authorization).toBeUndefined();

    const whoB = JSON.parse(textOf(await b.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoB['x-user-id']).toBeUndefined(); // renamed on this service
    expect(whoB).toMatchObject({ 'x-user-email': 'bob@example.com', 'x-user-name': "UTF-8''B%C3%B8b", 'x-user-groups': 'ops,dev' });
    // The renamed identity header reached the backend (requestInfo lists only the default names).
    expect(json.requests.at(-1)!.headers['x-remote-user']).toBe('dev:bob');
    await a.client.close();
    await b.client.close();
  });

  it('binds a legacy session to its user: another user gets 404 and the backend never sees it', async () => {
    const backend = await startMcpBackend();
    const gw = await proxyGateway({ svc: { url: backend.url } });
    const alice = await connect(gw, 'svc', await bearer(gw, { service: 'svc' }));
    const sessionId = alice.transport.sessionId!;
    expect(sessionId).toBeTruthy();
    const key = `gw:mcp-session:${SessionBindings.scopeOf(new URL(backend.url).origin)}:${createHash('sha256').update(sessionId).digest('hex')}`;
    const stored = await gw.ctx.store.get<{ user: string }>(key);
    expect(stored?.value.user).toBe('dev:alice');

    const bobAuth = await bearer(gw, { service: 'svc', claims: { sub: 'dev:bob', email: 'bob@example.com' } });
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' });
    const hijack = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { ...JSON_RPC_HEADERS, authorization: bobAuth, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
      body,
    });
    expect(hijack.status).toBe(404);
    expect(await hijack.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
    for (const m of ['GET', 'DELETE']) {
      const r = await fetch(`${gw.url}/svc/mcp`, {
        method: m,
        headers: { authorization: bobAuth, 'mcp-session-id': sessionId, accept: 'text/event-stream' },
      });
      expect(r.status, m).toBe(404);
    }
    expect(backend.requests.filter((r) => r.headers['x-user-id'] === 'dev:bob')).toEqual([]);

    // Same user with a new token (refresh) keeps the session.
    const again = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: {
        ...JSON_RPC_HEADERS,
        authorization: await bearer(gw, { service: 'svc' }),
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
      body,
    });
    expect(again.status).toBe(200);
    await again.text();

    // An unknown (unbound) session id goes to the backend, which decides (404 from the SDK server).
    const unknown = await fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { ...JSON_RPC_HEADERS, authorization: bobAuth, 'mcp-session-id': 'not-a-session', 'mcp-protocol-version': '2025-06-18' },
      body,
    });
    expect(unknown.status).toBe(404);
    expect(backend.requests.some((r) => r.sessionId === 'not-a-session')).toBe(true);

    // DELETE by the owner ends the session and removes the binding.
    await alice.transport.terminateSession();
    await expect.poll(async () => gw.ctx.store.get(key)).toBeUndefined();
    await alice.client.close();
  });

  it('a session id bound on one backend is not confused with the same id on another backend', async () => {
    const first = await startMcpBackend();
    const second = await startMcpBackend();
    const gw = await proxyGateway({ one: { url: first.url }, two: { url: second.url } });
    const alice = await connect(gw, 'one', await bearer(gw, { service: 'one' }));
    const sessionId = alice.transport.sessionId!;
    // Bob on service two (another backend) with alice's id from backend one: no binding there, so the
    // backend decides (the SDK server does not know the id). Services sharing a backend share bindings
    // (test/security/probe-findings.test.ts, P2).
    const r = await fetch(`${gw.url}/two/mcp`, {
      method: 'POST',
      headers: {
        ...JSON_RPC_HEADERS,
        authorization: await bearer(gw, { service: 'two', claims: { sub: 'dev:bob' } }),
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(r.status).toBe(404);
    await r.text();
    expect(second.requests.some((req) => req.sessionId === sessionId)).toBe(true);
    await alice.client.close();
  });
});
