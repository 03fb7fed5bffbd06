/**
 * What the authorization server needs from an upstream identity provider: a URL to send the person to,
 * and the verified profile once they come back to `{issuer}/oauth/callback`.
 */
import type { UpstreamProfile } from './profile.js';

/** Per-attempt values kept server-side (never in the browser) until the callback. */
export interface UpstreamChecks {
  state: string;
  nonce?: string | undefined;
  codeVerifier: string;
}

export interface UpstreamIdp {
  /** The provider name (key under `oauth_providers`). */
  readonly name: string;
  readonly kind: string;
  start(redirectUri: string): Promise<{ url: URL; checks: UpstreamChecks }>;
  /** Exchanges the code (state, PKCE, nonce and ID token checked) and maps the user. */
  finish(callbackUrl: URL, checks: UpstreamChecks): Promise<UpstreamProfile>;
}

/** An error the person sees and the client receives as an OAuth error (`access_denied` / `server_error`). */
export class UpstreamError extends Error {
  constructor(
    readonly oauthError: 'access_denied' | 'server_error' | 'temporarily_unavailable',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}
