/**
 * The Streamable HTTP side of a local (stdio) service, both protocol eras (docs/stdio.md):
 *
 * - legacy (2025-03-26 … 2025-11-25): `initialize` opens a session (`Mcp-Session-Id`, bound to the user
 *   who opened it), every later request carries it; GET opens the session's stream for server messages;
 *   DELETE ends the session.
 * - 2026-07-28: no sessions; every POST stands alone (`MCP-Protocol-Version` names the era); GET and
 *   DELETE are 405; closing the response is cancellation.
 *
 * A request's answer is JSON unless a related message (progress, a server request) comes first and the
 * client accepts `text/event-stream`: then the response becomes an SSE stream that ends with the answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LocalExchange } from '../proxy/index.js';
import { proxyError, sendProxyError, type ProxyError } from '../proxy/respond.js';
import { mirroredHeaderProblem } from './headers.js';
import type { StdioServices } from './index.js';
import type { Call, Era, LocalProcess, Session } from './process.js';

/** The protocol versions of the legacy (session) era; anything else named in the header is 2026-07-28 or later. */
const LEGACY_VERSIONS: ReadonlySet<string> = new Set(['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']);
/** `_meta` key of the 2026-07-28 per-request envelope. */
const ENVELOPE_VERSION = 'io.modelcontextprotocol/protocolVersion';
/** Progress notifications are dropped, never queued without end, while the client reads slower than this. */
const SSE_BACKLOG_BYTES = 1024 * 1024;

const E = {
  method: proxyError('GW_ERR_METHOD_NOT_ALLOWED'),
  mediaType: proxyError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', { description: 'MCP messages are sent as application/json' }),
  tooLarge: proxyError('GW_ERR_BODY_TOO_LARGE'),
  json: proxyError('GW_ERR_BAD_REQUEST', { description: 'The body is not valid JSON' }),
  message: proxyError('GW_ERR_BAD_REQUEST', { description: 'The body is not a JSON-RPC 2.0 request, notification or response' }),
  batch: proxyError('GW_ERR_BAD_REQUEST', { description: 'JSON-RPC batches are not supported: send one message per request' }),
  sessionRequired: proxyError('GW_ERR_BAD_REQUEST', { description: 'Mcp-Session-Id header is required (send initialize first)' }),
  modernResponse: proxyError('GW_ERR_BAD_REQUEST', { description: 'Clients must not send responses in protocol version 2026-07-28' }),
  session: proxyError('GW_ERR_SESSION_UNKNOWN'),
  elsewhere: proxyError('GW_ERR_STDIO_SESSION_ELSEWHERE'),
};

type Kind = 'request' | 'notification' | 'response';

