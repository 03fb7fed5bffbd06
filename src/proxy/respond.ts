/**
 * The proxy's own answers (errors, preflights). Always JSON, never a stack trace or an internal URL
 * (docs/errors.md). When the request was JSON-RPC (a POST with a JSON content type; detected from the
 * header, the body is never parsed) the body is a JSON-RPC error without id, which MCP clients surface
 * (MCP transports: "the body MAY be a JSON-RPC error response that has no id").
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_CODES, RPC, type ErrorCode, type ErrorSpec } from '../errors.js';

/** JSON-RPC error codes, defined with the registry (src/errors.ts). */
export { RPC };

export interface ProxyError {
  /** The registry entry this answer renders (src/errors.ts); never sent, the wire carries `error`. */
  code: ErrorCode;
  status: number;
  /** `error` in the plain JSON body: an OAuth error code or a gateway code (lower-case). */
  error: string;
  description: string;
  rpcCode: number;
  data?: Record<string, unknown>;
  headers?: Record<string, string>;
  /** Force the JSON-RPC shape (protocol-version errors are always JSON-RPC). */
  alwaysRpc?: boolean;
}

/**
 * The proxy's answer for a registry code: status, `error`, JSON-RPC code and the code's own headers
 * (Retry-After, Allow) from the table; `description`, `headers` (a bearer challenge) and `data` may be
 * given. Built once at module load for the fixed answers (frozen); per-service ones are cached by
 * `challenged`, so refusing a request allocates nothing new.
 */
export function proxyError(
  code: ErrorCode,
  extra: { description?: string; headers?: Record<string, string>; data?: Record<string, unknown>; alwaysRpc?: boolean } = {},
): ProxyError {
  const spec: ErrorSpec = ERROR_CODES[code];
  // A code without a JSON-RPC code has no MCP surface: using it on the proxy is a bug, found at module load.
  if (spec.rpc === undefined) throw new TypeError(`${code} has no JSON-RPC code and cannot be a proxy answer`);
  const own: Record<string, string> = {};
  if (typeof spec.retryAfter === 'number') own['retry-after'] = String(spec.retryAfter);
  if (spec.allow !== undefined) own.allow = spec.allow;
  const headers = { ...own, ...extra.headers };
  const err: ProxyError = {
    code,
    status: spec.status,
    error: spec.error,
    description: extra.description ?? spec.message,
    rpcCode: spec.rpc,
  };
  if (Object.keys(headers).length > 0) err.headers = headers;
  if (extra.data !== undefined) err.data = extra.data;
  if (extra.alwaysRpc) err.alwaysRpc = true;
  return Object.freeze(err);
}

/**
 * A registry answer carrying a service's `WWW-Authenticate` challenge (RFC 6750 §3): one frozen answer per
 * challenge string (challenges are precomputed per service, so this holds one entry per service).
 */
export function challenged(
  code: ErrorCode,
  description?: string,
): (challenge: string, data?: Record<string, unknown>, describe?: string) => ProxyError {
  const cache = new Map<string, ProxyError>();
  return (challenge, data, describe) => {
    let err = cache.get(challenge);
    if (err === undefined) {
      // Module-level, so shared by every gateway in the process (tests start many): keep it bounded.
      if (cache.size >= 1024) cache.clear();
      err = proxyError(code, { description: describe ?? description, headers: { 'www-authenticate': challenge }, data });
      cache.set(challenge, err);
    }
    return err;
  };
}

/** Writes one error response on a raw (hijacked) response. Never throws. */
export function sendProxyError(res: ServerResponse, jsonRpc: boolean, err: ProxyError, cors: Record<string, string> | undefined): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body =
    jsonRpc || err.alwaysRpc
      ? JSON.stringify({
          jsonrpc: '2.0',
          id: null,
          error: { code: err.rpcCode, message: err.description, data: { error: err.error, ...err.data } },
        })
      : JSON.stringify({ error: err.error, error_description: err.description, ...err.data });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...cors,
    ...err.headers,
  };
  // A request body we did not read (early 401/403/413/…): a small one is discarded and the connection kept
  // (clients in discovery send several refused requests in a row); a large one closes it.
  const req = res.req as IncomingMessage | undefined;
  // A 413 always closes: the client is sending more than the service accepts.
  if (req && !req.complete && (err.status === 413 || !discardBody(req))) headers.connection = 'close';
  try {
    res.writeHead(err.status, headers);
    res.end(body);
  } catch {
    res.destroy();
  }
}

/**
 * The bound on discarding a refused request's body to keep the connection: at most this many bytes
 * (declared or counted), arriving within DISCARD_MS; beyond either the socket is closed.
 */
export const DISCARD_MAX_BYTES = 64 * 1024;
export const DISCARD_MS = 5_000;

/**
 * Reads and drops the rest of a refused request's body, when it is small enough to be worth keeping the
 * connection for. Returns false (the caller answers with `Connection: close`) for a body declared larger
 * than the bound. A chunked body that grows past the bound, or a body that has not ended within
 * DISCARD_MS, has its socket closed (the answer has been sent by then).
 */
function discardBody(req: IncomingMessage): boolean {
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const declared = req.headers['content-length'];
  if (!chunked && (declared === undefined || declared === '0')) return true;
  if (!chunked && !(Number(declared) <= DISCARD_MAX_BYTES)) return false;
  let seen = 0;
  const cut = () => req.socket?.destroy();
  const timer = setTimeout(cut, DISCARD_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > DISCARD_MAX_BYTES) {
      clearTimeout(timer);
      cut();
    }
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
  return true;
}

/** 204 answer to a CORS preflight. */
export function sendPreflight(res: ServerResponse, headers: Record<string, string>): void {
  res.writeHead(204, { ...headers, 'content-length': 0 });
  res.end();
}

/**
 * The gateway's own JSON-RPC answer to a request it decided itself (tool-gate.ts): a refused call (its
 * error carries the request's id), a batch answered entirely by the gateway, or 202 for a batch of
 * refused notifications. The body is a registry error (GW_ERR_TOOL_DENIED) or an array of them.
 */
export function sendRpcAnswer(res: ServerResponse, status: number, body: string, cors: Record<string, string> | undefined): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string | number> = { 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...cors };
  if (body.length > 0) headers['content-type'] = 'application/json; charset=utf-8';
  try {
    res.writeHead(status, headers);
    res.end(body);
  } catch {
    res.destroy();
  }
}
