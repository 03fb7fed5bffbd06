/**
 * A trivial MCP-shaped backend for the benchmark, run in its own process so that it never shares an event
 * loop with the gateway or nginx. Speaks just enough Streamable HTTP:
 *   POST  (JSON-RPC request)              → application/json response echoing the id
 *   GET   ?sse=N&interval=MS              → N SSE events, each carrying its send time (performance.timeOrigin + now)
 *   GET   ?idle=1                         → an SSE stream that sends one priming event and stays open
 * Prints "READY <port>" on stdout.
 */
import { createServer } from 'node:http';

const RESULT = JSON.stringify({ content: [{ type: 'text', text: 'ok' }] });
let idle = 0;

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'POST') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let id: unknown = null;
      try {
        id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown }).id ?? null;
      } catch {
        /* not JSON: answer anyway */
      }
      const body = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${RESULT}}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  if (req.method === 'GET' && url.searchParams.has('sse')) {
    const n = Number(url.searchParams.get('sse') ?? 10);
    const interval = Number(url.searchParams.get('interval') ?? 20);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let i = 0;
    const send = () => {
      const t = performance.timeOrigin + performance.now();
      res.write(`id: ${i}\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"i":${i},"t":${t}}}\n\n`);
      if (++i >= n) res.end();
      else setTimeout(send, interval);
    };
    send();
    req.on('close', () => (i = n));
    return;
  }
  if (req.method === 'GET' && url.searchParams.has('idle')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('id: 0\ndata: \n\n');
    idle++;
    req.on('close', () => idle--);
    return;
  }
  if (url.pathname.endsWith('/stats')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ idle }));
    return;
  }
  res.writeHead(405).end();
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.maxConnections = 50_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`READY ${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