export async function handleExchange(m: StdioServices, ex: LocalExchange): Promise<void> {
  const { req } = ex;
  const sessionId = header(req, 'mcp-session-id');
  if (req.method === 'GET' || req.method === 'DELETE') {
    // 2026-07-28 has neither; legacy needs the session they act on.
    if (sessionId === undefined) return reply(m, ex, E.method, false);
    const found = await m.findSession(ex.serviceId, sessionId, ex.user?.id);
    if (typeof found === 'string') return reply(m, ex, found === 'elsewhere' ? E.elsewhere : E.session, false);
    if (req.method === 'DELETE') {
      await m.endSession(ex.serviceId, found);
      count(m, ex, 204);
      ex.res.writeHead(204, { ...ex.cors });
      ex.res.end();
      return;
    }
    return openSessionStream(m, ex, found);
  }
  if (req.method !== 'POST') return reply(m, ex, E.method, false);
  if (!(header(req, 'content-type') ?? '').includes('json')) return reply(m, ex, E.mediaType, false);

  const body = ex.body ?? (await readBody(req, ex.maxRequestBytes));
  if (body === 'too_large') return reply(m, ex, E.tooLarge, true);
  if (body === 'aborted') return;
  let msg: unknown;
  try {
    msg = JSON.parse(body.toString('utf8'));
  } catch {
    return reply(m, ex, E.json, true);
  }
  if (Array.isArray(msg)) return reply(m, ex, E.batch, true);
  const kind = classify(msg);
  if (kind === undefined) return reply(m, ex, E.message, true);
  const message = msg as Record<string, unknown>;

  const era: Era = isModern(header(req, 'mcp-protocol-version'), message) ? 'modern' : 'legacy';
  let session: Session | undefined;
  let proc: LocalProcess;
  if (era === 'legacy') {
    if (sessionId !== undefined) {
      const found = await m.findSession(ex.serviceId, sessionId, ex.user?.id);
      if (typeof found === 'string') return reply(m, ex, found === 'elsewhere' ? E.elsewhere : E.session, true);
      session = found;
      proc = found.process;
    } else if (kind === 'request' && message.method === 'initialize') {
      const p = m.processFor(ex.serviceId, 'legacy', ex.user, ex);
      if (!('key' in p)) return reply(m, ex, p, true);
      proc = p;
      session = await m.createSession(ex.serviceId, p, ex.user?.id);
    } else return reply(m, ex, E.sessionRequired, true);
  } else {
    if (kind === 'response') return reply(m, ex, E.modernResponse, true);
    const problem = mirroredHeaderProblem(req, message, kind === 'request');
    if (problem !== undefined)
      return reply(m, ex, proxyError('GW_ERR_HEADER_MISMATCH', { description: `Header mismatch: ${problem}` }), true);
    const p = m.processFor(ex.serviceId, 'modern', ex.user, ex);
    if (!('key' in p)) return reply(m, ex, p, true);
    proc = p;
  }

  if (kind === 'notification') {
    // 2026-07-28: cancellation is closing the request's stream; the notification has no request to name.
    if (era === 'legacy' || message.method !== 'notifications/cancelled') proc.notify(message, session);
    return accepted(m, ex, session);
  }
  if (kind === 'response') {
    proc.respond(message, session);
    return accepted(m, ex, session);
  }
  const call = new HttpCall(m, ex, message.id as string | number, session, era, message.method as string);
  if (era === 'modern') ex.res.once('close', () => call.answered || call.cancelled(proc));
  await proc.request(call, message);
}

/** 2026-07-28 when the header names a version outside the legacy era, or the body carries the per-request envelope. */
function isModern(version: string | undefined, msg: Record<string, unknown>): boolean {
  const params = msg.params as { _meta?: Record<string, unknown> } | undefined;
  const claimed = params !== null && typeof params === 'object' && typeof params._meta?.[ENVELOPE_VERSION] === 'string';
  if (msg.method === 'initialize' && !claimed) return false;
  return claimed || (version !== undefined && !LEGACY_VERSIONS.has(version));
}

function classify(msg: unknown): Kind | undefined {
  if (msg === null || typeof msg !== 'object') return undefined;
  const m = msg as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return undefined;
  const id = m.id;
  const validId = typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
  if (typeof m.method === 'string') {
    if (id === undefined) return 'notification';
    return validId ? 'request' : undefined;
  }
  if (validId && ('result' in m || 'error' in m)) return 'response';
  return undefined;
}

/** One HTTP request waiting for its JSON-RPC answer: JSON, or SSE once a related message comes first. */
class HttpCall implements Call {
  progressToken: string | number | undefined;
  answered = false;
  #sse = false;
  readonly #res: ServerResponse;
  readonly #acceptsSse: boolean;
  readonly #headers: Record<string, string>;

