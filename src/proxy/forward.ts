/**
 * `forward` → `relayResponse`: one backend exchange over undici, streamed both ways.
 *
 * - Request body: the client's stream goes to undici as is (a byte counter is inserted only for chunked
 *   bodies; a declared Content-Length is checked up front and enforced by Node's parser).
 * - Response: status and filtered headers are written as soon as the backend sends them; the body is
 *   piped with backpressure, each chunk written as it arrives (SSE events are never buffered).
 * - Timeouts: the service `timeout` bounds the wait for response headers only (`headersTimeout`);
 *   `bodyTimeout: 0` lets long-lived streams stay open.
 * - Cancellation: the backend request is aborted when the client's response closes before it finished
 *   (stack-notes §4.5: the response's `close` + `writableFinished`, never the request's `close`). MCP
 *   2026-07-28: closing the SSE response stream MUST be treated as cancellation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, Transform, type TransformCallback, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { GatewayContext } from '../context.js';
import { buildResponseHeaders } from './headers.js';
import type { ProxyError } from './respond.js';
import { RPC } from './respond.js';
import { countStatus, type ServiceState } from './service-state.js';

/** Inserted in front of chunked request bodies: fails the upload once it exceeds the limit. */
class ByteLimit extends Transform {
  seen = 0;
  exceeded = false;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) {
      this.exceeded = true;
      cb(Object.assign(new Error('request body too large'), { code: 'GW_ERR_BODY_TOO_LARGE' }));
      return;
    }
    cb(null, chunk);
  }
}

export const BODY_TOO_LARGE: ProxyError = { status: 413, error: 'request_too_large', description: 'Request body too large', rpcCode: RPC.INVALID_REQUEST };

/** Maps an undici/network failure (by `err.code`, never instanceof: two undici copies exist) to an answer. */
export function upstreamFailure(err: unknown): { kind: 'timeout' | 'unreachable' | 'bad_request' | 'error'; error: ProxyError } {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return { kind: 'timeout', error: { status: 504, error: 'gw_err_upstream_timeout', description: 'The MCP service did not answer in time', rpcCode: RPC.GATEWAY } };
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INVALID_ARG':
      return { kind: 'bad_request', error: { status: 400, error: 'invalid_request', description: 'The request could not be forwarded', rpcCode: RPC.INVALID_REQUEST } };
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ECONNREFUSED':
    case 'ECONNRESET':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return { kind: 'unreachable', error: { status: 502, error: 'gw_err_upstream_unreachable', description: 'The MCP service is unreachable', rpcCode: RPC.GATEWAY } };
    default:
      return { kind: 'error', error: { status: 502, error: 'gw_err_upstream_unreachable', description: 'The MCP service failed to answer', rpcCode: RPC.GATEWAY } };
  }
}

export interface ForwardInput {
  state: ServiceState;
  req: IncomingMessage;
  res: ServerResponse;
  method: Dispatcher.HttpMethod;
  path: string;
  headers: Record<string, string>;
  /** Whether the client request has a body (Content-Length > 0 or chunked). */
  hasBody: boolean;
  chunked: boolean;
  started: number;
  /** CORS headers for the client's origin, if any. */
  cors: Record<string, string> | undefined;
  /** Runs once response headers are known and before they are written (session binding). */
  beforeRelay?: ((status: number, headers: Record<string, string | string[] | undefined>) => Promise<void> | void) | undefined;
  /** Writes a gateway error (the caller's error writer, with JSON-RPC detection). */
  fail(error: ProxyError): void;
}

/**
 * Runs the exchange. The caller has already counted the request into `state.inFlight`; this function
 * releases it when the client response closes, whatever happened.
 */
