/**
 * Tool rules in both protocol eras and on the edges of the wire (docs/proxy.md, "Tool-level rules"):
 * 2026-07-28 with the SDK v2 client pinned to it and a v2 backend (Mcp-Method / Mcp-Name), a lying
 * Mcp-Name, a legacy JSON-RPC batch with one allowed and one refused call (JSON and SSE answers), a
 * filtered list delivered as SSE event by event with its nextCursor, and the hot path of services
 * without rules (their bodies are never read).
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { bodyReads } from '../../src/proxy/tool-calls.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { startCatalogBackend } from '../helpers/tools-backend.js';
import { proxyGateway } from '../proxy/fixtures.js';
import { calcGateway, calcService, RPC_HEADERS } from './fixtures.js';

const MODERN = '2026-07-28';
const envelope = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
};

/** Parses an SSE body into its JSON data messages. */
function sseMessages(text: string): unknown[] {
  return text
    .split(/\n\n/)
    .map((e) =>
      e
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .join('\n'),
    )
    .filter((d) => d.length > 0)
    .map((d) => JSON.parse(d) as unknown);
}

describe('2026-07-28: SDK v2 client pinned to the modern era, v2 backend', () => {
  it('filters the list, refuses denied calls and mirrors the name in Mcp-Name', async () => {
    const backend = await startCatalogBackend({ era: 'modern' });
    const gw = await calcGateway(backend.url);
    const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read calculate', groups: ['staff'] } });
    const client = new Client({ name: 'v2-modern', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/calc/mcp`), { requestInit: { headers: { authorization } } }));

    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['search', 'add']);
    await expect(client.callTool({ name: 'danger', arguments: {} })).rejects.toThrow(/tool rule 'danger' denies it/);
    expect((await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).content).toEqual([{ type: 'text', text: '5' }]);
    expect(backend.called).toEqual(['tool:add']);
    const call = backend.headers.find((h) => h['mcp-method'] === 'tools/call');
    expect(call).toMatchObject({ 'mcp-protocol-version': MODERN, 'mcp-name': 'add' });
    await client.close();
  });

  it('a filtered modern list result is private for caches: Cache-Control and cacheScope', async () => {
    const backend = await startCatalogBackend({ era: 'modern', json: true });
    const gw = await calcGateway(backend.url);
    const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read' } });
    const res = await fetch(`${gw.url}/calc/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization, 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: envelope } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('private');
    const body = (await res.json()) as { result: { tools: Array<{ name: string }>; cacheScope?: string } };
    expect(body.result.tools.map((t) => t.name)).toEqual(['search', 'add']);
    expect(body.result.cacheScope).toBe('private');
  });

  it('a lying Mcp-Name is refused with 400 HeaderMismatch (-32020) and never reaches the backend', async () => {
    const backend = await startCatalogBackend({ era: 'modern' });
    const gw = await calcGateway(backend.url);
    const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read calculate' } });
    const send = (name: string, header: string | undefined) =>
      fetch(`${gw.url}/calc/mcp`, {
        method: 'POST',
        headers: {
          ...RPC_HEADERS,
          authorization,
          'mcp-protocol-version': MODERN,
          'mcp-method': 'tools/call',
          ...(header === undefined ? {} : { 'mcp-name': header }),
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: { q: 'x' }, _meta: envelope } }),
      });
    for (const [name, header] of [
      ['danger', 'search'], // the header hides a denied tool
      ['search', 'danger'], // the header names another tool than the one that would run
      ['search', undefined], // required on 2026-07-28
    ] as const) {
      const res = await send(name, header);
      expect(res.status, `${name} / ${header}`).toBe(400);
      expect(await res.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32020, data: { error: 'header_mismatch' } } });
    }
    // The =?base64?…?= form of a non-ASCII value is decoded before comparing.
    const encoded = await send('search', `=?base64?${Buffer.from('search').toString('base64')}?=`);
    expect(encoded.status).toBe(200);
    expect(sseMessages(await encoded.text())).toMatchObject([{ id: 9, result: { content: [{ text: 'found x' }] } }]);
    expect(backend.called).toEqual(['tool:search']);
  });
});

