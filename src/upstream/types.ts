/**
 * What the authorization server needs from an upstream identity provider: a URL to send the person to,
 * and the verified profile once they come back to `{issuer}/oauth/callback`.
 */
import type { UpstreamProfile } from './profile.js';
import type { UpstreamTokenEndpoint, UpstreamTokenResponse } from './token-endpoint.js';

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
  /**
   * Exchanges the code (state, PKCE, nonce and ID token checked) and maps the user. `keep` receives the
   * provider's tokens (only used for `upstream_auth` services: never stored with the profile).
   */
  finish(callbackUrl: URL, checks: UpstreamChecks, keep?: (tokens: UpstreamTokenResponse) => void): Promise<UpstreamProfile>;
  /** The token endpoint for refresh and token exchange (src/upstream/token-endpoint.ts). */
  readonly tokenEndpoint?: UpstreamTokenEndpoint;
  /** What the last contact with the provider showed (for /ready and the start-up line). */
  readonly health: UpstreamHealth;
  /** Start-up check that needs the network (OpenID Connect discovery); never throws. */
  prepare?(): Promise<void>;
}

/**
 * What the gateway last saw of its identity provider. `unknown` until a contact (discovery, or a sign-in
 * for providers without discovery); `unreachable` after a connection failure, timeout or 502-504; `failed`
 * when it answered something unusable (a discovery document that is not one, a forbidden http endpoint).
 * The reason is a short code, never a host or URL: /ready is unauthenticated.
 */
export class UpstreamHealth {
  state: 'unknown' | 'reachable' | 'unreachable' | 'failed' = 'unknown';
  reason: string | undefined;
  since = Date.now();

  constructor(
    readonly provider: string,
    readonly kind: string,
  ) {}

  reachable(): void {
    if (this.state !== 'reachable') this.#set('reachable', undefined);
  }

  broken(state: 'unreachable' | 'failed', reason: string): void {
    if (this.state !== state || this.reason !== reason) this.#set(state, reason);
  }

  #set(state: UpstreamHealth['state'], reason: string | undefined): void {
    this.state = state;
    this.reason = reason;
    this.since = Date.now();
  }

  view(): { provider: string; kind: string; state: string; reason?: string; since: string } {
    return {
      provider: this.provider,
      kind: this.kind,
      state: this.state,
      ...(this.reason ? { reason: this.reason } : {}),
      since: new Date(this.since).toISOString(),
    };
  }
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

  /** 503 when the provider is unreachable (try again later), 502 when it answered but the sign-in failed. */
  get httpStatus(): 502 | 503 {
    return this.oauthError === 'temporarily_unavailable' ? 503 : 502;
  }

  /** The page the person sees: what happened and what they can do about it. */
  page(provider: string): { heading: string; message: string } {
    if (this.oauthError === 'temporarily_unavailable') {
      return {
        heading: 'Sign-in temporarily unavailable',
        message: `The identity provider (${provider}) could not be reached, so the sign-in cannot continue. Try again in a few minutes; if it keeps happening, tell the administrator of this gateway that ${this.message}.`,
      };
    }
    return {
      heading: 'Sign-in failed',
      message: `The sign-in failed: ${this.message}. Return to the application and try again; if it keeps happening, tell the administrator of this gateway.`,
    };
  }
}
