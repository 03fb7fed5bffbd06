/**
 * One registry of the answers the gateway itself produces (as fastify's `lib/errors.js` is). Each
 * entry fixes the HTTP status, the `error` sent on the wire (the protocol's own code where the protocol
 * defines one: RFC 6749 §5.2 / RFC 6750 §3.1 for OAuth and bearer refusals; else the lower-case gateway
 * code), the JSON-RPC error code used on the MCP path, the default client-facing message, and the headers
 * that go with it. The fastify error handler (src/http/errors.ts) and the proxy's preallocated answers
 * (src/proxy/respond.ts) are built from this table. The server-side detail travels in `cause`/`detail`
 * and is only ever logged.
 *
 * Codes are never reused once retired: a retired code moves to RETIRED_CODES (and to the "Retired" table of
 * docs/errors.md), it is never deleted. test/http/error-registry.test.ts checks registry ↔ docs ↔ wire.
 * oidc-provider's own OAuth errors (invalid_grant, invalid_client, …) are not listed here: see
 * docs/authorization.md.
 */

/** JSON-RPC error codes. -32000…-32099 is the JSON-RPC 2.0 implementation-defined server-error range. */
export const RPC = {
  /** Authentication / authorization / session errors (the MCP SDK uses -32001 for "Session not found"). */
  AUTH: -32001,
  /** Gateway-side failures: backend unreachable, timeout, overload, forbidden origin. */
  GATEWAY: -32000,
  /** JSON-RPC 2.0 §5.1 Invalid Request (oversized or malformed requests). */
  INVALID_REQUEST: -32600,
  /** MCP 2026-07-28 UnsupportedProtocolVersionError. */
  UNSUPPORTED_PROTOCOL_VERSION: -32022,
  /** MCP 2026-07-28 HeaderMismatch: a mirrored header (`Mcp-Method`, `Mcp-Name`) is missing or differs from the body. */
  HEADER_MISMATCH: -32020,
  /** MCP 2025-11-25 URLElicitationRequiredError: the user must open a URL (here: connect an upstream account). */
  URL_ELICITATION_REQUIRED: -32042,
} as const;

/** The bearer challenge (RFC 6750 §3) a refusal carries in `WWW-Authenticate`; built per service. */
export type Challenge = 'missing' | 'invalid' | 'scope';

export interface ErrorSpec {
  status: number;
  /** `error` in the JSON body (and `error.data.error` in a JSON-RPC error). */
  error: string;
  /** JSON-RPC error code on the MCP path; absent for codes only the OAuth endpoints produce. */
  rpc?: number;
  /** Default client-facing message (`error_description`). */
  message: string;
  /** Seconds in `Retry-After`; `'computed'` when the producer knows the wait (rate limits). */
  retryAfter?: number | 'computed';
  /** `WWW-Authenticate` with the service's bearer challenge of this kind (RFC 6750 §3, RFC 9728 §5.1). */
  challenge?: Challenge;
  /** `Allow` header (RFC 9110 §15.5.6: a 405 MUST carry it). */
  allow?: string;
}

/** Methods the MCP proxy serves (docs/proxy.md); anything else is GW_ERR_METHOD_NOT_ALLOWED. */
export const PROXY_ALLOW = 'GET, POST, DELETE, OPTIONS';

