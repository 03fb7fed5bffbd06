/**
 * The platform's limit for the benchmark: a minimal Node.js reverse proxy (node:http server → undici
 * `Pool.dispatch`, the same pool settings as the gateway's, bodies up to 64 KiB with a Content-Length
 * gathered first, response streamed back). No authentication, no routing, no metrics, no header rules.
 * Usage: tsx bench/bare-proxy.ts <backend origin>; prints "READY <port>".
 * BARE_IDENTITY=1: it also does the gateway's header work and nothing else of it: the Authorization header
 * is dropped and the ten headers the gateway adds (identity and X-Forwarded-*, values of the bench
 * token's user) are sent, to measure what those headers alone cost the platform (bench/callgrind.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const origin = process.argv[2] ?? 'http://127.0.0.1:1';
const pool = new Pool(origin, { pipelining: 1, keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
const IDENTITY: Record<string, string> | undefined = process.env.BARE_IDENTITY
  ? {
      'x-user-id': 'dev:alice',
      'x-user-email': 'alice@example.com',
      'x-user-email-verified': 'true',
      'x-user-name': 'Alice Example',
      'x-user-provider': 'dev',
      'x-user-avatar': 'https://example.com/alice.png',
      'x-user-groups': 'staff',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': '127.0.0.1:1',
    }
  : undefined;
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'host']);

class Relay implements Dispatcher.DispatchHandler {
  constructor(private readonly res: ServerResponse) {}
  onRequestStart(): void {}
  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    const out: Record<string, string | string[]> = {};
    for (const k in headers) if (!HOP.has(k) && headers[k] !== undefined) out[k] = headers[k]!;
    this.res.writeHead(status, out);
  }
  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      c.pause();
      this.res.once('drain', () => c.resume());
    }
  }
  onResponseEnd(): void {
    this.res.end();
  }
  onResponseError(): void {
    if (!this.res.headersSent) this.res.writeHead(502).end();
    else this.res.destroy();
  }
}

function dispatch(req: IncomingMessage, res: ServerResponse, body: Buffer | IncomingMessage | null): void {
  const headers: Record<string, string> = {};
  for (const k in req.headers) {
    const v = req.headers[k];
    if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
  }
  if (IDENTITY) {
    delete headers.authorization;
    Object.assign(headers, IDENTITY);
  }
  pool.dispatch(
    { origin, path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body, headersTimeout: 30_000, bodyTimeout: 0 },
    new Relay(res),
  );
}

const server = createServer((req, res) => {
  const cl = req.headers['content-length'];
  if (cl === undefined || cl === '0') return dispatch(req, res, null);
  if (Number(cl) > 64 * 1024) return dispatch(req, res, req);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => dispatch(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`READY ${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
