/**
 * The built-in demo MCP service (Streamable HTTP, both protocol eras, no dependencies), started on a
 * loopback port by demo mode and mounted behind the gateway like any other backend.
 *
 * Tools:
 *   whoami       - shows the identity headers the gateway injected (and proves client-sent ones are gone)
 *   echo         - returns its text
 *   add          - adds two numbers
 *   count_slowly - counts to N, one progress notification per step, streamed as Server-Sent Events
 *
 * Stateless: no Mcp-Session-Id is issued (the transport allows that), so every request stands alone.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

const SUPPORTED = ['2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'];
const IDENTITY_HEADERS = ['x-user-id', 'x-user-email', 'x-user-name', 'x-user-provider', 'x-user-avatar', 'x-user-groups'];
const MAX_BODY = 1024 * 1024;

interface JsonRpcRequest {
  jsonrpc: '2.0';
  id?: string | number | null;
  method: string;
  params?: { name?: string; arguments?: Record<string, unknown>; protocolVersion?: string; _meta?: { progressToken?: string | number } };
}

const TOOLS = [
  {
    name: 'whoami',
    description: 'Shows who the gateway says you are (the identity headers it injected).',
    inputSchema: { type: 'object', properties: {} },
  },
  {
    name: 'echo',
    description: 'Returns the text you send.',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
  },
  {
    name: 'add',
    description: 'Adds two numbers.',
    inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
  },
  {
    name: 'count_slowly',
    description: 'Counts to n (at most 20), streaming one progress notification every 300 ms.',
    inputSchema: { type: 'object', properties: { n: { type: 'number' } } },
  },
];

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const result = (id: JsonRpcRequest['id'], value: unknown) => ({ jsonrpc: '2.0', id: id ?? null, result: value });
const failure = (id: JsonRpcRequest['id'], code: number, message: string) => ({ jsonrpc: '2.0', id: id ?? null, error: { code, message } });
const text = (t: string) => ({ content: [{ type: 'text', text: t }] });

function identity(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of IDENTITY_HEADERS) {
    const v = req.headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function countSlowly(req: IncomingMessage, res: ServerResponse, msg: JsonRpcRequest): void {
  const n = Math.max(1, Math.min(20, Number(msg.params?.arguments?.n ?? 5) || 5));
  const token = msg.params?._meta?.progressToken;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  const event = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
  const step = () => {
    i++;
    if (token !== undefined)
      event({
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: token, progress: i, total: n, message: `counted ${i}` },
      });
    if (i >= n) {
      event(result(msg.id, text(`counted to ${n}`)));
      res.end();
      return;
    }
    timer = setTimeout(step, 300);
  };
  // A closed response stream is cancellation (MCP 2026-07-28): stop counting.
  res.on('close', () => clearTimeout(timer));
  step();
  void req;
}

function handle(req: IncomingMessage, res: ServerResponse, msg: JsonRpcRequest): void {
  const id = msg.id;
  if (id === undefined) {
    res.writeHead(202).end(); // a notification
    return;
  }
  switch (msg.method) {
    case 'initialize': {
      const asked = msg.params?.protocolVersion ?? '2025-03-26';
      const protocolVersion = SUPPORTED.includes(asked) ? asked : '2025-11-25';
      return send(
        res,
        200,
        result(id, { protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'mcp-oauth-gateway-demo', version: '1.0.0' } }),
      );
    }
    case 'server/discover':
      return send(
        res,
        200,
        result(id, {
          supportedVersions: SUPPORTED,
          capabilities: { tools: {} },
          serverInfo: { name: 'mcp-oauth-gateway-demo', version: '1.0.0' },
        }),
      );
    case 'ping':
      return send(res, 200, result(id, {}));
    case 'tools/list':
      return send(res, 200, result(id, { tools: TOOLS }));
    case 'tools/call': {
      const args = msg.params?.arguments ?? {};
      switch (msg.params?.name) {
        case 'whoami': {
          const who = identity(req);
          const summary = who['x-user-id']
            ? `You are ${who['x-user-name'] ?? who['x-user-id']} <${who['x-user-email'] ?? 'no email'}> (${who['x-user-id']}).`
            : 'No identity headers: this service is public.';
          return send(
            res,
            200,
            result(id, { content: [{ type: 'text', text: `${summary}\n${JSON.stringify(who, null, 2)}` }], structuredContent: who }),
          );
        }
        case 'echo':
          return send(res, 200, result(id, text(String(args.text ?? ''))));
        case 'add': {
          const a = Number(args.a);
          const b = Number(args.b);
          if (!Number.isFinite(a) || !Number.isFinite(b))
            return send(res, 200, result(id, { ...text('a and b must be numbers'), isError: true }));
          return send(res, 200, result(id, text(String(a + b))));
        }
        case 'count_slowly':
          return countSlowly(req, res, msg);
        default:
          return send(res, 200, failure(id, -32602, `unknown tool: ${String(msg.params?.name)}`));
      }
    }
    default:
      return send(res, 404, failure(id, -32601, `method not found: ${msg.method}`));
  }
}

/** Starts the demo server (default 127.0.0.1, port 0: any free port). */
export async function startDemoMcpServer(port = 0, host = '127.0.0.1'): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      // No standalone GET stream and no sessions to delete (the transport allows 405 for both).
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    readBody(req).then(
      (body) => {
        if (body === undefined) return send(res, 413, failure(null, -32600, 'request too large'));
        let msg: JsonRpcRequest;
        try {
          msg = JSON.parse(body) as JsonRpcRequest;
        } catch {
          return send(res, 400, failure(null, -32700, 'parse error'));
        }
        if (!msg || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.method !== 'string') {
          return send(res, 400, failure(null, -32600, 'invalid request (batches are not supported)'));
        }
        handle(req, res, msg);
      },
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  return {
    server,
    url: `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${bound}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