export const ERROR_CODES = {
  GW_ERR_NOT_FOUND: { status: 404, error: 'not_found', rpc: RPC.GATEWAY, message: 'Not found' },
  GW_ERR_BAD_REQUEST: { status: 400, error: 'invalid_request', rpc: RPC.INVALID_REQUEST, message: 'Bad request' },
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, error: 'invalid_request', rpc: RPC.INVALID_REQUEST, message: 'Unsupported content type' },
  // One answer for an oversized body at every endpoint (OAuth, registration, consent, MCP proxy). `invalid_request`
  // because RFC 6749 §5.2 allows only its listed codes at the token endpoint; the status tells it apart.
  GW_ERR_BODY_TOO_LARGE: {
    status: 413,
    error: 'invalid_request',
    rpc: RPC.INVALID_REQUEST,
    message: 'Request body too large (GW_ERR_BODY_TOO_LARGE)',
  },
  // RFC 7591 §3.2.2 errors of the gateway's own registration checks (src/authz/registration.ts), before oidc-provider.
  GW_ERR_CLIENT_METADATA_INVALID: { status: 400, error: 'invalid_client_metadata', message: 'The client metadata is invalid' },
  GW_ERR_REDIRECT_URI_INVALID: { status: 400, error: 'invalid_redirect_uri', message: 'A redirect URI is not allowed' },
  GW_ERR_REGISTRATION_DISABLED: {
    status: 404,
    error: 'invalid_request',
    message: 'Dynamic client registration is disabled on this gateway; use a pre-registered client or a client ID metadata document',
  },
  GW_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    error: 'method_not_allowed',
    rpc: RPC.GATEWAY,
    message: 'Method not allowed',
    allow: PROXY_ALLOW,
  },
  GW_ERR_BACKEND_UNKNOWN: { status: 404, error: 'gw_err_backend_unknown', rpc: RPC.GATEWAY, message: 'Unknown MCP service' },
  // One answer for a forbidden browser Origin at the OAuth endpoints (src/http/cors.ts) and the MCP proxy
  // (src/proxy/index.ts): `invalid_request`, as for GW_ERR_BODY_TOO_LARGE, because RFC 6749 §5.2 allows only
  // its listed codes at the token endpoint; the status and the code named in the message tell it apart.
  GW_ERR_ORIGIN_FORBIDDEN: {
    status: 403,
    error: 'invalid_request',
    rpc: RPC.GATEWAY,
    message: 'Origin not allowed: it is not listed in cors.allow_origins (GW_ERR_ORIGIN_FORBIDDEN)',
  },
  // RFC 6750 §3.1: no error code in the challenge when the request had no credentials; the body says why.
  GW_ERR_TOKEN_MISSING: { status: 401, error: 'invalid_request', rpc: RPC.AUTH, message: 'Authentication required', challenge: 'missing' },
  GW_ERR_TOKEN_INVALID: {
    status: 401,
    error: 'invalid_token',
    rpc: RPC.AUTH,
    message: 'The access token is invalid',
    challenge: 'invalid',
  },
  GW_ERR_INSUFFICIENT_SCOPE: {
    status: 403,
    error: 'insufficient_scope',
    rpc: RPC.AUTH,
    message: 'The access token lacks required scopes',
    challenge: 'scope',
  },
  GW_ERR_POLICY_DENIED: {
    status: 403,
    error: 'access_denied',
    rpc: RPC.AUTH,
    message: 'Your account is not allowed to use this service by its access policy',
  },
  // Tool-level rules (src/proxy/tool-gate.ts): the JSON-RPC error carries the refused request's id; in a
  // batch the same error object answers the refused element inside the 200 batch response.
  GW_ERR_TOOL_DENIED: {
    status: 403,
    error: 'access_denied',
    rpc: RPC.AUTH,
    message: 'This tool, prompt or resource is not allowed for your account on this service',
  },
  // MCP 2026-07-28 (streamable HTTP, header validation): mismatch or missing required header → 400, -32020.
  GW_ERR_HEADER_MISMATCH: {
    status: 400,
    error: 'header_mismatch',
    rpc: RPC.HEADER_MISMATCH,
    message: 'An MCP request header is missing or does not match the request body',
  },
  GW_ERR_PROTOCOL_VERSION: {
    status: 400,
    error: 'unsupported_protocol_version',
    rpc: RPC.UNSUPPORTED_PROTOCOL_VERSION,
    message: 'Unsupported protocol version',
  },
  GW_ERR_SESSION_UNKNOWN: { status: 404, error: 'gw_err_session_unknown', rpc: RPC.AUTH, message: 'Session not found' },
  GW_ERR_RATE_LIMITED: { status: 429, error: 'too_many_requests', rpc: RPC.AUTH, message: 'Too many requests', retryAfter: 'computed' },
  GW_ERR_UPSTREAM_TIMEOUT: {
    status: 504,
    error: 'gw_err_upstream_timeout',
    rpc: RPC.GATEWAY,
    message: 'The MCP service did not answer in time',
  },
  GW_ERR_UPSTREAM_UNREACHABLE: {
    status: 502,
    error: 'gw_err_upstream_unreachable',
    rpc: RPC.GATEWAY,
    message: 'The MCP service is unreachable',
  },
  GW_ERR_OVERLOADED: {
    status: 503,
    error: 'gw_err_overloaded',
    rpc: RPC.GATEWAY,
    message: 'The service is busy, try again later',
    retryAfter: 1,
  },
  // RFC 6749 §4.1.2.1 temporarily_unavailable: the OAuth endpoints and the proxy say the same.
  GW_ERR_STORE_UNAVAILABLE: {
    status: 503,
    error: 'temporarily_unavailable',
    rpc: RPC.GATEWAY,
    message: 'Storage is unavailable, try again later',
    retryAfter: 5,
  },
  // Local (stdio) MCP servers, src/stdio (docs/stdio.md).
  GW_ERR_STDIO_EXITED: {
    status: 502,
    error: 'gw_err_stdio_exited',
    rpc: RPC.GATEWAY,
    message: 'The local MCP server exited before it answered',
  },
  GW_ERR_STDIO_LIMIT: {
    status: 503,
    error: 'gw_err_stdio_limit',
    rpc: RPC.GATEWAY,
    message: 'Too many local MCP server processes are running for this service, try again later',
    retryAfter: 5,
  },
  // RFC 9110 §15.5.20 421 Misdirected Request: this instance cannot answer for that session.
  GW_ERR_STDIO_SESSION_ELSEWHERE: {
    status: 421,
    error: 'gw_err_stdio_session_elsewhere',
    rpc: RPC.GATEWAY,
    message:
      'This session belongs to a local MCP server process on another gateway instance: stdio services need sticky routing or a single instance (docs/stdio.md)',
  },
  // upstream_auth (docs/upstream-auth.md): no usable upstream token for this user; never 401, which would send the
  // client into gateway re-authorizations that cannot fix it. The message and data carry the connect link.
  GW_ERR_UPSTREAM_AUTH_REQUIRED: {
    status: 403,
    error: 'upstream_authorization_required',
    rpc: RPC.URL_ELICITATION_REQUIRED,
    message: 'This service needs your account at its identity provider to be connected',
  },
  GW_ERR_UPSTREAM_TOKEN_FAILED: {
    status: 502,
    error: 'upstream_token_failed',
    rpc: RPC.GATEWAY,
    message: 'The upstream token for this service could not be obtained from its identity provider, try again later',
  },
  GW_ERR_INTERNAL: { status: 500, error: 'server_error', rpc: RPC.GATEWAY, message: 'Internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes reported by the command line (exit status), never over HTTP. */
export const EXIT_CODES = {
  GW_ERR_CONFIG_INVALID: { exit: 1, message: 'The configuration is invalid' },
} as const satisfies Record<string, { exit: number; message: string }>;

/**
 * Retired codes: never produced, never to be reused for another meaning. Each with why it was retired.
 */
export const RETIRED_CODES = {
  GW_ERR_CONFIG_ENV_MISSING: 'reported as a GW_ERR_CONFIG_INVALID problem with its key and line',
  GW_ERR_CONFIG_NOT_FOUND: 'reported as a GW_ERR_CONFIG_INVALID problem (or the CLI usage message)',
  GW_ERR_STORE_INVALID_KEY: 'an invalid storage key is a programming error (TypeError), never an answer',
  GW_ERR_UPSTREAM_SIGNIN: 'sign-in failures are shown on the sign-in error page and sent to the client as OAuth errors',
} as const;

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

/** The JSON body of an answer (OAuth error shape, RFC 6749 §5.2) with the code's default message. */
export function errorBody(code: ErrorCode, description?: string): { error: string; error_description: string } {
  return { error: ERROR_CODES[code].error, error_description: description ?? ERROR_CODES[code].message };
}
