/**
 * Graceful shutdown (SPEC §5) and slow-client resistance, against the real gateway on loopback.
 * The overload guard (503 + Retry-After beyond max_concurrent) is covered in test/proxy/streaming.test.ts.
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, test } from 'vitest';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { securityWorld } from './world.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('graceful shutdown', () => {
  test('an in-flight request to a slow backend finishes; new connections are refused once closing', async () => {
    const backend = await startEchoBackend(async (_req, res) => {
      await sleep(600);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"slow":true}');
    });
    const { gw } = await securityWorld({ limits: { shutdown_grace: 5 } }, {}, () => ({
      pub: { name: 'P', url: backend.url, auth_required: false },
    }));
    const inflight = fetch(`${gw.url}/pub/mcp`).then(async (r) => ({ status: r.status, body: await r.text() }));
    await expect.poll(() => backend.received.length).toBe(1);
    const closing = gw.close();
    await sleep(50);
    // A new connection: refused (listener closed) or, on a kept-alive socket, 503.
    const late = await new Promise<string>((resolve) => {
      const s = connect(Number(new URL(gw.url).port), '127.0.0.1');
      s.once('connect', () => {
        s.end('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        let text = '';
        s.on('data', (c: Buffer) => (text += c.toString('latin1')));
        s.on('close', () => resolve(text.slice(0, 12) || 'closed'));
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(['ECONNREFUSED', 'ECONNRESET', 'closed', 'HTTP/1.1 503']).toContain(late);
    expect(await inflight).toEqual({ status: 200, body: '{"slow":true}' });
    await closing;
  });

  test('close() completes once the in-flight requests are done, without waiting for the whole grace period', async () => {
    const backend = await startEchoBackend(async (_req, res) => {
      await sleep(300);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const { gw } = await securityWorld({ limits: { shutdown_grace: 12 } }, {}, () => ({
      pub: { name: 'P', url: backend.url, auth_required: false },
    }));
    const inflight = fetch(`${gw.url}/pub/mcp`).then((r) => r.text());
    await expect.poll(() => backend.received.length).toBe(1);
    const started = Date.now();
    await Promise.all([gw.close(), inflight]);
    // The client's keep-alive socket turns idle after the response; it must not hold close() for 12 s.
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  test('a long-lived stream is cut at the shutdown_grace deadline, so close() completes', async () => {
    const backend = await startEchoBackend(
      Object.assign(
        (_req: unknown, res: import('node:http').ServerResponse) => {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('event: ping\ndata: 1\n\n');
          // Never ends.
        },
        { streaming: true },
      ),
    );
    const { gw } = await securityWorld({ limits: { shutdown_grace: 1 } }, {}, () => ({
      calc: { name: 'C', url: backend.url, oauth_provider: 'myidp' },
    }));
    const res = await fetch(`${gw.url}/calc/mcp`, {
      headers: { authorization: await bearer(gw, { service: 'calc' }), accept: 'text/event-stream' },
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('data: 1');
    const started = Date.now();
    await gw.close();
    // Bounded by the grace period (1 s) plus teardown; generous bound, not a timing assertion.
    expect(Date.now() - started).toBeLessThan(10_000);
    const end = await reader.read().then(
      (r) => (r.done ? 'done' : 'data'),
      () => 'error',
    );
    expect(['done', 'error']).toContain(end);
    await backend.closed;
  });
});

describe('slow clients (slowloris)', () => {
  test('200 connections dribbling header bytes neither block normal requests nor grow memory without bound', async () => {
    const { gw } = await securityWorld();
    const port = Number(new URL(gw.url).port);
    const sockets: Socket[] = [];
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      sockets.push(s);
    }
    const dribble = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('X-A: b\r\n');
    }, 100);
    try {
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${gw.url}/health`);
        expect(res.status).toBe(200);
        await res.text();
        expect((await fetch(`${gw.url}/pub/mcp`)).status).toBe(200);
        await sleep(100);
      }
      // 200 half-open requests cost little: far below 1 MiB each (the bound is loose on purpose).
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200 * 1024 * 1024);
    } finally {
      clearInterval(dribble);
      for (const s of sockets) s.destroy();
    }
  });

  test('Node’s header timeout applies (a connection that never finishes its headers is eventually cut)', async () => {
    const { gw } = await securityWorld();
    const server = gw.app.server;
    expect(server.headersTimeout).toBeGreaterThan(0);
    expect(server.headersTimeout).toBeLessThanOrEqual(60_000);
  });

  test('a request body that trickles forever is eventually cut (server.requestTimeout is finite)', async () => {
    // fastify sets requestTimeout to 0 by default, which disables Node's protection against slow bodies
    // (a POST /oauth/token that sends one byte a minute holds its socket forever). requestTimeout only
    // covers receiving the request, so long-lived response streams are unaffected by it.
    const { gw } = await securityWorld();
    const server = gw.app.server;
    expect(server.requestTimeout).toBeGreaterThan(0);
    expect(server.requestTimeout).toBeLessThanOrEqual(300_000);
  });
});
