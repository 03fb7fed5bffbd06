/**
 * `forward` → `RelayHandler`: one backend exchange over undici `dispatch`, streamed both ways.
 *
 * - Request body: the client's stream goes to undici as is (a byte counter is inserted only for chunked
 *   bodies; a declared Content-Length is checked up front and enforced by Node's parser). Bodies of at
 *   most 64 KiB with a declared length are gathered first and sent in one write.
 * - Response: status and filtered headers are written as soon as the backend sends them; the body is
 *   piped with backpressure, each chunk written as it arrives (SSE events are never buffered).
 * - Timeouts: the service `timeout` bounds the wait for response headers only (`headersTimeout`);
 *   `bodyTimeout: 0` lets long-lived streams stay open.
 * - Cancellation: the backend request is aborted when the client's response closes before it finished
 *   (the response's `close` + `writableFinished`, never the request's `close`, which fires once the body is read). MCP
 *   2026-07-28: closing the SSE response stream MUST be treated as cancellation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { GatewayContext } from '../context.js';
import { buildResponseHeaders } from './headers.js';
import { publicLocation } from './path.js';
import { proxyError, sendProxyError, type ProxyError } from './respond.js';
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

/** A backend `Location` on the backend's own origin outside the service's path (P8 in docs/security.md). */
const INTERNAL_LOCATION = proxyError('GW_ERR_UPSTREAM_UNREACHABLE', {
  description: 'The MCP service redirected to an address this gateway does not publish',
});
const INVALID_RESPONSE = proxyError('GW_ERR_UPSTREAM_UNREACHABLE', { description: 'The MCP service sent an invalid response' });

export const BODY_TOO_LARGE = proxyError('GW_ERR_BODY_TOO_LARGE');

/** Backend failures, preallocated (src/errors.ts): a failing backend costs no allocation per request. */
const FAILURES = {
  timeout: { kind: 'timeout', error: proxyError('GW_ERR_UPSTREAM_TIMEOUT') },
  bad_request: { kind: 'bad_request', error: proxyError('GW_ERR_BAD_REQUEST', { description: 'The request could not be forwarded' }) },
  unreachable: { kind: 'unreachable', error: proxyError('GW_ERR_UPSTREAM_UNREACHABLE') },
  error: { kind: 'error', error: proxyError('GW_ERR_UPSTREAM_UNREACHABLE', { description: 'The MCP service failed to answer' }) },
} as const satisfies Record<string, { kind: string; error: ProxyError }>;

/** Maps an undici/network failure (by `err.code`, never instanceof: two undici copies exist) to an answer. */
export function upstreamFailure(err: unknown): { kind: 'timeout' | 'unreachable' | 'bad_request' | 'error'; error: ProxyError } {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return FAILURES.timeout;
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INVALID_ARG':
      return FAILURES.bad_request;
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ECONNREFUSED':
    case 'ECONNRESET':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return FAILURES.unreachable;
    default:
      return FAILURES.error;
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
  /** The declared Content-Length (0 when absent or chunked). */
  contentLength: number;
  chunked: boolean;
  started: number;
  /** CORS headers for the client's origin, if any. */
  cors: Record<string, string> | undefined;
  /** Whether the client speaks JSON-RPC here: the shape of the gateway's own errors. */
  jsonRpc: boolean;
  /** The authenticated user, for the bookkeeping after the backend answered (undefined on a public service). */
  userId: string | undefined;
  /** The Mcp-Session-Id the client sent. */
  sessionId: string | undefined;
  /** Runs once response headers are known (see RelayCheck); undefined: nothing to do. */
  relayCheck: RelayCheck | undefined;
  /** The request body, already read (services with tool rules: tool-calls.ts); sent as is, with its length. */
  body?: Buffer | undefined;
  /** Rewrites the response (list filtering on services with tool rules: list-filter.ts). */
  rewrite?: ResponseRewrite | undefined;
}

/**
 * The proxy's check on the backend's response headers, called once they are known: a promise when it has
 * async work (session binding) that must finish before the headers are written, or undefined when there
 * is nothing to do (the common case). The promise resolves to a refusal when the response must not reach
 * the client (the binding of a new session could not be written: fail closed); the client then gets that
 * error instead. An object, not a closure: nothing is allocated per request for it.
 */
