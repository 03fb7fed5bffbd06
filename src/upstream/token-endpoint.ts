/**
 * The provider's token endpoint for the upstream tokens the gateway holds on the user's behalf
 * (`upstream_auth`, docs/upstream-auth.md): what the sign-in returned, refresh (RFC 6749 §6), and other
 * grants such as RFC 8693 token exchange. Errors carry the provider's OAuth `error` code (`invalid_grant`
 * means the grant is gone) or `unavailable` for a network failure; never the token.
 */
import * as oidc from 'openid-client';
import { failureReason, isUnavailable } from './http.js';

/** A token endpoint response (RFC 6749 §5.1), as the provider sent it. */
export interface UpstreamTokenResponse {
  access_token: string;
  refresh_token?: string | undefined;
  id_token?: string | undefined;
  token_type?: string | undefined;
  scope?: string | undefined;
  expires_in?: number | undefined;
}

export interface UpstreamTokenEndpoint {
  refresh(refreshToken: string): Promise<UpstreamTokenResponse>;
  grant(grantType: string, params: Record<string, string>): Promise<UpstreamTokenResponse>;
}

/** A refused or failed token request: `oauthError` is the provider's code, absent when it could not be reached. */
export class TokenEndpointError extends Error {
  constructor(
    message: string,
    readonly oauthError: string | undefined,
    readonly unavailable: boolean,
  ) {
    super(message);
    this.name = 'TokenEndpointError';
  }
}

export function tokenResponse(t: oidc.TokenEndpointResponse): UpstreamTokenResponse {
  return {
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    id_token: t.id_token,
    token_type: t.token_type,
    scope: t.scope,
    expires_in: typeof t.expires_in === 'number' ? t.expires_in : undefined,
  };
}

export function tokenEndpointFailure(err: unknown): TokenEndpointError {
  const body = err as { error?: unknown; cause?: { error?: unknown } };
  const code = typeof body.error === 'string' ? body.error : typeof body.cause?.error === 'string' ? body.cause.error : undefined;
  const safe = code?.replace(/[^\w.-]/g, '').slice(0, 64);
  return new TokenEndpointError(
    safe ? `the provider refused the token request (${safe})` : `the token request failed (${failureReason(err)})`,
    safe,
    !safe && isUnavailable(err),
  );
}

/** refresh and generic grants on an openid-client configuration. */
export function tokenEndpointOf(config: () => Promise<oidc.Configuration>): UpstreamTokenEndpoint {
  return {
    async refresh(refreshToken) {
      try {
        return tokenResponse(await oidc.refreshTokenGrant(await config(), refreshToken));
      } catch (err) {
        throw tokenEndpointFailure(err);
      }
    },
    async grant(grantType, params) {
      try {
        return tokenResponse(await oidc.genericGrantRequest(await config(), grantType, params));
      } catch (err) {
        throw tokenEndpointFailure(err);
      }
    },
  };
}
