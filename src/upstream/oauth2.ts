/**
 * Plain OAuth 2.0 upstreams: GitHub (and GitHub Enterprise) and `custom` providers with explicit
 * authorization/token/userinfo URLs. openid-client does the code exchange (state, PKCE S256, and it
 * rejects GitHub's "200 with an error body" quirk); the profile comes from the user APIs.
 */
import * as oidc from 'openid-client';
import type { ProviderConfig, ProviderKind } from '../config/schema.js';
import { callbackFailure, executeOptions, failureReason, getJson, insecureAllowed } from './http.js';
import { mapClaims, type ClaimNames } from './profile.js';
import { tokenEndpointOf, tokenResponse, type UpstreamTokenResponse } from './token-endpoint.js';
import { UpstreamError, UpstreamHealth, type UpstreamChecks, type UpstreamIdp } from './types.js';

interface Endpoints {
  issuer: string;
  authorization: string;
  token: string;
  /** GitHub: API base; custom: the userinfo URL. */
  api: string;
}

function endpointsOf(name: string, kind: ProviderKind, p: ProviderConfig): Endpoints {
  if (kind === 'github') {
    const web = (p.base_url ?? 'https://github.com').replace(/\/+$/, '');
    const api = (p.api_url ?? (p.base_url ? `${web}/api/v3` : 'https://api.github.com')).replace(/\/+$/, '');
    return {
      issuer: web,
      authorization: p.authorization_url ?? `${web}/login/oauth/authorize`,
      token: p.token_url ?? `${web}/login/oauth/access_token`,
      api,
    };
  }
  if (!p.authorization_url || !p.token_url || !p.userinfo_url) {
    throw new TypeError(
      `oauth_providers.${name}: a custom provider needs issuer (OpenID Connect) or authorization_url, token_url and userinfo_url`,
    );
  }
  return { issuer: new URL(p.authorization_url).origin, authorization: p.authorization_url, token: p.token_url, api: p.userinfo_url };
}

/**
 * GitHub answers a bad, expired or replayed code with HTTP 200 and `{"error": "bad_verification_code"}`.
 * openid-client refuses that response (no access_token); this names the provider's error for the page.
 */
function tokenErrorInBody(err: unknown): UpstreamError | undefined {
  const body = (err as { cause?: { body?: unknown } } | undefined)?.cause?.body ?? (err as { body?: unknown } | undefined)?.body;
  const error = body && typeof body === 'object' ? (body as Record<string, unknown>).error : undefined;
  if (typeof error !== 'string') return undefined;
  const code = error.replace(/[^\w.-]/g, '').slice(0, 64);
  return new UpstreamError(
    code === 'access_denied' ? 'access_denied' : 'server_error',
    `the identity provider refused the code exchange (${code})`,
    { cause: err },
  );
}

/**
 * A custom provider is plain OAuth 2.0: the identity comes from `userinfo_url`. Many such providers are
 * OpenID providers underneath and return an ID token when `openid` is among the scopes (the original's
 * examples request it). openid-client would then validate that token against metadata we can only guess
 * (issuer, signing algorithms: ES256 from a local IdP failed every sign-in) although nothing uses it, so
 * it is removed from the token endpoint's response before openid-client reads it.
 */
function withoutIdToken(tokenEndpoint: string): typeof fetch {
  return (async (url: string, options: RequestInit) => {
    const res = await fetch(url, options);
    if (url !== tokenEndpoint || !(res.headers.get('content-type') ?? '').includes('json')) return res;
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const headers = new Headers(res.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    if (!body || typeof body !== 'object' || Array.isArray(body) || !('id_token' in body))
      return new Response(text, { status: res.status, statusText: res.statusText, headers });
    const { id_token: _unused, ...rest } = body as Record<string, unknown>;
    return new Response(JSON.stringify(rest), { status: res.status, statusText: res.statusText, headers });
  }) as typeof fetch;
}

interface GithubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
}

