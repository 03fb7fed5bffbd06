/**
 * Local (stdio) MCP servers behind the gateway's sign-in (docs/stdio.md), end to end: real SDK clients
 * sign in by discovery at a real upstream IdP and call tools on a real stdio MCP server
 * (fixtures/mcp-stdio-server.mjs) that the gateway starts, one process per user.
 */
import { describe, expect, it } from 'vitest';
import { BOB } from '../helpers/upstream-idp.js';
import { startStdioWorld, textOf } from './world.js';

describe('stdio services: per-user processes (legacy era)', () => {
  it('alice and bob get their own processes with their own verified identity; nothing else of the gateway environment', async () => {
    const w = await startStdioWorld({ env: { FIXTURE_MODE: 'test' } });
    const a = await w.legacy();
    const b = await w.legacy(BOB);
    expect(textOf(await a.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
    const whoA = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} })));
    const whoB = JSON.parse(textOf(await b.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoA).toMatchObject({ id: 'corp:alice', email: 'alice@example.com', name: 'Alice Example', groups: 'staff,mcp-users' });
    expect(whoB).toMatchObject({ id: 'corp:bob', email: 'bob@other.example', name: 'Bob Other', groups: 'guests' });
    expect(whoA.pid).not.toBe(whoB.pid);
    // The environment starts empty: PATH, the configured env and the identity only.
    expect(whoA.envNames).toEqual(['FIXTURE_MODE', 'MCP_USER_EMAIL', 'MCP_USER_GROUPS', 'MCP_USER_ID', 'MCP_USER_NAME', 'PATH']);
  });
});
