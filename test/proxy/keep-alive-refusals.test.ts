/**
 * The gateway's own refusals keep the connection (docs/proxy.md, Streaming): a small unread body is
 * discarded and the next request reuses the socket; a body beyond the bound closes it.
 */
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import type { StartedGateway } from '../helpers/gateway.js';
import { JSON_RPC_HEADERS, PING, proxyGateway } from './fixtures.js';

let gw: StartedGateway;
let backend: Awaited<ReturnType<typeof startEchoBackend>>;

/** Per test (the helpers clean up when the test finishes). */
async function setup(): Promise<void> {
  backend = await startEchoBackend();
  gw = await proxyGateway({ svc: { url: backend.url } });
}

interface Answer {
  status: number;
  connection: string | undefined;
  socket: Socket;
  body: string;
}

function send(agent: Agent, path: string, headers: Record<string, string>, body: string | Buffer): Promise<Answer> {
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'POST', agent, headers }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          connection: res.headers.connection,
          socket: req.socket!,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('keep-alive on refusals', () => {
  it('several 401s and 403s with small bodies on one keep-alive connection', async () => {
    await setup();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const answers: Answer[] = [];
      for (let i = 0; i < 5; i++) answers.push(await send(agent, '/svc/mcp', JSON_RPC_HEADERS, PING));
      // An Origin the gateway refuses: 403, same socket.
      answers.push(await send(agent, '/svc/mcp', { ...JSON_RPC_HEADERS, origin: 'https://evil.example' }, PING));
      // A body of several KiB (still under the bound) is discarded too.
      answers.push(
        await send(agent, '/svc/mcp', JSON_RPC_HEADERS, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'x', pad: 'p'.repeat(20_000) })),
      );
      expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 403, 401]);
      for (const a of answers) {
        expect(a.connection).toBe('keep-alive');
        expect(a.socket).toBe(answers[0]!.socket);
      }
      expect(JSON.parse(answers[0]!.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001 } });
      expect(backend.received).toHaveLength(0);
    } finally {
      agent.destroy();
    }
  });

  it('a body declared larger than the bound gets Connection: close', async () => {
    await setup();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const big = Buffer.alloc(200 * 1024, 0x20);
      const a = await send(agent, '/svc/mcp', { ...JSON_RPC_HEADERS, 'content-length': String(big.length) }, big);
      expect(a.status).toBe(401);
      expect(a.connection).toBe('close');
      // The next request needs a new connection.
      const b = await send(agent, '/svc/mcp', JSON_RPC_HEADERS, PING);
      expect(b.status).toBe(401);
      expect(b.socket).not.toBe(a.socket);
    } finally {
      agent.destroy();
    }
  });

  /** Raw socket: writes the head and some body, resolves with what arrived once the server closes the socket. */
  function rawUntilClosed(head: string, body: Buffer | undefined, keepWriting?: Buffer): Promise<{ text: string; closed: boolean }> {
    const u = new URL(gw.url);
    return new Promise((resolve, reject) => {
      const s = connect(Number(u.port), u.hostname);
      let text = '';
      let timer: NodeJS.Timeout | undefined;
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (keepWriting && !timer) timer = setInterval(() => s.writable && s.write(keepWriting), 5);
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(timer);
        resolve({ text, closed: true });
      });
      s.on('connect', () => {
        s.write(head);
        if (body) s.write(body);
      });
      setTimeout(() => reject(new Error(`socket still open; got ${text.slice(0, 200)}`)), 15_000).unref();
    });
  }

  it('a chunked body growing past the bound has its socket closed after the 401', async () => {
    await setup();
    const chunk = Buffer.from(`4000\r\n${'x'.repeat(0x4000)}\r\n`);
    const r = await rawUntilClosed(
      'POST /svc/mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      chunk,
      chunk,
    );
    expect(r.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(r.closed).toBe(true);
  });

  it('a small body that never finishes has its socket closed after the 401 (within the discard time)', async () => {
    await setup();
    const started = Date.now();
    const r = await rawUntilClosed(
      'POST /svc/mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
      Buffer.from('{"a":'),
    );
    expect(r.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(r.text.toLowerCase()).toContain('connection: keep-alive');
    expect(Date.now() - started).toBeLessThan(12_000);
  }, 20_000);
});