describe('legacy JSON-RPC batch with one allowed and one refused call', () => {
  for (const json of [true, false]) {
    it(`the refused element is answered by the gateway, the allowed one by the backend (${json ? 'JSON' : 'SSE'} response)`, async () => {
      const backend = await startCatalogBackend({ era: 'legacy', json });
      const gw = await calcGateway(backend.url);
      const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read' } });
      const init = await fetch(`${gw.url}/calc/mcp`, {
        method: 'POST',
        headers: { ...RPC_HEADERS, authorization },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
        }),
      });
      expect(init.status).toBe(200);
      await init.text();
      const session = {
        ...RPC_HEADERS,
        authorization,
        'mcp-session-id': init.headers.get('mcp-session-id')!,
        'mcp-protocol-version': '2025-03-26',
      };
      await (
        await fetch(`${gw.url}/calc/mcp`, {
          method: 'POST',
          headers: session,
          body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        })
      ).text();

      const batch = `[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","arguments":{"q":"big 12345678901234567890"}}},
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"danger","arguments":{}}}]`;
      const res = await fetch(`${gw.url}/calc/mcp`, { method: 'POST', headers: session, body: batch });
      expect(res.status).toBe(200);
      const text = await res.text();
      const messages = (json ? (JSON.parse(text) as unknown[]) : sseMessages(text)).flat() as Array<{
        id: number;
        result?: unknown;
        error?: { message: string; data: unknown };
      }>;
      const byId = new Map(messages.map((m) => [m.id, m]));
      expect(byId.get(2)?.result).toEqual({ content: [{ type: 'text', text: 'found big 12345678901234567890' }] });
      expect(byId.get(3)?.error?.message).toContain("Tool 'danger' is not allowed");
      expect(byId.get(3)?.error?.data).toMatchObject({ error: 'access_denied', rule: 'danger', tool: 'danger' });
      // The backend got the allowed element only, byte for byte.
      expect(backend.bodies.at(-1)).toBe(
        '[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","arguments":{"q":"big 12345678901234567890"}}}]',
      );
      expect(backend.called).toEqual(['tool:search']);
    });
  }

  it('a batch whose elements are all refused is answered by the gateway alone; a missing scope refuses the whole batch', async () => {
    const backend = await startEchoBackend();
    const gw = await calcGateway(backend.url);
    const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read' } });
    const post = (body: string) => fetch(`${gw.url}/calc/mcp`, { method: 'POST', headers: { ...RPC_HEADERS, authorization }, body });
    const all = await post(
      '[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"danger"}},{"jsonrpc":"2.0","method":"tools/call","params":{"name":"danger"}}]',
    );
    expect(all.status).toBe(200);
    expect(((await all.json()) as Array<{ id: unknown }>).map((m) => m.id)).toEqual(['a']);
    const scoped = await post(
      '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}}]',
    );
    expect(scoped.status).toBe(403);
    expect(scoped.headers.get('www-authenticate')).toContain('scope="read calculate"');
    // Duplicate member names would let the backend run another tool than the one decided (RFC 7493).
    const dup = await post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"danger","name":"search"}}');
    expect(dup.status).toBe(400);
    expect(backend.received).toEqual([]);
  });
});

