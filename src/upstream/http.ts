/**
 * Shared pieces of the upstream clients: the openid-client configuration options (insecure http only
 * for local testing, refused in production) and authenticated JSON GETs for userinfo-style APIs.
 */
import * as oidc from 'openid-client';
import type { ProviderConfig } from '../config/schema.js';
import { UpstreamError } from './types.js';

export function insecureAllowed(name: string, p: ProviderConfig): boolean {
  if (!p.allow_insecure_http) return false;
  // STYLE habit 7: dev-only conveniences are refused in production.
  if (process.env.NODE_ENV === 'production') throw new TypeError(`oauth_providers.${name}.allow_insecure_http is refused when NODE_ENV=production`);
  return true;
}

export function executeOptions(insecure: boolean): Array<(c: oidc.Configuration) => void> {
  return insecure ? [oidc.allowInsecureRequests] : [];
}

export async function getJson(url: string, accessToken: string, accept = 'application/json'): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${accessToken}`, accept, 'user-agent': 'mcp-oauth-gateway' }, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new UpstreamError('temporarily_unavailable', 'the identity provider could not be reached', { cause: err });
  }
  if (!res.ok) throw new UpstreamError('server_error', `the identity provider answered ${res.status} for the user profile`);
  return res.json();
}

/** Maps an openid-client failure at the callback to what the person and the client are told. */
export function callbackFailure(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof oidc.AuthorizationResponseError) {
    const denied = err.error === 'access_denied';
    return new UpstreamError(denied ? 'access_denied' : 'server_error', `the identity provider refused the sign-in (${err.error})`, { cause: err });
  }
  return new UpstreamError('server_error', 'the sign-in at the identity provider could not be completed', { cause: err });
}
