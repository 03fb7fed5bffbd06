/**
 * One registry of the gateway's own error codes (documented in docs/errors.md). Every code has an HTTP status and a
 * client-facing message; the server-side detail travels in `cause`/`detail` and is only ever logged.
 * Codes are never reused once retired. The full list is documented in docs/errors.md.
 */

export const ERROR_CODES = {
  GW_ERR_CONFIG_INVALID: { status: 500, message: 'The configuration is invalid' },
  GW_ERR_CONFIG_ENV_MISSING: { status: 500, message: 'An environment variable used by the configuration is not set' },
  GW_ERR_CONFIG_NOT_FOUND: { status: 500, message: 'No configuration file was found' },
  GW_ERR_STORE_UNAVAILABLE: { status: 503, message: 'Storage is unavailable' },
  GW_ERR_STORE_INVALID_KEY: { status: 500, message: 'Invalid storage key' },
  GW_ERR_NOT_FOUND: { status: 404, message: 'Not found' },
  GW_ERR_BACKEND_UNKNOWN: { status: 404, message: 'Unknown MCP service' },
  GW_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The MCP service did not answer in time' },
  GW_ERR_UPSTREAM_UNREACHABLE: { status: 502, message: 'The MCP service is unreachable' },
  GW_ERR_OVERLOADED: { status: 503, message: 'The gateway is overloaded, try again later' },
  GW_ERR_TOKEN_MISSING: { status: 401, message: 'Authentication required' },
  GW_ERR_TOKEN_INVALID: { status: 401, message: 'The access token is invalid or expired' },
  GW_ERR_INSUFFICIENT_SCOPE: { status: 403, message: 'The access token lacks a required scope' },
  GW_ERR_POLICY_DENIED: { status: 403, message: 'Access to this service is not allowed for this user' },
  GW_ERR_ORIGIN_FORBIDDEN: { status: 403, message: 'Origin not allowed' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body too large' },
  GW_ERR_BAD_REQUEST: { status: 400, message: 'Bad request' },
  GW_ERR_PROTOCOL_VERSION: { status: 400, message: 'Unsupported MCP protocol version' },
  GW_ERR_SESSION_UNKNOWN: { status: 404, message: 'Session not found' },
  GW_ERR_UPSTREAM_SIGNIN: { status: 502, message: 'Sign-in with the identity provider failed' },
  GW_ERR_INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

const kGatewayError = Symbol.for('mcp-oauth-gateway.error');

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** Server-side detail: logged, never sent to a client. */
  readonly detail: string | undefined;
  readonly [kGatewayError] = true;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; detail?: string }) {
    super(message ?? ERROR_CODES[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.detail = options?.detail;
  }
}

/** Brand check that survives duplicated module copies, where `instanceof` fails. */
export function isGatewayError(err: unknown): err is GatewayError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kGatewayError] === true;
}

export function gatewayError(code: ErrorCode, message?: string, options?: { cause?: unknown; detail?: string }): GatewayError {
  return new GatewayError(code, message, options);
}