export class OAuth2Upstream implements UpstreamIdp {
  readonly #config: oidc.Configuration;
  readonly #endpoints: Endpoints;
  /** No discovery: known only from sign-ins (the token and profile requests). */
  readonly health: UpstreamHealth;
  readonly tokenEndpoint = tokenEndpointOf(async () => this.#config);

  constructor(
    readonly name: string,
    readonly kind: ProviderKind,
    private readonly p: ProviderConfig,
    private readonly claimNames: ClaimNames,
  ) {
    if (!p.client_id || !p.client_secret) throw new TypeError(`oauth_providers.${name}: client_id and client_secret are required`);
    this.health = new UpstreamHealth(name, kind);
    this.#endpoints = endpointsOf(name, kind, p);
    const e = this.#endpoints;
    // Credentials in the form body: GitHub's documented method, and what the original gateway sent to
    // custom providers (RFC 6749 §2.3.1 allows the body; docs/authorization.md, upstream providers).
    this.#config = new oidc.Configuration(
      { issuer: e.issuer, authorization_endpoint: e.authorization, token_endpoint: e.token },
      p.client_id,
      { client_secret: p.client_secret },
      oidc.ClientSecretPost(p.client_secret),
    );
    for (const fn of executeOptions(insecureAllowed(name, p))) fn(this.#config);
    if (kind === 'custom') this.#config[oidc.customFetch] = withoutIdToken(e.token);
  }

  async start(redirectUri: string): Promise<{ url: URL; checks: UpstreamChecks }> {
    const checks: UpstreamChecks = { state: oidc.randomState(), codeVerifier: oidc.randomPKCECodeVerifier() };
    const scope = this.p.scopes.length ? this.p.scopes.join(' ') : this.kind === 'github' ? 'read:user user:email' : '';
    const url = oidc.buildAuthorizationUrl(this.#config, {
      ...this.p.extra_params,
      redirect_uri: redirectUri,
      response_type: 'code',
      ...(scope ? { scope } : {}),
      state: checks.state,
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url, checks };
  }

  async finish(callbackUrl: URL, checks: UpstreamChecks, keep?: (tokens: UpstreamTokenResponse) => void) {
    try {
      // RFC 9207 `iss` is not sent by GitHub; openid-client only checks it when present.
      const tokens = await oidc.authorizationCodeGrant(this.#config, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
      });
      keep?.(tokenResponse(tokens));
      const claims =
        this.kind === 'github'
          ? await this.#githubClaims(tokens.access_token)
          : ((await getJson(this.#endpoints.api, tokens.access_token)) as Record<string, unknown>);
      this.health.reachable();
      return mapClaims(this.name, claims, this.claimNames, this.p.assume_email_verified);
    } catch (err) {
      const failure = callbackFailure(tokenErrorInBody(err) ?? err);
      if (failure.oauthError === 'temporarily_unavailable') this.health.broken('unreachable', failureReason(err));
      throw failure;
    }
  }

  /** GitHub: `/user`, and the primary verified address from `/user/emails` (the profile email may be unset or unverified). */
  async #githubClaims(accessToken: string): Promise<Record<string, unknown>> {
    const accept = 'application/vnd.github+json';
    const user = (await getJson(`${this.#endpoints.api}/user`, accessToken, accept)) as Record<string, unknown>;
    if (typeof user.id !== 'number' && typeof user.id !== 'string') throw new UpstreamError('server_error', 'GitHub returned no user id');
    const emails = (await getJson(`${this.#endpoints.api}/user/emails`, accessToken, accept).catch(() => [])) as GithubEmail[];
    const primary = Array.isArray(emails) ? emails.find((e) => e.primary && e.verified) : undefined;
    return {
      ...user,
      name: user.name ?? user.login,
      picture: user.avatar_url,
      email: primary?.email,
      email_verified: primary ? true : undefined,
    };
  }
}