export interface RelayCheck {
  beforeRelay(
    f: ForwardInput,
    status: number,
    headers: Record<string, string | string[] | undefined>,
  ): Promise<ProxyError | undefined> | undefined;
}

/** Writes a gateway error instead of the backend's answer (JSON-RPC shaped when the client speaks it). */
function fail(f: ForwardInput, error: ProxyError): void {
  sendProxyError(f.res, f.jsonRpc, error, f.cors);
}

/** A response body rewriter (list-filter.ts); only services with tool rules have one. */
export interface ResponseRewrite {
  /** Edits the headers before they are written; returns the status to send. */
  head(status: number, headers: Record<string, string | string[]>): number;
  /** What to write for a backend chunk (undefined: nothing yet). May throw: the response is then cut. */
  data(chunk: Buffer): string | Buffer | undefined;
  /** What to write before the end. May throw: the response is then cut. */
  end(): string | Buffer | undefined;
}

/**
 * Runs the exchange. The caller has already counted the request into `state.inFlight`; this function
 * releases it when the client response closes, whatever happened.
 *
 * Hot path: undici's low-level `dispatch` with a handler that writes straight into the client response
 * (no AbortController, no response Readable, no `stream.pipeline` per request: each of those allocates,
 * and pipeline's internal abort creates a DOMException with a stack trace on every finished request).
 */
export function forward(ctx: GatewayContext, f: ForwardInput): void {
  const { state, res } = f;
  const relay = new RelayHandler(ctx, f);
  // One shared listener (a response closes once): no closure and no `once` wrapper per request.
  (res as RelayedResponse)[RELAY] = relay;
  res.on('close', onResponseClose);

  if (f.body !== undefined) {
    f.headers['content-length'] = String(f.body.length);
    return dispatch(f, relay, f.body);
  }
  if (!f.hasBody) return dispatch(f, relay, null);
  if (f.chunked) {
    const limiter = new ByteLimit(state.maxRequestBytes);
    relay.limiter = limiter;
    // Not `pipeline`: on overflow it would destroy the client request (and its socket) before the 413.
    f.req.once('error', (err) => limiter.destroy(err));
    f.req.pipe(limiter);
    return dispatch(f, relay, limiter);
  }
  if (f.contentLength <= SMALL_BODY) {
    // A small body of declared length (a typical JSON-RPC message, usually one TCP segment) is gathered
    // first, so undici sends headers and body in one write: measured ~30% more throughput than streaming
    // it (docs/performance.md). Anything larger streams through untouched.
    readSmallBody(f.req, f.contentLength, (body) => {
      if (relay.clientGone) return;
      dispatch(f, relay, body);
    });
    return;
  }
  dispatch(f, relay, f.req);
}

const RELAY = Symbol('relay');
type RelayedResponse = ServerResponse & { [RELAY]?: RelayHandler };

function onResponseClose(this: ServerResponse): void {
  (this as RelayedResponse)[RELAY]?.onClientClose();
}

/** Bodies up to this size (declared by Content-Length) are gathered before dispatch. */
const SMALL_BODY = 64 * 1024;

function dispatch(f: ForwardInput, relay: RelayHandler, body: Readable | Buffer | null): void {
  f.state.pool.dispatch(
    { origin: f.state.origin, path: f.path, method: f.method, headers: f.headers, body, headersTimeout: f.state.timeoutMs, bodyTimeout: 0 },
    relay,
  );
}

/** Collects a body of known, small length; `done` is not called when the request fails or is cut short. */
function readSmallBody(req: IncomingMessage, length: number, done: (body: Buffer) => void): void {
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  req.on('data', (chunk: Buffer) => {
    if (first === undefined) first = chunk;
    else (chunks ??= [first]).push(chunk);
  });
  req.once('end', () => {
    const body = chunks ? Buffer.concat(chunks) : (first ?? Buffer.alloc(0));
    // Node's parser enforces Content-Length; a mismatch here means the request was cut short.
    if (body.length === length) done(body);
  });
}

type Controller = Dispatcher.DispatchController;

