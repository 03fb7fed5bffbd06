/**
 * Real backends for proxy tests, on 127.0.0.1:0.
 *
 * - `startMcpBackend`: an MCP server built with the official SDK (`McpServer` +
 *   `StreamableHTTPServerTransport`), stateful sessions, SSE or JSON responses, with the tools `whoami`
 *   (the identity and forwarding headers it received), `echo` and `progress` (N progress notifications
 *   spaced in time; each send is logged so tests can check it was relayed before the next one); with
 *   `upstreamApi`, also `upstream_whoami`: calls that API with the upstream token it received
 *   (`upstreamHeader`, default `authorization`), as a backend acting as the user does, and reports both.
 * - `startEchoBackend`: a raw node:http server that records exactly what it received (method, path,
 *   query, headers, body hash) and answers through a per-test function (custom status, headers, gzip,
 *   large bodies, slow or never-sent headers, never-ending SSE).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

/** Headers the `whoami` tool reports. */
export const REPORTED_HEADERS = [
  'x-user-id',
  'x-user-email',
  'x-user-name',
  'x-user-provider',
  'x-user-avatar',
  'x-user-groups',
  'x-user-kind',
  'x-user-assertion',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'authorization',
  'cookie',
] as const;

export interface McpBackend {
  url: string;
  /** Every HTTP request the backend received: method and session id. */
  requests: Array<{ method: string; sessionId: string | undefined; headers: IncomingMessage['headers'] }>;
  /** Ordered log shared with tests: the backend pushes `sent:<n>` when it sends progress n. */
  log: string[];
  close(): Promise<void>;
}

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function buildMcpServer(log: string[], upstream?: { api: string; header: string }): McpServer {
  const server = new McpServer({ name: 'test-backend', version: '1.0.0' }, { capabilities: { logging: {} } });
  if (upstream) {
    server.registerTool('upstream_whoami', { description: 'Calls the upstream API as the user', inputSchema: {} }, async (_args, extra) => {
      const received = extra.requestInfo?.headers?.[upstream.header];
      const value = Array.isArray(received) ? received[0] : received;
      const authorization = value === undefined ? undefined : upstream.header === 'authorization' ? value : `Bearer ${value}`;
      const res = await fetch(upstream.api, { headers: authorization ? { authorization } : {} });
      const text = JSON.stringify({ received: value ?? null, status: res.status, api: await res.json() });
      return { content: [{ type: 'text', text }] };
    });
  }
  server.registerTool('whoami', { description: 'Identity headers received', inputSchema: {} }, async (_args, extra) => {
    const h = extra.requestInfo?.headers ?? {};
    const seen: Record<string, unknown> = {};
    for (const name of REPORTED_HEADERS) if (h[name] !== undefined) seen[name] = h[name];
    return { content: [{ type: 'text', text: JSON.stringify(seen) }] };
  });
  server.registerTool('echo', { description: 'Echo', inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  server.registerTool(
    'progress',
    { description: 'Sends progress notifications', inputSchema: { count: z.number().int(), intervalMs: z.number().int() } },
    async ({ count, intervalMs }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= count; i++) {
        if (i > 1) await new Promise((r) => setTimeout(r, intervalMs));
        log.push(`sent:${i}`);
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: count, message: String(Date.now()) },
          });
        }
      }
      return { content: [{ type: 'text', text: `done ${count}` }] };
    },
  );
  return server;
}

/**
 * Starts an SDK MCP backend at `http://127.0.0.1:<port>/mcp`, on a free port unless `port` is given (a
 * configuration file names the backend's port, e.g. the seed fixtures' `CALC_PORT`).
 */
