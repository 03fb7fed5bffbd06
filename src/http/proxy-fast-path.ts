/**
 * The proxy's fast path: `/{id}/mcp` requests for a configured service are handed to the proxy straight
 * from node:http's `request` event, before fastify builds its request and reply objects, generates a
 * request id, routes and runs the global onRequest hooks (docs/performance.md). The proxy applies every
 * one of its own rules either way (src/proxy/index.ts); this only skips the framework in front of it.
 *
 * What the skipped hooks do for these URLs, and why skipping them changes nothing:
 * - availability guard (src/http/availability.ts): admits every proxy URL (the proxy answers storage
 *   outages itself);
 * - OAuth CORS (src/http/cors.ts): leaves at once for non-OAuth paths;
 * - the X-Forwarded-For warning and the trusted-proxy address rules: a request carrying
 *   X-Forwarded-For takes fastify's path, so both apply exactly as before.
 * Anything else takes fastify's path too: an id that is not a configured service (fastify routes it to the
 * proxy's 404, or to another route), a method the proxy does not serve (405 from the proxy through
 * fastify), a URL with percent-escapes in the id, and every request once the server is closing (fastify's
 * 503 with `Connection: close`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ProxyRequest, ProxyServe } from '../proxy/index.js';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** Methods the proxy serves (the others go through fastify, which answers them through the same proxy). */
const FAST_METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'DELETE', 'OPTIONS']);

/** The request as the proxy reads it; `ip` is the socket address (no X-Forwarded-For on this path). */
class RawProxyRequest implements ProxyRequest {
  readonly headers: IncomingMessage['headers'];
  readonly method: string;
  readonly params: { service: string };
  readonly ips = undefined;
  constructor(
    readonly raw: IncomingMessage,
    service: string,
  ) {
    this.headers = raw.headers;
    this.method = raw.method!;
    this.params = { service };
  }
  get ip(): string {
    return this.raw.socket.remoteAddress ?? '';
  }
}

/**
 * The service id of a `/{id}/mcp`, `/{id}/mcp?…` or `/{id}/mcp/…` URL when `id` is configured, else
 * undefined. No decoding: an id with escapes is not matched here (fastify decodes and routes it).
 */
export function fastPathService(url: string, ids: ReadonlySet<string>): string | undefined {
  if (url.charCodeAt(0) !== 0x2f /* / */) return undefined;
  const slash = url.indexOf('/', 1);
  if (slash < 2) return undefined;
  // "/mcp" then the end, a query or a sub-path.
  if (url.charCodeAt(slash + 1) !== 0x6d || url.charCodeAt(slash + 2) !== 0x63 || url.charCodeAt(slash + 3) !== 0x70) return undefined;
  const next = url.charCodeAt(slash + 4);
  if (!(Number.isNaN(next) || next === 0x3f /* ? */ || next === 0x2f)) return undefined;
  const id = url.slice(1, slash);
  return ids.has(id) ? id : undefined;
}

/** Puts the fast path in front of fastify's own `request` listener (call once every route is registered). */
export function installProxyFastPath(app: FastifyInstance, serve: ProxyServe, serviceIds: Iterable<string>): void {
  const ids: ReadonlySet<string> = new Set(serviceIds);
  if (ids.size === 0) return;
  const server = app.server;
  const listeners = server.listeners('request') as Listener[];
  // fastify attaches exactly one handler; anything else means a server this code does not know.
  if (listeners.length !== 1) return;
  const fastify = listeners[0]!;
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  server.removeListener('request', fastify);
  server.on('request', function proxyFastPath(req: IncomingMessage, res: ServerResponse) {
    const id = closing ? undefined : fastPathService(req.url ?? '', ids);
    if (id === undefined || !FAST_METHODS.has(req.method!) || req.headers['x-forwarded-for'] !== undefined) return fastify(req, res);
    void serve(new RawProxyRequest(req, id), res);
  });
}
