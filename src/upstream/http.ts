/**
 * Shared pieces of the upstream clients: the openid-client configuration options (plain http for loopback
 * provider URLs, or with `allow_insecure_http` outside production), authenticated JSON GETs for
 * userinfo-style APIs, and the mapping of failures to what the person and the client are told.
 */
import * as oidc from 'openid-client';
import { isLoopbackHost, loopbackHttpUrls, type ProviderConfig } from '../config/schema.js';
import { UpstreamError } from './types.js';

/**
 * Whether openid-client may send requests over plain http to this provider. The configuration loader has
 * already refused plain http on any other host without the flag; loopback http stays on this machine.
 */
export function insecureAllowed(name: string, p: ProviderConfig): boolean {
  if (p.allow_insecure_http) {
    // Dev-only conveniences are refused in production (also reported by the loader).
    if (process.env.NODE_ENV === 'production')
      throw new TypeError(`oauth_providers.${name}.allow_insecure_http is refused when NODE_ENV=production`);
    return true;
  }
  return loopbackHttpUrls(p).length > 0;
}

/** Plain http towards a non-loopback host that the configuration did not opt into (e.g. from discovery). */
export function forbiddenPlainHttp(url: string | undefined, p: ProviderConfig): boolean {
  const u = url === undefined ? null : URL.parse(url);
  return u?.protocol === 'http:' && !isLoopbackHost(u.hostname) && !p.allow_insecure_http;
}

export function executeOptions(insecure: boolean): Array<(c: oidc.Configuration) => void> {
  return insecure ? [oidc.allowInsecureRequests] : [];
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'OAUTH_TIMEOUT',
  'OAUTH_ABORT',
]);

/**
 * The provider could not be reached or said it is overloaded: a connection failure or timeout anywhere in
 * the cause chain (fetch wraps it as `TypeError: fetch failed`), or an HTTP 502/503/504 answer (openid-client
 * keeps the Response as the cause of "unexpected HTTP response status code").
 */
export function isUnavailable(err: unknown): boolean {
  for (const e of causeChain(err)) {
    const { code, name, status } = e as { code?: unknown; name?: unknown; status?: unknown };
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (name === 'TimeoutError' || name === 'AbortError' || name === 'ConnectTimeoutError') return true;
    if (typeof status === 'number' && status >= 502 && status <= 504) return true;
  }
  return false;
}

/** `err` and its `cause`s (bounded: a cause chain can be cyclic). */
function* causeChain(err: unknown): Generator<object> {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && e && typeof e === 'object'; depth++) {
    yield e;
    e = (e as { cause?: unknown }).cause;
  }
}

/** A short, host-free reason for logs' `reason` field and /ready (e.g. `ECONNREFUSED`, `HTTP 503`). */
export function failureReason(err: unknown): string {
  for (const e of causeChain(err)) {
    const { code, name, status, message } = e as { code?: unknown; name?: unknown; status?: unknown; message?: unknown };
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code) && code !== 'OAUTH_RESPONSE_IS_NOT_CONFORM') return code;
    if (message === 'bad port') return 'bad_port'; // fetch refuses the port (Fetch standard "bad port")
    if (typeof status === 'number') return `HTTP ${status}`;
    if (name === 'TimeoutError') return 'timeout';
  }
  return 'error';
}

/** Maps a failure while building the authorization request (discovery, a bad URL) for the person and the client. */
export function startFailure(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (isUnavailable(err)) return new UpstreamError('temporarily_unavailable', 'the identity provider could not be reached', { cause: err });
  return new UpstreamError('server_error', 'the sign-in at the identity provider could not be started', { cause: err });
}

export async function getJson(url: string, accessToken: string, accept = 'application/json'): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${accessToken}`, accept, 'user-agent': 'mcp-oauth-gateway' },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new UpstreamError('temporarily_unavailable', 'the identity provider could not be reached (user profile)', { cause: err });
  }
  if (res.status >= 502 && res.status <= 504)
    throw new UpstreamError('temporarily_unavailable', `the identity provider answered ${res.status} for the user profile`);
  if (!res.ok) throw new UpstreamError('server_error', `the identity provider answered ${res.status} for the user profile`);
  return res.json();
}

/** Maps an openid-client failure at the callback to what the person and the client are told. */
export function callbackFailure(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof oidc.AuthorizationResponseError) {
    const denied = err.error === 'access_denied';
    return new UpstreamError(denied ? 'access_denied' : 'server_error', `the identity provider refused the sign-in (${err.error})`, {
      cause: err,
    });
  }
  if (isUnavailable(err))
    return new UpstreamError('temporarily_unavailable', 'the identity provider could not be reached to complete the sign-in', {
      cause: err,
    });
  // "HTTP 404" (a wrong token_url), "OAUTH_JWT_CLAIM_COMPARISON" (an ID token for another issuer): enough for
  // an administrator to know where to look, nothing the provider said verbatim.
  const reason = failureReason(err);
  return new UpstreamError(
    'server_error',
    `the sign-in at the identity provider could not be completed${reason === 'error' ? '' : ` (${reason})`}`,
    { cause: err },
  );
}
