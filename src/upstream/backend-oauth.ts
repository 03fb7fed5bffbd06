/**
 * The gateway as an OAuth client of a backend that is itself an OAuth-protected MCP server
 * (`upstream_auth.mode: oauth`, docs/upstream-auth.md). MCP authorization: the backend's RFC 9728
 * protected resource metadata names its authorization server (RFC 8414 / OpenID discovery); the gateway
 * uses the configured `client_id` / `client_secret` or registers itself (RFC 7591, once, the result kept in
 * storage by the caller); each user authorizes with PKCE S256 and `resource` = the backend's URL (RFC 8707,
 * in the authorization and in every token request).
 */
import * as oidc from 'openid-client';
import { isLoopbackHost } from '../config/rules.js';
import { failureReason } from './http.js';
import { tokenEndpointFailure, tokenResponse, TokenEndpointError, type UpstreamTokenResponse } from './token-endpoint.js';

export interface BackendClient {
  client_id: string;
  client_secret?: string | undefined;
}

export interface BackendOAuthOptions {
  serviceId: string;
  serviceName: string;
  /** The backend's MCP URL: the RFC 8707 resource. */
  resource: string;
  /** The gateway's fixed redirect URI for backends (`{issuer}/connect/callback`). */
  redirectUri: string;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  scopes?: string[] | undefined;
  /** Where a registered client is kept, shared by every instance; `save` returns the client to use (first writer wins). */
  registration: { load(): Promise<BackendClient | undefined>; save(client: BackendClient): Promise<BackendClient> };
}

export interface BackendChecks {
  state: string;
  codeVerifier: string;
}

/** Plain http only towards loopback (tests, a sidecar); anything else must be https. */
function allowHttp(url: string): boolean {
  const u = URL.parse(url);
  return u !== null && u.protocol === 'http:' && isLoopbackHost(u.hostname);
}

export class BackendOAuth {
  #config: Promise<oidc.Configuration> | undefined;

  constructor(private readonly o: BackendOAuthOptions) {}

  /** RFC 9728 §3.1: `/.well-known/oauth-protected-resource` inserted before the resource's path. */
  async #authorizationServer(): Promise<URL> {
    const resource = new URL(this.o.resource);
    const path = resource.pathname === '/' ? '' : resource.pathname;
    const url = `${resource.origin}/.well-known/oauth-protected-resource${path}`;
    const res = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(10_000) });
    if (!res.ok)
      throw new TokenEndpointError(`the backend's protected resource metadata answered ${res.status}`, undefined, res.status >= 500);
    const prm = (await res.json()) as { resource?: unknown; authorization_servers?: unknown };
    // RFC 9728 §3.3: the `resource` in the metadata MUST be the resource it was fetched for.
    if (prm.resource !== this.o.resource)
      throw new TokenEndpointError(`the backend's protected resource metadata names another resource`, undefined, false);
    const as = Array.isArray(prm.authorization_servers) ? prm.authorization_servers.find((s) => typeof s === 'string') : undefined;
    if (typeof as !== 'string')
      throw new TokenEndpointError(`the backend's protected resource metadata lists no authorization server`, undefined, false);
    return new URL(as);
  }

  /** Discovery and the client (configured, registered earlier, or registered now); retried after a failure. */
  configuration(): Promise<oidc.Configuration> {
    this.#config ??= this.#build().catch((err: unknown) => {
      this.#config = undefined;
      if (err instanceof TokenEndpointError) throw err;
      throw new TokenEndpointError(`the backend's authorization server could not be used (${failureReason(err)})`, undefined, true);
    });
    return this.#config;
  }

  async #build(): Promise<oidc.Configuration> {
    const server = await this.#authorizationServer();
    const execute = allowHttp(server.href) ? [oidc.allowInsecureRequests] : [];
    const known = this.o.clientId ? { client_id: this.o.clientId, client_secret: this.o.clientSecret } : await this.o.registration.load();
    if (known) {
      const auth = known.client_secret ? oidc.ClientSecretPost(known.client_secret) : oidc.None();
      return oidc.discovery(server, known.client_id, known.client_secret, auth, { execute });
    }
    // RFC 7591: a confidential web client whose one redirect URI is the gateway's connect callback.
    const registered = await oidc.dynamicClientRegistration(
      server,
      {
        client_name: `mcp-oauth-gateway for ${this.o.serviceName}`,
        redirect_uris: [this.o.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
      undefined,
      { execute },
    );
    const meta = registered.clientMetadata();
    const mine = { client_id: meta.client_id, client_secret: typeof meta.client_secret === 'string' ? meta.client_secret : undefined };
    const winner = await this.o.registration.save(mine);
    if (winner.client_id === mine.client_id) return registered;
    const auth = winner.client_secret ? oidc.ClientSecretPost(winner.client_secret) : oidc.None();
    return oidc.discovery(server, winner.client_id, winner.client_secret, auth, { execute });
  }

  async start(): Promise<{ url: URL; checks: BackendChecks }> {
    const config = await this.configuration();
    const checks = { state: oidc.randomState(), codeVerifier: oidc.randomPKCECodeVerifier() };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.o.redirectUri,
      response_type: 'code',
      ...(this.o.scopes?.length ? { scope: this.o.scopes.join(' ') } : {}),
      resource: this.o.resource,
      state: checks.state,
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url, checks };
  }

  async finish(callbackUrl: URL, checks: BackendChecks): Promise<UpstreamTokenResponse> {
    const config = await this.configuration();
    try {
      return tokenResponse(
        await oidc.authorizationCodeGrant(
          config,
          callbackUrl,
          { pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state },
          { resource: this.o.resource },
        ),
      );
    } catch (err) {
      throw tokenEndpointFailure(err);
    }
  }

  async refresh(refreshToken: string): Promise<UpstreamTokenResponse> {
    const config = await this.configuration();
    try {
      return tokenResponse(await oidc.refreshTokenGrant(config, refreshToken, { resource: this.o.resource }));
    } catch (err) {
      throw tokenEndpointFailure(err);
    }
  }

  async grant(): Promise<UpstreamTokenResponse> {
    throw new TokenEndpointError('no other grant towards a backend', 'unsupported_grant_type', false);
  }
}
