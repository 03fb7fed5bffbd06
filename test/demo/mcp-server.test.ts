import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startDemoMcpServer } from '../../src/demo/mcp-server.js';

describe('demo MCP server', () => {
  it('serves the SDK client: list tools, call them, stream progress', async () => {
    const server = await startDemoMcpServer();
    onTestFinished(() => server.close());
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(server.url), {
        requestInit: { headers: { 'x-user-id': 'dev:a@example.com', 'x-user-email': 'a@example.com' } },
      }),
    );
    onTestFinished(() => client.close());
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toEqual(['whoami', 'echo', 'add', 'count_slowly']);
    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ 'x-user-id': 'dev:a@example.com', 'x-user-email': 'a@example.com' });
    expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    const progress: number[] = [];
    const counted = await client.callTool({ name: 'count_slowly', arguments: { n: 3 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(progress).toEqual([1, 2, 3]);
    expect(counted).toMatchObject({ content: [{ type: 'text', text: 'counted to 3' }] });
  });

  it('answers bad input with JSON-RPC errors, GET with 405', async () => {
    const server = await startDemoMcpServer();
    onTestFinished(() => server.close());
    const bad = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: -32700 } });
    expect((await fetch(server.url)).status).toBe(405);
    const unknown = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'nope' }),
    });
    expect(unknown.status).toBe(404);
  });
});
