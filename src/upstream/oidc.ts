/**
 * OpenID Connect upstreams (google, okta, any issuer) through discovery with openid-client: state, nonce
 * and PKCE S256 towards the provider; the ID token is validated (issuer, audience, signature, nonce).
 */
import * as oidc from 'openid-client';
import type { ProviderConfig, ProviderKind } from '../config/schema.js';
import { callbackFailure, executeOptions, failureReason, forbiddenPlainHttp, insecureAllowed, isUnavailable } from './http.js';
import { mapClaims, type ClaimNames } from './profile.js';
import { tokenEndpointOf, tokenResponse, type UpstreamTokenResponse } from './token-endpoint.js';
import { UpstreamError, UpstreamHealth, type UpstreamChecks, type UpstreamIdp } from './types.js';

const GOOGLE_ISSUER = 'https://accounts.google.com';

function issuerOf(name: string, kind: ProviderKind, p: ProviderConfig): string {
  if (p.issuer) return p.issuer;
  if (kind === 'google') return GOOGLE_ISSUER;
  // Okta: the issuer is the authorization server base (`…/oauth2/default`), derived from its endpoint.
  if (kind === 'okta' && p.authorization_url) return p.authorization_url.replace(/\/v1\/authorize\/?$/, '');
  throw new TypeError(`oauth_providers.${name}: issuer is required for OpenID Connect discovery`);
}

export class OidcUpstream implements UpstreamIdp {
  readonly #issuer: URL;
  readonly #insecure: boolean;
  #config: Promise<oidc.Configuration> | undefined;
  readonly health: UpstreamHealth;
  readonly tokenEndpoint = tokenEndpointOf(() => this.#configuration());

  constructor(
    readonly name: string,
    readonly kind: ProviderKind,
    private readonly p: ProviderConfig,
    private readonly claimNames: ClaimNames,
    /** A service lets its backend act as the user (upstream_auth): ask for a refresh token. */
    private readonly offline = false,
  ) {
    this.#issuer = new URL(issuerOf(name, kind, p));
    this.#insecure = insecureAllowed(name, p);
    this.health = new UpstreamHealth(name, kind);
    if (!p.client_id || !p.client_secret) throw new TypeError(`oauth_providers.${name}: client_id and client_secret are required`);
  }

  /** Discovery at start-up (prepare) or on first use, retried after a failure. */
  #configuration(): Promise<oidc.Configuration> {
    this.#config ??= oidc
      .discovery(this.#issuer, this.p.client_id!, this.p.client_secret!, undefined, {
        execute: executeOptions(this.#insecure),
        timeout: 10,
      })
      .then((config) => {
        // The configuration allowed plain http for a loopback issuer; an endpoint it advertises on another
        // host over http would carry the code and the client secret in clear text.
        const meta = config.serverMetadata();
        const bad = (['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri'] as const).find((k) =>
          forbiddenPlainHttp(meta[k], this.p),
        );
        if (bad)
          throw new UpstreamError(
            'server_error',
            `the identity provider's discovery document lists ${bad} over plain http on a non-loopback host`,
          );
        this.health.reachable();
        return config;
      })
      .catch((err: unknown) => {
        this.#config = undefined;
        if (err instanceof UpstreamError) {
          this.health.broken('failed', 'insecure_endpoint');
          throw err;
        }
        const unavailable = isUnavailable(err);
        this.health.broken(unavailable ? 'unreachable' : 'failed', `discovery: ${failureReason(err)}`);
        throw new UpstreamError(
          unavailable ? 'temporarily_unavailable' : 'server_error',
          unavailable
            ? 'the identity provider could not be reached (OpenID Connect discovery failed)'
            : `the identity provider's OpenID Connect discovery document could not be used (${failureReason(err)})`,
          { cause: err },
        );
      });
    return this.#config;
  }

  /** Eager discovery at start-up: a warning then (by the caller), not a surprise at the first sign-in. */
  async prepare(): Promise<void> {
    await this.#configuration();
  }

  async start(redirectUri: string): Promise<{ url: URL; checks: UpstreamChecks }> {
    const config = await this.#configuration();
    const checks: UpstreamChecks = { state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier: oidc.randomPKCECodeVerifier() };
    const scope = this.p.scopes.length ? this.p.scopes.join(' ') : 'openid email profile';
    const url = oidc.buildAuthorizationUrl(config, {
      ...this.#offlineParams(),
      // extra_params first: protocol parameters always win.
      ...this.p.extra_params,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: this.offline && this.kind !== 'google' && !scope.split(' ').includes('offline_access') ? `${scope} offline_access` : scope,
      state: checks.state,
      nonce: checks.nonce!,
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url, checks };
  }

  /**
   * A refresh token for upstream_auth services. OIDC Core §11: `offline_access` with `prompt=consent` (the
   * provider MUST ignore the scope otherwise); Google instead wants `access_type=offline` (and `prompt=consent`
   * to issue it again). An operator's `extra_params` still win (they come after).
   */
  #offlineParams(): Record<string, string> {
    if (!this.offline) return {};
    return this.kind === 'google' ? { access_type: 'offline', prompt: 'consent' } : { prompt: 'consent' };
  }

  /**
   * OIDC Core §5.3.2: the userinfo `sub` MUST equal the ID token's, "if they do not match, the UserInfo
   * Response values MUST NOT be used" (a response without `sub` neither). openid-client's fetchUserInfo
   * checks it; an unusable or unreachable userinfo adds nothing, the ID token's claims stand alone.
   */
  async #userinfo(config: oidc.Configuration, accessToken: string, subject: string): Promise<Record<string, unknown>> {
    try {
      return { ...(await oidc.fetchUserInfo(config, accessToken, subject)) };
    } catch {
      return {};
    }
  }

  async finish(callbackUrl: URL, checks: UpstreamChecks, keep?: (tokens: UpstreamTokenResponse) => void) {
    const config = await this.#configuration();
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
      keep?.(tokenResponse(tokens));
      let claims: Record<string, unknown> = { ...tokens.claims() };
      const userinfo = config.serverMetadata().userinfo_endpoint;
      // Some providers (Okta, Google) put email/groups only in userinfo; the ID token's claims win.
      if (userinfo && typeof claims.sub === 'string' && (!claims.email || !this.claimNames.groups.some((g) => g in claims))) {
        claims = { ...(await this.#userinfo(config, tokens.access_token, claims.sub)), ...claims };
      }
      this.health.reachable();
      return mapClaims(this.name, claims, this.claimNames, this.p.assume_email_verified);
    } catch (err) {
      const failure = callbackFailure(err);
      if (failure.oauthError === 'temporarily_unavailable') this.health.broken('unreachable', `token: ${failureReason(err)}`);
      throw failure;
    }
  }
}