export async function forward(ctx: GatewayContext, f: ForwardInput): Promise<void> {
  const { state, res } = f;
  const ac = new AbortController();
  let streaming = false;
  let status = 0;
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
    state.inFlight--;
    if (streaming) state.metrics.streams.dec();
    state.metrics.duration.observe((performance.now() - f.started) / 1000);
    if (status !== 0) countStatus(ctx, state, status);
  });

  let body: Readable | undefined;
  let limiter: ByteLimit | undefined;
  if (f.hasBody) {
    if (f.chunked) {
      limiter = new ByteLimit(state.maxRequestBytes);
      const counted = limiter;
      // Not `pipeline`: on overflow it would destroy the client request (and its socket) before the 413.
      f.req.once('error', (err) => counted.destroy(err));
      f.req.pipe(counted);
      body = counted;
    } else {
      body = f.req;
    }
  }

  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await state.pool.request({
      path: f.path,
      method: f.method,
      headers: f.headers,
      body,
      signal: ac.signal,
      headersTimeout: state.timeoutMs,
      bodyTimeout: 0,
    });
  } catch (err) {
    if (ac.signal.aborted || res.destroyed) {
      ctx.metrics.upstreamErrors.inc({ service: state.id, kind: 'aborted' });
      return;
    }
    if (limiter?.exceeded) {
      status = 413;
      f.fail(BODY_TOO_LARGE);
      return;
    }
    const failure = upstreamFailure(err);
    ctx.metrics.upstreamErrors.inc({ service: state.id, kind: failure.kind });
    // Logged with the service id and the error code only: no URL, no headers, no token.
    ctx.log.warn({ service: state.id, code: (err as { code?: unknown })?.code, kind: failure.kind }, 'proxy: backend request failed');
    status = failure.error.status;
    f.fail(failure.error);
    return;
  }

  state.metrics.ttfb.observe((performance.now() - f.started) / 1000);
  status = upstream.statusCode;
  if (f.beforeRelay) {
    try {
      await f.beforeRelay(upstream.statusCode, upstream.headers);
    } catch (err) {
      ctx.log.error({ service: state.id, err: { message: (err as Error)?.message } }, 'proxy: session binding failed');
    }
  }
  relayResponse(ctx, f, upstream, () => {
    streaming = true;
    state.metrics.streams.inc();
  });
}

/** Writes status + filtered headers, then pipes the body with backpressure. */
function relayResponse(ctx: GatewayContext, f: ForwardInput, upstream: Dispatcher.ResponseData, onStreaming: () => void): void {
  const { res, state } = f;
  if (res.destroyed) {
    upstream.body.destroy();
    return;
  }
  const headers = buildResponseHeaders(upstream.headers, state.allowSetCookie);
  const contentType = upstream.headers['content-type'];
  const sse = typeof contentType === 'string' && contentType.startsWith('text/event-stream');
  // MCP 2026-07-28: servers SHOULD send X-Accel-Buffering: no, so that nginx-like hops do not buffer SSE.
  if (sse) headers['x-accel-buffering'] = 'no';
  if (f.cors) {
    const vary = headers.vary;
    Object.assign(headers, f.cors);
    if (vary !== undefined) headers.vary = `${Array.isArray(vary) ? vary.join(', ') : vary}, Origin`;
  }
  try {
    res.writeHead(upstream.statusCode, headers);
  } catch (err) {
    // A header value Node refuses (should not happen: undici parsed it): never a 500 with partial output.
    ctx.log.error({ service: state.id, err: { message: (err as Error)?.message } }, 'proxy: invalid backend response headers');
    upstream.body.destroy();
    f.fail({ status: 502, error: 'gw_err_upstream_unreachable', description: 'The MCP service sent an invalid response', rpcCode: RPC.GATEWAY });
    return;
  }
  if (sse) res.flushHeaders();
  onStreaming();
  pipeline(upstream.body, res, (err) => {
    if (err && !res.writableFinished && (err as { code?: string }).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      ctx.metrics.upstreamErrors.inc({ service: state.id, kind: 'aborted' });
    }
  });
}
