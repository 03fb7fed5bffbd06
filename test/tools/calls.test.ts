/**
 * Tool-level authorization with a real SDK v1 client and real SDK servers through the gateway: lists
 * filtered per user, refused calls never reaching the backend, scope refusals as step-up challenges
 * (docs/authorization.md, "Tools, prompts and resources").
 */
import { describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startGateway } from '../helpers/gateway.js';
import { bearer } from '../helpers/tokens.js';
import { logCapture } from '../security/world.js';
import { startCatalogBackend } from '../helpers/tools-backend.js';
import { calcGateway, calcService, RPC_HEADERS } from './fixtures.js';

async function connect(url: string, authorization: string): Promise<Client> {
  const client = new Client({ name: 'tools-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: authorization } } }));
  return client;
}

describe('tool rules with the SDK v1 client (2025-11-25 session, SSE responses)', () => {
  it('lists only what the user may use, refuses denied calls before the backend, and challenges missing scopes', async () => {
    const backend = await startCatalogBackend({ era: 'legacy' });
    const gw = await calcGateway(backend.url);
    const auth = await bearer(gw, { service: 'calc', claims: { scope: 'read', groups: ['staff'] } });
    const client = await connect(`${gw.url}/calc/mcp`, auth);

    // danger (deny) and admin_* (groups: admins) are gone; add needs a scope the user can still approve.
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['search', 'add']);
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['greeting']);
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['notes://public/readme']);

    const denied = await client.callTool({ name: 'danger', arguments: {} }).then(
      () => 'allowed',
      (e: Error) => e.message,
    );
    expect(denied).toContain("Tool 'danger' is not allowed");
    expect(denied).toContain("tool rule 'danger' denies it");
    const admin = await client.callTool({ name: 'admin_reset', arguments: {} }).then(
      () => 'allowed',
      (e: Error) => e.message,
    );
    expect(admin).toContain("tool rule 'admin_*'");
    await expect(client.getPrompt({ name: 'secret_plan' })).rejects.toThrow(/default: deny/);
    await expect(client.readResource({ uri: 'notes://private/keys' })).rejects.toThrow(/resource rule 'notes:\/\/private\/\*'/);
    await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toThrow(/Tool 'add' needs scope calculate/);

    expect((await client.callTool({ name: 'search', arguments: { q: 'x' } })).content).toEqual([{ type: 'text', text: 'found x' }]);
    expect(backend.called).toEqual(['tool:search']);

    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_tool_decisions_total\{service="calc",tool="danger",decision="deny"\} 1/);
    expect(metrics).toMatch(/gateway_tool_decisions_total\{service="calc",tool="add",decision="insufficient_scope"\} 1/);
    expect(metrics).toMatch(/gateway_tool_decisions_total\{service="calc",tool="\(default\)",decision="allow"\} 1/);
    await client.close();
  });

  it('a missing scope is a 403 challenge naming every scope needed, current ones included', async () => {
    const backend = await startCatalogBackend({ era: 'legacy', json: true });
    const gw = await calcGateway(backend.url);
    const auth = await bearer(gw, { service: 'calc', claims: { scope: 'read admin', groups: ['admins'] } });
    const client = await connect(`${gw.url}/calc/mcp`, auth);
    const res = await fetch(`${gw.url}/calc/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization: auth, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 2 } } }),
    });
    expect(res.status).toBe(403);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/calc\/mcp"/);
    expect(challenge).toContain('scope="read calculate admin"');
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain("error_description=\"Tool 'add' needs scope calculate (tool rule 'add')\"");
    expect(await res.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32001, data: { error: 'insufficient_scope' } } });
    // The admin group with the admin scope may use admin_*; still no backend call for add.
    expect((await client.callTool({ name: 'admin_stats', arguments: {} })).content).toEqual([{ type: 'text', text: 'admin_stats done' }]);
    expect(backend.called).toEqual(['tool:admin_stats']);
    await client.close();
  });

  it('audits every refusal as tool.denied with user, service, tool and reason', async () => {
    const backend = await startCatalogBackend({ era: 'legacy', json: true });
    const logs = logCapture();
    const gw = await startGateway(
      {
        oauth_providers: { dev: {} },
        logging: { level: 'info' },
        mcp_services: { calc: { name: 'calc', oauth_provider: 'dev', ...calcService(backend.url) } },
      },
      { logStream: logs.stream },
    );
    const auth = await bearer(gw, { service: 'calc', claims: { scope: 'read', groups: ['staff'] } });
    const client = await connect(`${gw.url}/calc/mcp`, auth);
    await client.callTool({ name: 'admin_reset', arguments: {} }).catch(() => undefined);
    await client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }).catch(() => undefined);
    await client.callTool({ name: 'search', arguments: { q: 'ok' } });
    await client.close();
    const lines = logs
      .text()
      .split('\n')
      .filter((l) => l.includes('"event":"tool.denied"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({
        audit: true,
        user: 'dev:alice',
        service: 'calc',
        tool: 'admin_reset',
        rule: 'admin_*',
        reason: "user dev:alice (alice@example.com) is not allowed by tool rule 'admin_*'",
      }),
      expect.objectContaining({
        user: 'dev:alice',
        service: 'calc',
        tool: 'add',
        rule: 'add',
        reason: 'insufficient_scope: needs calculate',
      }),
    ]);
    expect(logs.text()).not.toContain(auth.slice(7));
  });
});
