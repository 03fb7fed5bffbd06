/**
 * Real MCP backends with several tools, prompts and resources, for the tool-level authorization tests
 * (test/tools/). The same catalogue, served two ways:
 *
 * - `startCatalogBackend({ era: 'legacy' })`: SDK v1 (`McpServer` + `StreamableHTTPServerTransport`),
 *   stateful 2025-11-25 sessions, SSE responses (or JSON with `json: true`);
 * - `startCatalogBackend({ era: 'modern' })`: SDK v2 (`@modelcontextprotocol/server` 2.4.0,
 *   `createMcpHandler`), which serves 2026-07-28 (no sessions, `Mcp-Method` / `Mcp-Name` validated by the
 *   SDK itself) and falls back to stateless 2025 serving.
 *
 * Every call a tool handler runs is recorded in `called`, so a test can prove the backend never saw a call.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import { z } from 'zod';
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { createMcpHandler, McpServer as McpServerV2 } from '@modelcontextprotocol/server';

export const CATALOG = {
  tools: ['search', 'add', 'admin_reset', 'admin_stats', 'danger'],
  prompts: ['greeting', 'secret_plan'],
  resources: ['notes://public/readme', 'notes://private/keys'],
} as const;

export interface CatalogBackend {
  url: string;
  /** Tool, prompt and resource handlers that ran: `tool:add`, `prompt:greeting`, `resource:notes://…`. */
  called: string[];
  /** Raw request bodies received (POST), in order. */
  bodies: string[];
  /** Headers of every request received. */
  headers: IncomingMessage['headers'][];
  close(): Promise<void>;
}

type AnyServer = {
  registerTool: (...a: never[]) => unknown;
  registerPrompt: (...a: never[]) => unknown;
  registerResource: (...a: never[]) => unknown;
};

function register(server: AnyServer, called: string[]): void {
  const s = server as unknown as {
    registerTool(name: string, cfg: Record<string, unknown>, cb: (args: Record<string, unknown>) => unknown): void;
    registerPrompt(name: string, cfg: Record<string, unknown>, cb: () => unknown): void;
    registerResource(name: string, uri: string, cfg: Record<string, unknown>, cb: (uri: URL) => unknown): void;
  };
  const text = (t: string) => ({ content: [{ type: 'text', text: t }] });
  s.registerTool('search', { description: 'Search', inputSchema: { q: z.string() } }, async ({ q }) => {
    called.push('tool:search');
    return text(`found ${String(q)}`);
  });
  s.registerTool('add', { description: 'Add two numbers', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => {
    called.push('tool:add');
    return text(String(Number(a) + Number(b)));
  });
  for (const name of ['admin_reset', 'admin_stats', 'danger'])
    s.registerTool(name, { description: name, inputSchema: {} }, async () => {
      called.push(`tool:${name}`);
      return text(`${name} done`);
    });
  for (const name of CATALOG.prompts)
    s.registerPrompt(name, { description: name }, async () => {
      called.push(`prompt:${name}`);
      return { messages: [{ role: 'user', content: { type: 'text', text: name } }] };
    });
  for (const uri of CATALOG.resources)
    s.registerResource(uri.split('/').pop()!, uri, { mimeType: 'text/plain' }, async (u: URL) => {
      called.push(`resource:${uri}`);
      return { contents: [{ uri: u.href, text: `contents of ${uri}` }] };
    });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startCatalogBackend(options: {
  era: 'legacy' | 'modern';
  json?: boolean;
  cleanup?: boolean;
}): Promise<CatalogBackend> {
  const called: string[] = [];
  const bodies: string[] = [];
  const seen: IncomingMessage['headers'][] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const modern =
    options.era === 'modern'
      ? createMcpHandler(
          () => {
            const server = new McpServerV2({ name: 'catalog-v2', version: '1.0.0' });
            register(server as unknown as AnyServer, called);
            return server;
          },
          { legacy: 'stateless', responseMode: options.json ? 'json' : 'sse' },
        )
      : undefined;

  async function legacy(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const sessionId = req.headers['mcp-session-id'] as string | undefined;
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId || req.method !== 'POST' || !(isInitializeRequest(body) || (Array.isArray(body) && body.some(isInitializeRequest)))) {
        res.writeHead(sessionId ? 404 : 400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'No valid session' } }));
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
      const server = new McpServerV1({ name: 'catalog-v1', version: '1.0.0' });
      register(server as unknown as AnyServer, called);
      await server.connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res, body);
  }

  async function viaFetch(req: IncomingMessage, res: ServerResponse, raw: Buffer): Promise<void> {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
      method: req.method,
      headers,
      body: req.method === 'POST' ? new Uint8Array(raw) : undefined,
    });
    const response = await modern!.fetch(request);
    const out: Record<string, string> = {};
    response.headers.forEach((v, k) => (out[k] = v));
    res.writeHead(response.status, out);
    if (response.body) for await (const chunk of response.body) res.write(chunk);
    res.end();
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      seen.push(req.headers);
      const raw = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0);
      if (req.method === 'POST') bodies.push(raw.toString('utf8'));
      if (modern) return viaFetch(req, res, raw);
      return legacy(req, res, raw.length ? JSON.parse(raw.toString('utf8')) : undefined);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const backend: CatalogBackend = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    called,
    bodies,
    headers: seen,
    async close() {
      await Promise.allSettled([...transports.values()].map((t) => t.close()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  if (options.cleanup !== false) onTestFinished(() => backend.close());
  return backend;
}