export async function startMcpBackend(
  options: {
    json?: boolean;
    cleanup?: boolean;
    port?: number;
    upstreamApi?: string;
    upstreamHeader?: string;
    /**
     * An OAuth-protected MCP server (MCP authorization): RFC 9728 metadata naming this authorization server,
     * and every MCP request needs a bearer token that the server's `/api/whoami` accepts for this URL
     * (RFC 8707 audience), else 401 with `WWW-Authenticate: Bearer resource_metadata=…`.
     */
    protectedBy?: string;
  } = {},
): Promise<McpBackend> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const requests: McpBackend['requests'] = [];
  const log: string[] = [];
  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sessionId = req.headers['mcp-session-id'] as string | undefined;
    requests.push({ method: req.method ?? '', sessionId, headers: req.headers });
    if (options.protectedBy) {
      const self = `http://127.0.0.1:${port}/mcp`;
      if (req.url === '/.well-known/oauth-protected-resource/mcp') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ resource: self, authorization_servers: [options.protectedBy] }));
      }
      const check = req.headers.authorization
        ? await fetch(`${options.protectedBy}/api/whoami`, { headers: { authorization: req.headers.authorization } })
        : undefined;
      const seen = check?.ok ? ((await check.json()) as { resource?: string }) : undefined;
      if (seen?.resource !== self) {
        res.writeHead(401, {
          'www-authenticate': `Bearer resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"`,
        });
        return void res.end();
      }
    }
    if (!req.url?.startsWith('/mcp')) {
      res.writeHead(404).end();
      return;
    }
    let body: unknown;
    if (req.method === 'POST') {
      const raw = await readBody(req);
      body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
    }
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId || req.method !== 'POST' || !isInitializeRequest(body)) {
        res.writeHead(sessionId ? 404 : 400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: null,
            error: {
              code: sessionId ? -32001 : -32000,
              message: sessionId ? 'Session not found' : 'Bad Request: No valid session ID provided',
            },
          }),
        );
        return;
      }
      const t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: Boolean(options.json),
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      t.onclose = () => {
        if (t.sessionId) transports.delete(t.sessionId);
      };
      const upstream = options.upstreamApi ? { api: options.upstreamApi, header: options.upstreamHeader ?? 'authorization' } : undefined;
      await buildMcpServer(log, upstream).connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res, body);
  }
  // Assigned before the first request can arrive (the handler reads it for the protected variant).
  let port = 0;
  port = await listen(server, options.port);
  const backend: McpBackend = {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    log,
    async close() {
      await Promise.allSettled([...transports.values()].map((t) => t.close()));
      await closeServer(server);
    },
  };
  if (options.cleanup !== false) onTestFinished(() => backend.close());
  return backend;
}

export interface RecordedRequest {
  method: string;
  /** Raw request target: path and query exactly as received. */
  url: string;
  headers: IncomingMessage['headers'];
  /** Raw header list as sent on the wire: [name, value, name, value, …]. */
  rawHeaders: string[];
  bodyLength: number;
  bodySha256: string;
  body: Buffer;
  /** Set when the backend saw the connection or request close before the response finished. */
  closedEarly: boolean;
}

export interface EchoBackend {
  url: string;
  origin: string;
  received: RecordedRequest[];
  /** Resolves at the next request's arrival (headers received; body may still be streaming). */
  nextRequest(): Promise<{ req: IncomingMessage; res: ServerResponse }>;
  /** Resolves when the response of the latest request was closed before it finished (client gone). */
  closed: Promise<void>;
  close(): Promise<void>;
}

/**
 * A raw backend. `respond` decides the answer (default: 200 JSON describing the request). The request
 * body is read (and hashed) before `respond` runs unless `respond.streaming` is set, in which case
 * `respond` gets the request immediately and `rec.body` stays empty.
 */
export async function startEchoBackend(
  respond?: ((req: IncomingMessage, res: ServerResponse, rec: RecordedRequest) => void | Promise<void>) & { streaming?: boolean },
  options: { path?: string; cleanup?: boolean } = {},
): Promise<EchoBackend> {
  const received: RecordedRequest[] = [];
  const waiters: Array<(v: { req: IncomingMessage; res: ServerResponse }) => void> = [];
  let closedResolve: () => void = () => {};
  const backend = {} as EchoBackend;
  const resetClosed = () => {
    backend.closed = new Promise<void>((r) => (closedResolve = r));
  };
  resetClosed();
  const server = createServer((req, res) => {
    const rec: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyLength: 0,
      bodySha256: '',
      body: Buffer.alloc(0),
      closedEarly: false,
    };
    received.push(rec);
    res.on('close', () => {
      if (!res.writableFinished) {
        rec.closedEarly = true;
        closedResolve();
      }
    });
    waiters.shift()?.({ req, res });
    void (async () => {
      if (!respond?.streaming) {
        const hash = createHash('sha256');
        const chunks: Buffer[] = [];
        for await (const c of req) {
          hash.update(c as Buffer);
          rec.bodyLength += (c as Buffer).length;
          if (rec.bodyLength <= 1024 * 1024) chunks.push(c as Buffer);
        }
        rec.body = Buffer.concat(chunks);
        rec.bodySha256 = hash.digest('hex');
      }
      if (respond) await respond(req, res, rec);
      else {
        const out = JSON.stringify({
          method: rec.method,
          url: rec.url,
          headers: rec.headers,
          bodyLength: rec.bodyLength,
          bodySha256: rec.bodySha256,
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(out);
      }
    })().catch(() => res.destroy());
  });
  const port = await listen(server);
  backend.url = `http://127.0.0.1:${port}${options.path ?? '/mcp'}`;
  backend.origin = `http://127.0.0.1:${port}`;
  backend.received = received;
  backend.nextRequest = () => new Promise((r) => waiters.push(r));
  backend.close = () => closeServer(server);
  if (options.cleanup !== false) onTestFinished(() => backend.close());
  return backend;
}
