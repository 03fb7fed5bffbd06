/** Streaming, cancellation, timeouts, overload and backend failures (real gateway and backends). */
import { describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { freePort } from '../helpers/gateway.js';
import { startEchoBackend, startMcpBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS, PING, proxyGateway } from './fixtures.js';

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);

/** A backend that answers with SSE headers at once and then one event every `everyMs`, forever. */
function sseForever(everyMs: number) {
  return Object.assign(
    (_req: unknown, res: import('node:http').ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      let n = 0;
      const send = () => res.write(`id: ${++n}\ndata: {"n":${n}}\n\n`);
      send();
      const t = setInterval(send, everyMs);
      res.on('close', () => clearInterval(t));
    },
    { streaming: true },
  );
}

describe('SSE relay', () => {
  it('each progress notification arrives while the backend is still sending (no buffering)', async () => {
    const backend = await startMcpBackend();
    const gw = await proxyGateway({ svc: { url: backend.url } });
    const client = new Client({ name: 't', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/svc/mcp`), {
      requestInit: { headers: { Authorization: await bearer(gw, { service: 'svc' }) } },
    });
    await client.connect(transport);
    const count = 5;
    const result = await client.callTool({ name: 'progress', arguments: { count, intervalMs: 100 } }, undefined, {
      onprogress: (p) => void backend.log.push(`recv:${p.progress}`),
    });
    expect(result.content).toEqual([{ type: 'text', text: `done ${count}` }]);
    // Same process, one event loop: the log order is the real order of events.
    for (let i = 1; i < count; i++) {
      expect(backend.log.indexOf(`recv:${i}`), `event ${i} relayed before event ${i + 1} was sent`).toBeLessThan(
        backend.log.indexOf(`sent:${i + 1}`),
      );
      expect(backend.log.indexOf(`recv:${i}`)).toBeGreaterThan(-1);
    }
    await client.close();
  });

  it('SSE responses carry X-Accel-Buffering: no; a GET stream outlives the headers timeout', async () => {
    const backend = await startEchoBackend(sseForever(100));
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false, timeout: 300 } });
    const ac = new AbortController();
    const r = await fetch(`${gw.url}/svc/mcp`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-accel-buffering')).toBe('no');
    expect(r.headers.get('content-type')).toBe('text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    const started = Date.now();
    while (!text.includes('"n":10')) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended early');
      text += Buffer.from(value).toString();
    }
    expect(Date.now() - started).toBeGreaterThan(600); // well past the 300 ms headers timeout
    ac.abort();
    await within(backend.closed, 5000, 'backend sees the close');
  });
});

describe('client disconnect propagates to the backend', () => {
  it('before response headers', async () => {
    const backend = await startEchoBackend(Object.assign(() => {}, { streaming: true }));
    const gw = await proxyGateway({ svc: { url: backend.url } });
    const ac = new AbortController();
    const arrived = backend.nextRequest();
    const pending = fetch(`${gw.url}/svc/mcp`, {
      method: 'POST',
      headers: { ...JSON_RPC_HEADERS, authorization: await bearer(gw, { service: 'svc' }) },
      body: PING,
      signal: ac.signal,
    }).catch((e: Error) => e);
    await within(arrived, 5000, 'request reaches backend');
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    await within(backend.closed, 5000, 'backend request closed');
    expect(backend.received[0]!.closedEarly).toBe(true);
    await expect
      .poll(() => gw.ctx.metrics.registry.metrics())
      .toMatch(/mcp_gateway_upstream_errors_total\{service="svc",kind="aborted"\} 1/);
  });

  it('after response headers (mid-stream)', async () => {
    const backend = await startEchoBackend(sseForever(50));
    const gw = await proxyGateway({ svc: { url: backend.url } });
    const ac = new AbortController();
    const r = await fetch(`${gw.url}/svc/mcp`, {
      headers: { accept: 'text/event-stream', authorization: await bearer(gw, { service: 'svc' }) },
      signal: ac.signal,
    });
    const reader = r.body!.getReader();
    await reader.read();
    await expect.poll(() => gw.ctx.metrics.registry.metrics()).toMatch(/mcp_gateway_active_streams\{service="svc"\} 1/);
    ac.abort();
    await within(backend.closed, 5000, 'backend response closed');
    await expect.poll(() => gw.ctx.metrics.registry.metrics()).toMatch(/mcp_gateway_active_streams\{service="svc"\} 0/);
  });
});

describe('backend failures', () => {
  it('502 when nothing listens, without leaking the backend address', async () => {
    const port = await freePort();
    const gw = await proxyGateway({ svc: { url: `http://127.0.0.1:${port}/mcp`, auth_required: false } });
    const plain = await fetch(`${gw.url}/svc/mcp`);
    expect(plain.status).toBe(502);
    const text = await plain.text();
    expect(JSON.parse(text)).toMatchObject({ error: 'gw_err_upstream_unreachable' });
    expect(text).not.toContain(String(port));
    const rpc = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: JSON_RPC_HEADERS, body: PING });
    expect(rpc.status).toBe(502);
    expect(await rpc.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000 } });
  });

  it('504 when the backend sends no headers within the service timeout', async () => {
    const backend = await startEchoBackend(Object.assign(() => {}, { streaming: true }));
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false, timeout: 300 } });
    const started = Date.now();
    const r = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: JSON_RPC_HEADERS, body: PING });
    expect(r.status).toBe(504);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await r.json()).toMatchObject({ jsonrpc: '2.0', error: { message: 'The MCP service did not answer in time' } });
    await within(backend.closed, 5000, 'timed-out backend request closed');
  });

  it('overload: 503 with Retry-After beyond max_concurrent, counting open streams', async () => {
    const backend = await startEchoBackend(sseForever(100));
    const gw = await proxyGateway({ svc: { url: backend.url, auth_required: false, max_concurrent: 1 } });
    const ac = new AbortController();
    const held = await fetch(`${gw.url}/svc/mcp`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    expect(held.status).toBe(200);
    const busy = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: JSON_RPC_HEADERS, body: PING });
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(await busy.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
    ac.abort();
    await within(backend.closed, 5000, 'held stream closed');
    await expect
      .poll(
        async () =>
          await fetch(`${gw.url}/svc/mcp`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(2000) }).then((r) => {
            void r.body?.cancel();
            return r.status;
          }),
      )
      .toBe(200);
  });
});
