/**
 * Local (stdio) MCP servers behind the gateway's sign-in (docs/stdio.md), end to end: real SDK clients
 * sign in by discovery at a real upstream IdP and call tools on a real stdio MCP server
 * (fixtures/mcp-stdio-server.mjs) that the gateway starts, one process per user.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ListRootsRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { createGateway } from '../../src/http/app.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { testConfig } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';
import { bearer } from '../helpers/tokens.js';
import { startBalancer } from '../multi-instance/helpers.js';
import { BOB } from '../helpers/upstream-idp.js';
import { alive, FIXTURE, FIXTURE_V1, startStdioWorld, textOf, until, within } from './world.js';

const RPC = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

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

describe('stdio services: protocol eras', () => {
  it('2026-07-28: a pinned SDK v2 client (no session) reaches its own per-user process; progress streams back', async () => {
    const w = await startStdioWorld();
    const modern = await w.modern();
    expect((await modern.listTools()).tools.map((t) => t.name)).toContain('whoami');
    const who = JSON.parse(textOf(await modern.callTool({ name: 'whoami', arguments: {} })));
    expect(who).toMatchObject({ id: 'corp:alice', email: 'alice@example.com' });
    const seen: number[] = [];
    const result = await modern.callTool(
      { name: 'count', arguments: { n: 3, intervalMs: 20 } },
      { onprogress: (p: { progress: number }) => void seen.push(p.progress) },
    );
    expect(textOf(result)).toBe('counted to 3');
    expect(seen).toEqual([1, 2, 3]);
    // The legacy era of the same user runs in its own process (a stdio connection serves one era).
    const legacy = await w.legacy();
    const whoLegacy = JSON.parse(textOf(await legacy.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoLegacy.id).toBe('corp:alice');
    expect(whoLegacy.pid).not.toBe(who.pid);
  });
});

describe('stdio services: a legacy-only server (MCP SDK v1 StdioServerTransport)', () => {
  it('a v1 client uses it; a v2 client negotiating automatically falls back to the legacy era', async () => {
    const w = await startStdioWorld({ command: [process.execPath, FIXTURE_V1] });
    const a = await w.legacy();
    expect(textOf(await a.client.callTool({ name: 'add', arguments: { a: 20, b: 22 } }))).toBe('42');
    const access = await w.token();
    const auto = new ModernClient({ name: 'auto-client', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    await auto.connect(
      new ModernTransport(new URL(`${w.gw.url}/files/mcp`), { requestInit: { headers: { authorization: `Bearer ${access}` } } }),
    );
    onTestFinished(() => auto.close());
    const who = JSON.parse(textOf(await auto.callTool({ name: 'whoami', arguments: {} })));
    expect(who.id).toBe('corp:alice');
    // The same legacy process as the v1 client's session: the probe never became a session.
    expect(who.pid).toBe(JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} }))).pid);
  });
});

describe('stdio services: multiplexing one process', () => {
  it("two sessions of one user share the process; concurrent requests with the same ids and progress tokens don't collide", async () => {
    const w = await startStdioWorld();
    const one = await w.legacy();
    const two = await w.legacy();
    const [p1, p2] = await Promise.all(
      [one, two].map(async (s) => JSON.parse(textOf(await s.client.callTool({ name: 'whoami', arguments: {} }))).pid),
    );
    expect(p1).toBe(p2);
    const progress: Record<string, number[]> = { one: [], two: [] };
    const results = await Promise.all(
      (['one', 'two'] as const).map((name, i) =>
        (name === 'one' ? one : two).client.callTool({ name: 'count', arguments: { n: 3 + i, intervalMs: 15 } }, undefined, {
          onprogress: (p) => void progress[name]!.push(p.progress),
        }),
      ),
    );
    expect(results.map(textOf)).toEqual(['counted to 3', 'counted to 4']);
    expect(progress).toEqual({ one: [1, 2, 3], two: [1, 2, 3, 4] });
    const sums = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? one : two).client.callTool({ name: 'add', arguments: { a: i, b: 100 } })),
    );
    expect(sums.map(textOf)).toEqual(['100', '101', '102', '103', '104', '105']);
  });

  it("a session is bound to its user: bob's token with alice's session id is refused, and never reaches her process", async () => {
    const w = await startStdioWorld();
    const a = await w.legacy();
    const sessionId = a.transport.sessionId!;
    expect(sessionId).toMatch(/^[\x21-\x7e]{32,}$/);
    const bob = await w.token(BOB);
    const r = await fetch(`${w.gw.url}/files/mcp`, {
      method: 'POST',
      headers: { ...RPC, authorization: `Bearer ${bob}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { data: { error: 'gw_err_session_unknown' } } });
    // Her session still works.
    expect(JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} }))).id).toBe('corp:alice');
  });

  it('a shared process (per_user: false) serves everyone with no identity in its environment', async () => {
    const w = await startStdioWorld({ per_user: false });
    const a = await w.legacy();
    const b = await w.legacy(BOB);
    const whoA = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} })));
    const whoB = JSON.parse(textOf(await b.client.callTool({ name: 'whoami', arguments: {} })));
    expect(whoA.pid).toBe(whoB.pid);
    expect(whoA).toMatchObject({ id: null, email: null, name: null, groups: null });
    expect(whoA.envNames).toEqual(['PATH']);
  });
});

describe('stdio services: server messages', () => {
  it('a server request reaches the client on its request stream and the answer the process; a later notification the GET stream', async () => {
    const w = await startStdioWorld();
    const token = await w.token();
    const client = new Client({ name: 'roots-client', version: '1.0.0' }, { capabilities: { roots: {} } });
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///home/alice', name: 'home' }] }));
    const changed = new Promise<string>((resolve) =>
      client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => resolve(n.method)),
    );
    const transport = new StreamableHTTPClientTransport(new URL(`${w.gw.url}/files/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    onTestFinished(() => client.close());
    expect(JSON.parse(textOf(await client.callTool({ name: 'roots', arguments: {} })))).toEqual([
      { uri: 'file:///home/alice', name: 'home' },
    ]);
    expect(textOf(await client.callTool({ name: 'later_changed', arguments: {} }))).toBe('ok');
    expect(await within(changed, 5000, 'list_changed on the GET stream')).toBe('notifications/tools/list_changed');
  });
});

describe('stdio services: requests on the wire', () => {
  const modernHeaders = (token: string, method: string, name?: string) => ({
    ...RPC,
    authorization: `Bearer ${token}`,
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': method,
    ...(name ? { 'mcp-name': name } : {}),
  });
  const modernCall = (id: number, name: string, args: Record<string, unknown>, progressToken?: number) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
          ...(progressToken !== undefined ? { progressToken } : {}),
        },
      },
    });

  it('the identity comes from the token only: identity headers a client sends change nothing', async () => {
    const w = await startStdioWorld();
    const token = await w.token();
    const r = await fetch(`${w.gw.url}/files/mcp`, {
      method: 'POST',
      headers: { ...modernHeaders(token, 'tools/call', 'whoami'), 'x-user-id': 'corp:bob', 'x-user-email': 'bob@other.example' },
      body: modernCall(1, 'whoami', {}),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { id: number; result: unknown };
    expect(body.id).toBe(1);
    expect(JSON.parse(textOf(body.result))).toMatchObject({ id: 'corp:alice', email: 'alice@example.com' });
  });

  it('2026-07-28: closing the response stream cancels the request at the server', async () => {
    const lines: string[] = [];
    const logStream = new PassThrough();
    logStream.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
    // shutdown_grace 1: the aborted fetch leaves an idle socket on which it never sent a byte, which
    // server.closeIdleConnections does not count as idle.
    const w = await startStdioWorld({}, { gateway: { logging: { level: 'warn' }, limits: { shutdown_grace: 1 } }, options: { logStream } });
    const token = await w.token();
    const aborter = new AbortController();
    const r = await fetch(`${w.gw.url}/files/mcp`, {
      method: 'POST',
      headers: modernHeaders(token, 'tools/call', 'count'),
      body: modernCall(5, 'count', { n: 100, intervalMs: 50 }, 42),
      signal: aborter.signal,
    });
    expect(r.headers.get('content-type')).toBe('text/event-stream');
    const reader = r.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"progressToken":42');
    aborter.abort();
    await until(() => lines.some((l) => l.includes('count cancelled at')), 5000, 'the server to see the cancellation');
  });

  it('legacy DELETE ends the session: its id is unknown afterwards', async () => {
    const w = await startStdioWorld();
    const token = await w.token();
    const headers = { ...RPC, authorization: `Bearer ${token}` };
    const opened = await fetch(`${w.gw.url}/files/mcp`, { method: 'POST', headers, body: INIT });
    expect(opened.status).toBe(200);
    const id = opened.headers.get('mcp-session-id')!;
    const withSession = { ...headers, 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' };
    expect((await fetch(`${w.gw.url}/files/mcp`, { method: 'DELETE', headers: withSession })).status).toBe(204);
    const after = await fetch(`${w.gw.url}/files/mcp`, {
      method: 'POST',
      headers: withSession,
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(after.status).toBe(404);
  });

  it('2026-07-28 GET and DELETE are 405; a posted response is 400; a batch is 400', async () => {
    const w = await startStdioWorld();
    const token = await w.token();
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`${w.gw.url}/files/mcp`, { headers: { ...auth, accept: 'text/event-stream' } })).status).toBe(405);
    expect((await fetch(`${w.gw.url}/files/mcp`, { method: 'DELETE', headers: auth })).status).toBe(405);
    const response = await fetch(`${w.gw.url}/files/mcp`, {
      method: 'POST',
      headers: modernHeaders(token, 'ping'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }),
    });
    expect(response.status).toBe(400);
    const batch = await fetch(`${w.gw.url}/files/mcp`, { method: 'POST', headers: { ...RPC, ...auth }, body: `[${INIT}]` });
    expect(batch.status).toBe(400);
    expect(await batch.json()).toMatchObject({ error: { code: -32600, message: expect.stringContaining('batches') } });
  });
});

describe('stdio services: lifecycle', () => {
  it('a crash fails the request in flight with a JSON-RPC error; the next request restarts the process and the session goes on', async () => {
    const w = await startStdioWorld();
    const a = await w.legacy();
    const before = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} }))).pid as number;
    await expect(a.client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/local MCP server exited/);
    await until(() => !alive(before), 5000, 'the crashed process to be gone');
    // Same client, same session: the gateway replays initialize to the new process.
    const after = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} })));
    expect(after.pid).not.toBe(before);
    expect(after.id).toBe('corp:alice');
    const metrics = await (await fetch(`${w.gw.url}/metrics`)).text();
    expect(metrics).toMatch(/mcp_gateway_stdio_crashes_total\{service="files",reason="exited"\} 1/);
    expect(metrics).toMatch(/mcp_gateway_stdio_starts_total\{service="files"\} 2/);
    expect(metrics).toMatch(/mcp_gateway_stdio_processes\{service="files"\} 1/);
  });

  it('a server that keeps exiting is restarted with a growing backoff, until the wait exceeds timeout: then Retry-After', async () => {
    const w = await startStdioWorld({ command: [process.execPath, '-e', 'process.exit(1)'], timeout: 1000 });
    const token = await w.token();
    const ping = () =>
      fetch(`${w.gw.url}/files/mcp`, {
        method: 'POST',
        headers: { ...RPC, authorization: `Bearer ${token}`, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'ping' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 9,
          method: 'ping',
          params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
        }),
      });
    const answers: Array<{ status: number; retryAfter: string | null; body: { id: unknown; error: { data: { error: string } } } }> = [];
    for (let i = 0; i < 8 && !answers.at(-1)?.retryAfter; i++) {
      const r = await ping();
      answers.push({ status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as never });
    }
    expect(answers.every((a) => a.status === 502 && a.body.error.data.error === 'gw_err_stdio_exited')).toBe(true);
    // Waits of 250, 500 and 1000 ms are sat out (each request restarts the server); the next one is not.
    expect(answers.length).toBeGreaterThanOrEqual(5);
    expect(answers.slice(0, -1).every((a) => a.retryAfter === null && a.body.id === 9)).toBe(true);
    expect(Number(answers.at(-1)!.retryAfter)).toBeGreaterThanOrEqual(1);
    const crashes = /mcp_gateway_stdio_crashes_total\{service="files",reason="exited"\} (\d+)/.exec(
      await (await fetch(`${w.gw.url}/metrics`)).text(),
    );
    expect(Number(crashes?.[1])).toBe(answers.length - 1);
  });

  it('a process idle for idle_timeout is stopped; the next client gets a fresh one', async () => {
    const w = await startStdioWorld({ idle_timeout: 1 });
    const a = await w.legacy();
    const pid = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} }))).pid as number;
    await until(() => !alive(pid), 8000, 'the idle process to stop');
    // The gauge follows the child's 'close' (its pipes read to the end), which comes just after the reaping
    // that makes the pid disappear: it reaches 0, shortly after.
    await expect
      .poll(
        async () => (await (await fetch(`${w.gw.url}/metrics`)).text()).match(/mcp_gateway_stdio_processes\{service="files"\} (\d+)/)?.[1],
        {
          timeout: 2000,
        },
      )
      .toBe('0');
    // Its session ended with it (404: the client re-initializes).
    await expect(a.client.callTool({ name: 'whoami', arguments: {} })).rejects.toThrow(/404|Session not found/);
    const b = await w.legacy();
    const again = JSON.parse(textOf(await b.client.callTool({ name: 'whoami', arguments: {} })));
    expect(again.pid).not.toBe(pid);
  });

  it('gateway shutdown stops every process group: no server and no child of one is left', async () => {
    const w = await startStdioWorld({}, { gateway: { limits: { shutdown_grace: 1 } } });
    const a = await w.legacy();
    const b = await w.legacy(BOB);
    const m = await w.modern();
    const pids: number[] = [];
    for (const call of [
      (n: string) => a.client.callTool({ name: n, arguments: {} }),
      (n: string) => b.client.callTool({ name: n, arguments: {} }),
      (n: string) => m.callTool({ name: n, arguments: {} }),
    ]) {
      pids.push(JSON.parse(textOf(await call('whoami'))).pid);
      pids.push(Number(textOf(await call('grandchild'))));
    }
    expect(new Set(pids).size).toBe(6);
    expect(pids.every(alive)).toBe(true);
    await w.gw.close();
    expect(pids.filter(alive)).toEqual([]);
  });

  it('max_processes: a request that needs one more process gets 503 with Retry-After', async () => {
    const w = await startStdioWorld({ max_processes: 1 });
    const a = await w.legacy();
    expect(textOf(await a.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }))).toBe('2');
    const bob = await w.token(BOB);
    const r = await fetch(`${w.gw.url}/files/mcp`, { method: 'POST', headers: { ...RPC, authorization: `Bearer ${bob}` }, body: INIT });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('5');
    expect(await r.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, data: { error: 'gw_err_stdio_limit' } } });
  });
});

describe('stdio services: output guard', () => {
  it('a line larger than the request limit stops the process with an error, not a hang', async () => {
    const w = await startStdioWorld({ max_request_bytes: 64 * 1024 });
    const a = await w.legacy();
    const pid = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} }))).pid as number;
    await expect(a.client.callTool({ name: 'bigline', arguments: { bytes: 200_000 } })).rejects.toThrow(/larger than 65536 bytes/);
    await until(() => !alive(pid), 5000, 'the process to be stopped');
    const metrics = await (await fetch(`${w.gw.url}/metrics`)).text();
    expect(metrics).toMatch(/mcp_gateway_stdio_crashes_total\{service="files",reason="output_too_large"\} 1/);
    // Restarted on the next request.
    expect(textOf(await a.client.callTool({ name: 'add', arguments: { a: 2, b: 2 } }))).toBe('4');
  });

  it('a process flooding stdout with output nobody asked for is stopped', async () => {
    const w = await startStdioWorld({ max_request_bytes: 64 * 1024 });
    const a = await w.legacy();
    const pid = JSON.parse(textOf(await a.client.callTool({ name: 'whoami', arguments: {} }))).pid as number;
    await expect(a.client.callTool({ name: 'flood', arguments: {} })).rejects.toThrow(/nobody asked for/);
    await until(() => !alive(pid), 5000, 'the process to be stopped');
    expect(await (await fetch(`${w.gw.url}/metrics`)).text()).toMatch(/reason="output_flood"\} 1/);
  });
});

describe('stdio services: operations', () => {
  it('stderr reaches the gateway log with the service and user, secrets redacted', async () => {
    const lines: string[] = [];
    const logStream = new PassThrough();
    logStream.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
    const w = await startStdioWorld({}, { gateway: { logging: { level: 'info' } }, options: { logStream } });
    const a = await w.legacy();
    await a.client.callTool({ name: 'whoami', arguments: {} });
    const entry = await until(
      () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'stdio: server stderr'),
      5000,
      'the stderr line in the log',
    );
    expect(entry).toMatchObject({ service: 'files', user: 'corp:alice' });
    expect(entry.stderr).toMatch(/fixture server starting pid=\d+ api_token=\[redacted\]/);
    const token = a.provider.tokens()!.access_token;
    expect(lines.filter((l) => l.includes('s3cr3t') || l.includes(token))).toEqual([]);
    expect(lines.some((l) => l.includes('stdio: server started'))).toBe(true);
  });

  it('several instances: a session whose process runs on another instance gets a clear 421; sticky routing works', async () => {
    const lb = await startBalancer();
    onTestFinished(() => lb.close());
    const store = new MemoryStore();
    const instance = async () => {
      const port = await freePort();
      const gw = await createGateway(
        testConfig({
          issuer: lb.url,
          port,
          oauth_providers: { dev: {} },
          limits: { shutdown_grace: 1 },
          mcp_services: { files: { name: 'Files', command: [process.execPath, FIXTURE], oauth_provider: 'dev' } },
        }),
        { silent: true, store },
      );
      await gw.listen();
      onTestFinished(() => gw.close());
      return { gw, port };
    };
    const a = await instance();
    const b = await instance();
    lb.ports = { A: a.port, B: b.port };
    const auth = await bearer(a.gw, { service: 'files' });
    const headers = { ...RPC, authorization: auth };
    lb.target = 'A';
    const opened = await fetch(`${lb.url}/files/mcp`, { method: 'POST', headers, body: INIT });
    expect(opened.status).toBe(200);
    const sessionId = opened.headers.get('mcp-session-id')!;
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const withSession = { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
    lb.target = 'B';
    const elsewhere = await fetch(`${lb.url}/files/mcp`, { method: 'POST', headers: withSession, body: list });
    expect(elsewhere.status).toBe(421);
    const body = (await elsewhere.json()) as { error: { message: string; data: { error: string } } };
    expect(body.error.data.error).toBe('gw_err_stdio_session_elsewhere');
    expect(body.error.message).toMatch(/another gateway instance: stdio services need sticky routing/);
    lb.target = 'A';
    const sticky = await fetch(`${lb.url}/files/mcp`, { method: 'POST', headers: withSession, body: list });
    expect(sticky.status).toBe(200);
    expect(JSON.stringify(await sticky.json())).toContain('whoami');
  });
});
