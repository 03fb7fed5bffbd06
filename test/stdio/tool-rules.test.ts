/**
 * Tool rules (docs/authorization.md) apply to a local (stdio) service exactly as to an HTTP backend: a
 * denied tool is absent from the list and refused before the process sees the call, in both eras; an
 * allowed one runs. The decision is the proxy's (src/proxy/tool-gate.ts); the bridge filters the lists
 * it answers (ToolPolicy.filterAnswer).
 */
import { describe, expect, it } from 'vitest';
import { BOB } from '../helpers/upstream-idp.js';
import { startStdioWorld, textOf } from './world.js';

const RULES = { tools: { default: 'allow', rules: { add: { groups: ['staff'] }, count: { deny: true } } } };

describe('stdio services: tool rules', () => {
  it('legacy era: a policy-denied tool is not listed and its call never reaches the process; allowed tools run', async () => {
    const w = await startStdioWorld(RULES);
    const alice = await w.legacy();
    const names = (await alice.client.listTools()).tools.map((t) => t.name);
    expect(names).toContain('add');
    expect(names).toContain('whoami');
    expect(names).not.toContain('count');
    expect(textOf(await alice.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
    await expect(alice.client.callTool({ name: 'count', arguments: { n: 1, intervalMs: 1 } })).rejects.toThrow(/count/);

    // Bob is not in `staff`: `add` is gone from his list and refused, whoami still works.
    const bob = await w.legacy(BOB);
    const bobNames = (await bob.client.listTools()).tools.map((t) => t.name);
    expect(bobNames).not.toContain('add');
    expect(bobNames).toContain('whoami');
    await expect(bob.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })).rejects.toThrow(/add/);
  });

  it('2026-07-28: the same rules for a pinned SDK v2 client; a raw refused call gets 403 with a JSON-RPC error naming the rule', async () => {
    const w = await startStdioWorld(RULES);
    const modern = await w.modern();
    const names = (await modern.listTools()).tools.map((t) => t.name);
    expect(names).not.toContain('count');
    expect(names).toContain('add');
    const token = await w.token();
    const res = await fetch(`${w.gw.url}/files/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'count',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'count', arguments: { n: 1 } } }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { id: unknown; error: { message: string } };
    expect(body.id).toBe(7);
    expect(body.error.message).toMatch(/count/);
  });
});