  constructor(
    private readonly m: StdioServices,
    private readonly ex: LocalExchange,
    readonly clientId: string | number,
    readonly session: Session | undefined,
    private readonly era: Era,
    private readonly method: string,
  ) {
    this.#res = ex.res;
    this.#acceptsSse = (header(ex.req, 'accept') ?? '').includes('text/event-stream');
    this.#headers = {
      ...ex.cors,
      ...(session ? { 'mcp-session-id': session.id } : {}),
      // Answers filtered for this user (tool rules) must not be cached for anyone else.
      ...(ex.filterAnswer ? { 'cache-control': 'private' } : {}),
    };
  }

  get closed(): boolean {
    return this.answered || this.#res.destroyed || this.#res.writableEnded;
  }

  /**
   * The client closed the request before its answer (2026-07-28: cancellation). The server is told; the
   * response is destroyed, since a client that only half-closed would otherwise keep its socket open.
   */
  cancelled(proc: LocalProcess): void {
    this.answered = true;
    proc.cancel(this);
    if (!this.#res.writableEnded) this.#res.destroy();
  }

  deliver(msg: Record<string, unknown>): boolean {
    if (!this.#acceptsSse || this.closed) return false;
    if (!this.#sse) {
      this.#sse = true;
      count(this.m, this.ex, 200);
      this.#res.writeHead(200, {
        ...this.#headers,
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      });
    } else if (this.#res.writableLength > SSE_BACKLOG_BYTES && msg.method === 'notifications/progress') return true;
    this.#res.write(`event: message\ndata: ${JSON.stringify(msg)}\n\n`);
    return true;
  }

  finish(answer: Record<string, unknown>): void {
    if (this.closed) return;
    this.answered = true;
    const msg = this.ex.filterAnswer ? this.ex.filterAnswer(this.method, answer) : answer;
    const text = JSON.stringify(msg);
    if (this.#sse) {
      this.#res.end(`event: message\ndata: ${text}\n\n`);
      return;
    }
    const status = this.era === 'modern' ? modernStatus(msg) : 200;
    count(this.m, this.ex, status);
    this.#res.writeHead(status, { ...this.#headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    this.#res.end(text);
  }

  fail(err: ProxyError): void {
    if (this.closed) return;
    this.answered = true;
    // The request's own id: the client's pending request ends with this error instead of waiting.
    const text = JSON.stringify({
      jsonrpc: '2.0',
      id: this.clientId,
      error: { code: err.rpcCode, message: err.description, data: { error: err.error } },
    });
    if (this.#sse) {
      this.#res.end(`event: message\ndata: ${text}\n\n`);
      return;
    }
    count(this.m, this.ex, err.status);
    this.#res.writeHead(err.status, {
      ...this.#headers,
      ...err.headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    this.#res.end(text);
  }
}

/**
 * MCP 2026-07-28 Streamable HTTP: an unknown method is 404 with -32601 and an unsupported version 400
 * with -32022 (dual-era clients read these to tell the era); every other answer is 200.
 */
function modernStatus(msg: Record<string, unknown>): number {
  const code = (msg.error as { code?: unknown } | undefined)?.code;
  if (code === -32601) return 404;
  if (code === -32022) return 400;
  return 200;
}

/** Legacy GET: the session's stream for server messages outside any request (one at a time; a new one replaces it). */
function openSessionStream(m: StdioServices, ex: LocalExchange, session: Session): void {
  if (!(header(ex.req, 'accept') ?? '').includes('text/event-stream')) return reply(m, ex, E.method, false);
  const res = ex.res;
  count(m, ex, 200);
  res.writeHead(200, {
    ...ex.cors,
    'mcp-session-id': session.id,
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  const stream = {
    deliver(msg: Record<string, unknown>): boolean {
      if (res.destroyed || res.writableEnded) return false;
      if (res.writableLength > SSE_BACKLOG_BYTES && msg.id === undefined) return true;
      res.write(`event: message\ndata: ${JSON.stringify(msg)}\n\n`);
      return true;
    },
    close(): void {
      if (!res.writableEnded) res.end();
    },
  };
  session.stream?.close();
  session.stream = stream;
  res.once('close', () => {
    if (session.stream === stream) session.stream = undefined;
    if (!res.writableEnded) res.destroy();
  });
}

function accepted(m: StdioServices, ex: LocalExchange, session: Session | undefined): void {
  count(m, ex, 202);
  ex.res.writeHead(202, { ...ex.cors, ...(session ? { 'mcp-session-id': session.id } : {}) });
  ex.res.end();
}

function reply(m: StdioServices, ex: LocalExchange, err: ProxyError, jsonRpc: boolean): void {
  count(m, ex, err.status);
  sendProxyError(ex.res, jsonRpc, err, ex.cors);
}

function count(m: StdioServices, ex: LocalExchange, status: number): void {
  m.metrics.proxyRequests.labels(ex.serviceId, String(status)).inc();
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : undefined;
}

/** The request body, at most `max` bytes (the declared length is checked before reading). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large' | 'aborted'> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > max) return Promise.resolve('too_large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        resolve('too_large');
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', () => resolve('aborted'));
    req.once('aborted', () => resolve('aborted'));
  });
}