/** undici handler relaying one backend response into the client response, with backpressure. */
class RelayHandler implements Dispatcher.DispatchHandler {
  limiter: ByteLimit | undefined;
  #controller: Controller | undefined;
  #status = 0;
  #streaming = false;
  #clientGone = false;
  #waitingDrain = false;
  /** Chunks received while an async step (session binding) runs before the headers are written. */
  #held: Buffer[] | undefined;
  #ended = false;
  /** The gateway answered in place of the backend's response (refused headers): ignore the rest of it. */
  #refused = false;
  /** Made on the first backpressure wait only (most responses never wait). */
  #resumeOnDrain: (() => void) | undefined;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly f: ForwardInput,
  ) {}

  get clientGone(): boolean {
    return this.#clientGone;
  }

  onClientClose(): void {
    const { state, res } = this.f;
    // The response's close (not the request's, which fires once the body is read) means the client went away.
    if (!res.writableFinished) {
      this.#clientGone = true;
      this.#controller?.abort(CLIENT_GONE);
    }
    state.inFlight--;
    if (this.#streaming) state.metrics.streams.dec();
    state.metrics.duration.observe((performance.now() - this.f.started) / 1000);
    if (this.#status !== 0) countStatus(this.ctx, state, this.#status);
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(CLIENT_GONE);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    const { f } = this;
    f.state.metrics.ttfb.observe((performance.now() - f.started) / 1000);
    this.#status = statusCode;
    // Session bookkeeping decides synchronously whether it has work; only then is the response held.
    let pending: Promise<ProxyError | undefined> | undefined;
    try {
      pending = f.relayCheck?.beforeRelay(f, statusCode, headers);
    } catch (err) {
      pending = Promise.reject(err);
    }
    if (pending) {
      // The async step must finish before the headers go out; hold what arrives meanwhile.
      this.#held = [];
      controller.pause();
      pending.then(
        (refusal) => {
          if (refusal) return this.#refuse(refusal);
          const held = this.#held ?? [];
          this.#held = undefined;
          if (!this.#writeHead(statusCode, headers)) return;
          for (const chunk of held) this.#write(chunk);
          if (this.#ended) this.#end();
          else controller.resume();
        },
        (err: unknown) => {
          // Bookkeeping that failed unexpectedly: fail closed without relaying (the caller normally
          // answers with a refusal instead of throwing).
          this.ctx.log.error({ service: f.state.id, err: { message: (err as Error)?.message } }, 'proxy: session bookkeeping failed');
          this.#held = undefined;
          this.#refused = true;
          this.#controller?.abort(CLIENT_GONE);
          this.f.res.destroy();
        },
      );
      return;
    }
    this.#writeHead(statusCode, headers);
  }

  /** The backend's response is dropped (its request aborted) and the client gets the gateway's error. */
  #refuse(error: ProxyError): void {
    this.#held = undefined;
    this.#refused = true;
    this.#status = error.status;
    this.#controller?.abort(CLIENT_GONE);
    if (!this.f.res.destroyed) fail(this.f, error);
  }

  /** Writes status and filtered headers; false when the response is gone or the headers were refused. */
  #writeHead(statusCode: number, upstreamHeaders: Record<string, string | string[] | undefined>): boolean {
    const { f } = this;
    const { res, state } = f;
    if (res.destroyed) {
      this.#controller?.abort(CLIENT_GONE);
      return false;
    }
    const headers = buildResponseHeaders(upstreamHeaders, state.allowSetCookie);
    const location = headers.location;
    if (location !== undefined) {
      // Never reveal the backend's address (P8 in docs/security.md): map it to the service's public URL, or refuse.
      const mapped =
        typeof location === 'string' ? publicLocation(state.target, state.origin, f.path, state.service.canonicalUri, location) : undefined;
      if (mapped === undefined) {
        this.ctx.log.warn(
          { service: state.id, status: statusCode },
          'proxy: backend Location points at the backend outside the service path; not relayed',
        );
        this.#refused = true;
        this.#status = INTERNAL_LOCATION.status;
        fail(f, INTERNAL_LOCATION);
        this.#controller?.abort(CLIENT_GONE);
        return false;
      }
      headers.location = mapped;
    }
    const contentType = upstreamHeaders['content-type'];
    const sse = typeof contentType === 'string' && contentType.startsWith('text/event-stream');
    // MCP 2026-07-28: servers SHOULD send X-Accel-Buffering: no, so that nginx-like hops do not buffer SSE.
    if (sse) headers['x-accel-buffering'] = 'no';
    if (f.rewrite) statusCode = f.rewrite.head(statusCode, headers);
    if (f.cors) {
      const vary = headers.vary;
      Object.assign(headers, f.cors);
      if (vary !== undefined) headers.vary = `${Array.isArray(vary) ? vary.join(', ') : vary}, Origin`;
    }
    try {
      res.writeHead(statusCode, headers);
    } catch (err) {
      // A header value Node refuses (should not happen: undici parsed it): never a 500 with partial output.
      this.ctx.log.error({ service: state.id, err: { message: (err as Error)?.message } }, 'proxy: invalid backend response headers');
      this.#controller?.abort(CLIENT_GONE);
      fail(f, INVALID_RESPONSE);
      return false;
    }
    if (sse) res.flushHeaders();
    this.#streaming = true;
    state.metrics.streams.inc();
    return true;
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#refused) return;
    if (this.#held) {
      this.#held.push(chunk);
      return;
    }
    if (this.f.res.destroyed) return;
    // Backpressure: stop reading from the backend until the client has drained what it got.
    if (!this.#write(chunk) && !this.#waitingDrain) {
      this.#waitingDrain = true;
      controller.pause();
      this.f.res.once(
        'drain',
        (this.#resumeOnDrain ??= () => {
          this.#waitingDrain = false;
          this.#controller?.resume();
        }),
      );
    }
  }

  /** Writes a backend chunk (through the rewriter, if any); false when the client needs to drain first. */
  #write(chunk: Buffer): boolean {
    const { res, rewrite } = this.f;
    if (rewrite === undefined) return res.write(chunk);
    if (this.#refused) return true;
    let out;
    try {
      out = rewrite.data(chunk);
    } catch (err) {
      this.#cut(err);
      return true;
    }
    return out === undefined || res.write(out);
  }

  #end(): void {
    const { res, rewrite } = this.f;
    if (rewrite === undefined) return void res.end();
    let out;
    try {
      out = rewrite.end();
    } catch (err) {
      return this.#cut(err);
    }
    res.end(out);
  }

  /** A response the rewriter cannot handle is cut, never relayed unfiltered (fail closed). */
  #cut(err: unknown): void {
    this.ctx.log.warn(
      { service: this.f.state.id, err: { message: (err as Error)?.message } },
      'proxy: response could not be filtered; cut',
    );
    this.#refused = true;
    this.#controller?.abort(CLIENT_GONE);
    this.f.res.destroy();
  }

  onResponseEnd(): void {
    if (this.#refused) return;
    if (this.#held) {
      this.#ended = true;
      return;
    }
    this.#end();
  }

  onResponseError(_controller: Controller, err: Error): void {
    const { f, ctx } = this;
    const { state, res } = f;
    if (this.#refused) return;
    if (this.#clientGone || err === CLIENT_GONE || res.destroyed) {
      ctx.metrics.upstreamErrors.inc({ service: state.id, kind: 'aborted' });
      if (!res.destroyed) res.destroy();
      return;
    }
    if (this.#streaming || res.headersSent) {
      // The backend failed mid-stream: cut the client stream so it sees an incomplete response.
      ctx.metrics.upstreamErrors.inc({ service: state.id, kind: 'aborted' });
      res.destroy();
      return;
    }
    if (this.limiter?.exceeded) {
      this.#status = 413;
      fail(f, BODY_TOO_LARGE);
      return;
    }
    const failure = upstreamFailure(err);
    ctx.metrics.upstreamErrors.inc({ service: state.id, kind: failure.kind });
    // Logged with the service id and the error code only: no URL, no headers, no token.
    ctx.log.warn({ service: state.id, code: (err as { code?: unknown })?.code, kind: failure.kind }, 'proxy: backend request failed');
    this.#status = failure.error.status;
    fail(f, failure.error);
  }
}

/** The abort reason used when the client went away (compared by identity, never logged). */
const CLIENT_GONE = Object.freeze(Object.assign(new Error('client disconnected'), { code: 'GW_CLIENT_GONE' }));
