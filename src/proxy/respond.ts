/**
 * The proxy's own answers (errors, preflights). Always JSON, never a stack trace or an internal URL
 * (docs/errors.md). When the request was JSON-RPC (a POST with a JSON content type; detected from the
 * header, the body is never parsed) the body is a JSON-RPC error without id, which MCP clients surface
 * (MCP transports: "the body MAY be a JSON-RPC error response that has no id").
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** JSON-RPC error codes used by the proxy. -32000…-32099 is the implementation-defined server range. */
export const RPC = {
  /** Authentication / authorization / session errors (the SDK uses -32001 for "Session not found"). */
  AUTH: -32001,
  /** Gateway-side failures: backend unreachable, timeout, overload, forbidden origin. */
  GATEWAY: -32000,
  /** JSON-RPC 2.0 Invalid Request (used for oversized or malformed requests). */
  INVALID_REQUEST: -32600,
  /** MCP 2026-07-28 UnsupportedProtocolVersionError. */
  UNSUPPORTED_PROTOCOL_VERSION: -32022,
} as const;

export interface ProxyError {
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

/** Writes one error response on a raw (hijacked) response. Never throws. */
export function sendProxyError(res: ServerResponse, jsonRpc: boolean, err: ProxyError, cors: Record<string, string> | undefined): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body =
    jsonRpc || err.alwaysRpc
      ? JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: err.rpcCode, message: err.description, data: { error: err.error, ...err.data } } })
      : JSON.stringify({ error: err.error, error_description: err.description, ...err.data });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...cors,
    ...err.headers,
  };
  // A request body we did not read (early 401/413/…): close the connection after answering rather than
  // reading (or waiting for) the rest of an upload we refused.
  const req = res.req as IncomingMessage | undefined;
  if (req && !req.complete && (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0')) headers.connection = 'close';
  try {
    res.writeHead(err.status, headers);
    res.end(body);
  } catch {
    res.destroy();
  }
}

/** 204 answer to a CORS preflight. */
export function sendPreflight(res: ServerResponse, headers: Record<string, string>): void {
  res.writeHead(204, { ...headers, 'content-length': 0 });
  res.end();
}