describe('a filtered list delivered as SSE', () => {
  it('is rewritten event by event (nothing else held back) and keeps nextCursor', async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    const backend = await startEchoBackend(async (_req, res, rec) => {
      const id = (JSON.parse(rec.body.toString('utf8')) as { id: number }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(
        'id: e1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"first"}}\n\n',
      );
      await released;
      const tools = ['search', 'danger', 'admin_reset', 'add'].map((name) => ({ name, inputSchema: { type: 'object' } }));
      res.write(`id: e2\nevent: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { tools, nextCursor: 'page-2' } })}\r\n\r\n`);
      res.end();
    });
    const gw = await calcGateway(backend.url);
    const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read', groups: ['staff'] } });
    const res = await fetch(`${gw.url}/calc/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization },
      body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list', params: {} }),
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('private');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    while (!seen.includes('\n\n')) seen += decoder.decode((await reader.read()).value);
    // The first event arrived while the backend still holds the list back.
    expect(seen).toContain('"data":"first"');
    release();
    for (let r = await reader.read(); !r.done; r = await reader.read()) seen += decoder.decode(r.value);
    const [, list] = sseMessages(seen.replace(/\r\n/g, '\n')) as [
      unknown,
      { id: number; result: { tools: Array<{ name: string }>; nextCursor: string } },
    ];
    expect(list.id).toBe(4);
    expect(list.result.tools.map((t) => t.name)).toEqual(['search', 'add']);
    expect(list.result.nextCursor).toBe('page-2');
    expect(seen).toContain('id: e2\nevent: message\ndata: ');
  });
});

describe('compressed answers', () => {
  it('a list request is sent without Accept-Encoding; a compressed answer anyway is cut, never relayed unfiltered', async () => {
    const tools = ['search', 'danger'].map((name) => ({ name, inputSchema: { type: 'object' } }));
    const backend = await startEchoBackend((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } })));
    });
    const gw = await calcGateway(backend.url);
    const authorization = await bearer(gw, { service: 'calc', claims: { scope: 'read' } });
    const answer = fetch(`${gw.url}/calc/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, 'accept-encoding': 'gzip', authorization },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    }).then((r) => r.text());
    await expect(answer).rejects.toThrow();
    expect(backend.received[0]!.headers['accept-encoding']).toBeUndefined();
  });
});

describe('a resumed stream (GET with Last-Event-ID)', () => {
  it('filters a replayed list response by its shape', async () => {
    const tools = ['search', 'danger', 'add'].map((name) => ({ name, inputSchema: { type: 'object' } }));
    const backend = await startEchoBackend((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`id: e7\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 12, result: { tools } })}\n\n`);
    });
    const gw = await calcGateway(backend.url);
    const res = await fetch(`${gw.url}/calc/mcp`, {
      headers: {
        accept: 'text/event-stream',
        'last-event-id': 'e6',
        authorization: await bearer(gw, { service: 'calc', claims: { scope: 'read' } }),
      },
    });
    expect(res.headers.get('cache-control')).toBe('private');
    const [replayed] = sseMessages(await res.text()) as [{ result: { tools: Array<{ name: string }> } }];
    expect(replayed.result.tools.map((t) => t.name)).toEqual(['search', 'add']);
  });
});

describe('hot path', () => {
  it('a service without rules never has its body read; a service with rules does', async () => {
    const backend = await startEchoBackend();
    const gw = await proxyGateway({ 'hot-plain': { url: backend.url }, 'hot-ruled': calcService(backend.url) });
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'danger', arguments: {} } });
    const plain = await fetch(`${gw.url}/hot-plain/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization: await bearer(gw, { service: 'hot-plain' }) },
      body: call,
    });
    expect(plain.status).toBe(200);
    await plain.text();
    const ruled = await fetch(`${gw.url}/hot-ruled/mcp`, {
      method: 'POST',
      headers: { ...RPC_HEADERS, authorization: await bearer(gw, { service: 'hot-ruled', claims: { scope: 'read' } }) },
      body: call,
    });
    expect(ruled.status).toBe(403);
    await ruled.text();
    expect(bodyReads.get('hot-plain')).toBeUndefined();
    expect(bodyReads.get('hot-ruled')).toBe(1);
    expect(backend.received).toHaveLength(1);
  });
});
