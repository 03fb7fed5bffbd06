/**
 * What a backend receives to act as the user (`mcp_services.<id>.upstream_auth`, docs/upstream-auth.md):
 *
 * - passthrough: the access token of the user's sign-in at the service's provider, refreshed with the
 *   provider's refresh token shortly before it expires;
 * - token_exchange: that token (or the ID token) exchanged at the provider for one with the backend's
 *   audience and scope (RFC 8693, or Entra's on-behalf-of form), cached until shortly before it expires.
 *
 * Refresh is single-flight per user and provider: one promise per key in this process, and a lock record
 * in storage (`setIfAbsent` with a TTL) across instances, so that two parallel requests never both spend a
 * rotating refresh token. A provider's `invalid_grant` drops the stored tokens: the user has to connect again
 * (`connectUrl`). The token endpoint calls themselves are injected per provider (`useProvider`; src/upstream
 * implements them), so this folder needs neither openid-client nor the authorization server.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { GatewayConfig, UpstreamAuthConfig } from '../config/schema.js';
import type { AuditLog } from '../observability/audit.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../storage/store.js';
import { TokenCipher } from './cipher.js';
import { UpstreamTokenStore, type UpstreamTokenSet } from './token-store.js';

/** A token endpoint response (RFC 6749 §5.1); src/upstream/token-endpoint.ts has the same shape. */
export interface TokenResponse {
  access_token: string;
  refresh_token?: string | undefined;
  id_token?: string | undefined;
  token_type?: string | undefined;
  scope?: string | undefined;
  expires_in?: number | undefined;
}

/** A provider's token endpoint. Failures throw with `oauthError` (the provider's code) or `unavailable`. */
export interface TokenEndpoint {
  refresh(refreshToken: string): Promise<TokenResponse>;
  grant(grantType: string, params: Record<string, string>): Promise<TokenResponse>;
}

/** A backend's own authorization server (mode: oauth; src/upstream/backend-oauth.ts has the same shape). */
export interface BackendEndpoint extends TokenEndpoint {
  start(): Promise<{ url: URL; checks: { state: string; codeVerifier: string } }>;
  finish(callbackUrl: URL, checks: { state: string; codeVerifier: string }): Promise<TokenResponse>;
}

/** The service as the broker needs it (built once per service by the proxy). */
export interface CredentialTarget {
  serviceId: string;
  provider: string;
  auth: UpstreamAuthConfig;
  /** The header name, lower-case, and whether it carries `Bearer <token>`. */
  header: string;
  bearer: boolean;
}

export type CredentialFailure = 'not_connected' | 'unavailable' | 'exchange_failed';

export type CredentialResult = { ok: true; value: string } | { ok: false; reason: CredentialFailure };

const TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:';
const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const GRANT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const LOCK_PREFIX = 'gw:upstream-lock:';
/** A lock left by an instance that died mid-refresh stops counting after this. */
const LOCK_TTL_SECONDS = 30;
/** How long a request waits for another instance's refresh before answering "try again". */
const LOCK_WAIT_MS = 10_000;
/** An exchanged token without `expires_in` is reused for at most this long. */
const DEFAULT_EXCHANGED_LIFETIME_MS = 60_000;

/** A record that can be refreshed: the sign-in tokens at a provider, or a backend's (mode: oauth). */
interface Refreshable {
  kind: 'sign_in' | 'oauth';
  name: string;
  user: string;
  endpoint: TokenEndpoint | undefined;
  /** The `provider` label of the refresh metric: the provider, or the service for a backend. */
  label: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

function expiresAt(expiresIn: number | undefined, now = Date.now()): number | undefined {
  return typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? now + expiresIn * 1000 : undefined;
}

export interface CredentialBrokerOptions {
  config: GatewayConfig;
  issuer: string;
  store: Store;
  audit: AuditLog;
  metrics: Metrics;
  log: FastifyBaseLogger;
}

export class CredentialBroker {
  readonly tokens: UpstreamTokenStore;
  readonly #endpoints = new Map<string, TokenEndpoint>();
  readonly #backends = new Map<string, BackendEndpoint>();
  readonly #inFlight = new Map<string, Promise<unknown>>();
  readonly #skewMs: number;
  readonly #issuer: string;
  readonly #providers: ReadonlySet<string>;
  readonly #instance = randomUUID();

  constructor(private readonly o: CredentialBrokerOptions) {
    const cfg = o.config.upstream_tokens;
    if (!cfg) throw new TypeError('upstream_tokens: a key is required for services with upstream_auth');
    const t = o.config.tokens;
    this.tokens = new UpstreamTokenStore(o.store, TokenCipher.fromConfig(cfg), Math.max(t.refresh_token_ttl, t.grant_ttl) + 86_400);
    this.#skewMs = cfg.refresh_before_expiry * 1000;
    this.#issuer = o.issuer;
    this.#providers = new Set(
      Object.values(o.config.mcp_services)
        .filter((s) => s.upstream_auth && s.upstream_auth.mode !== 'oauth')
        .flatMap((s) => (typeof s.oauth_provider === 'string' ? [s.oauth_provider] : [])),
    );
  }

  /** Built when some service has `upstream_auth`; otherwise the gateway holds no upstream token at all. */
  static fromConfig(o: CredentialBrokerOptions): CredentialBroker | undefined {
    return Object.values(o.config.mcp_services).some((s) => s.upstream_auth) ? new CredentialBroker(o) : undefined;
  }

  /** The provider's token endpoint (the authorization server supplies it when it builds the sign-in). */
  useProvider(name: string, endpoint: TokenEndpoint | undefined): void {
    if (endpoint) this.#endpoints.set(name, endpoint);
  }

  /** A backend's authorization server (mode: oauth), by service id. */
  useBackend(serviceId: string, endpoint: BackendEndpoint): void {
    this.#backends.set(serviceId, endpoint);
  }

  backend(serviceId: string): BackendEndpoint | undefined {
    return this.#backends.get(serviceId);
  }

  /** Keeps the tokens a backend's authorization server issued to the gateway for the user (mode: oauth). */
  async saveBackend(serviceId: string, user: string, t: TokenResponse): Promise<void> {
    await this.tokens.put('oauth', serviceId, user, this.#tokenSet(t));
    this.o.audit.emit('upstream.connected', { user, service: serviceId, via: 'connect' });
  }

  /** Whether a sign-in at `provider` must keep its tokens (some service passes them on or exchanges them). */
  keepsSignInTokens(provider: string): boolean {
    return this.#providers.has(provider);
  }

  /** Keeps the tokens of a sign-in (or of a connect) for the user. */
  async saveSignIn(provider: string, user: string, t: TokenResponse, how: 'sign_in' | 'connect'): Promise<void> {
    await this.tokens.put('sign_in', provider, user, this.#tokenSet(t));
    this.o.audit.emit('upstream.connected', { user, provider, via: how });
  }

  /** The page a person opens to connect (again) for a service: the upstream sign-in, nothing in the URL but the service. */
  connectUrl(serviceId: string): string {
    return `${this.#issuer}/connect/${encodeURIComponent(serviceId)}`;
  }

  /** The header value for this user on this service, or why there is none. */
  async credentialFor(target: CredentialTarget, user: string): Promise<CredentialResult> {
    const mode = target.auth.mode;
    const token =
      mode === 'token_exchange'
        ? await this.#exchanged(target, user)
        : mode === 'oauth'
          ? await this.#backendToken(target.serviceId, user)
          : await this.#signInToken(target.provider, user);
    if (typeof token !== 'string') return { ok: false, reason: token.reason };
    return { ok: true, value: target.bearer ? `Bearer ${token}` : token };
  }

  /** Deletes one connection (a provider's sign-in tokens, or a service's exchanged token) or all of the user's. */
  async disconnect(user: string, what?: { provider?: string; service?: string }): Promise<number> {
    let n: number;
    if (what?.provider) n = Number(await this.tokens.delete('sign_in', what.provider, user));
    else if (what?.service)
      n = Number(await this.tokens.delete('exchange', what.service, user)) + Number(await this.tokens.delete('oauth', what.service, user));
    else n = await this.tokens.deleteUser(user);
    if (n > 0) this.o.audit.emit('upstream.disconnected', { user, provider: what?.provider, service: what?.service });
    return n;
  }

  #tokenSet(t: TokenResponse, previous?: UpstreamTokenSet): UpstreamTokenSet {
    return {
      access_token: t.access_token,
      // RFC 6749 §6: a refresh response without a new refresh token leaves the old one valid.
      refresh_token: t.refresh_token ?? previous?.refresh_token,
      id_token: t.id_token ?? previous?.id_token,
      token_type: t.token_type,
      scope: t.scope ?? previous?.scope,
      expires_at: expiresAt(t.expires_in),
    };
  }

  #fresh(t: UpstreamTokenSet): boolean {
    return t.expires_at === undefined || t.expires_at - this.#skewMs > Date.now();
  }

  /** One promise per key in this process: parallel requests of one user share a refresh or an exchange. */
  #once<T>(key: string, run: () => Promise<T>): Promise<T> {
    const running = this.#inFlight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = run().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, p);
    return p;
  }

  /** The user's sign-in access token at `provider`, refreshed first when it is about to expire. */
  #signInTokens(provider: string, user: string): Promise<UpstreamTokenSet | { reason: CredentialFailure }> {
    return this.#current({ kind: 'sign_in', name: provider, user, endpoint: this.#endpoints.get(provider), label: provider });
  }

  /** mode: oauth: the token from the backend's authorization server, refreshed there. */
  async #backendToken(serviceId: string, user: string): Promise<string | { reason: CredentialFailure }> {
    const t = await this.#current({ kind: 'oauth', name: serviceId, user, endpoint: this.#backends.get(serviceId), label: serviceId });
    return 'access_token' in t ? t.access_token : t;
  }

  async #current(r: Refreshable): Promise<UpstreamTokenSet | { reason: CredentialFailure }> {
    const t = await this.tokens.get(r.kind, r.name, r.user);
    if (!t) return { reason: 'not_connected' };
    if (this.#fresh(t)) return t;
    if (!t.refresh_token) {
      // Still valid inside the skew window: use it; past its expiry, only a new connection helps.
      if (t.expires_at! > Date.now()) return t;
      await this.tokens.delete(r.kind, r.name, r.user);
      return { reason: 'not_connected' };
    }
    return this.#once(`${r.kind}:${r.name}:${r.user}`, () => this.#refreshLocked(r));
  }

  async #signInToken(provider: string, user: string): Promise<string | { reason: CredentialFailure }> {
    const t = await this.#signInTokens(provider, user);
    return 'access_token' in t ? t.access_token : t;
  }

  /** Refresh under the cross-instance lock; a request that finds it taken waits for the other instance's result. */
  async #refreshLocked(r: Refreshable): Promise<UpstreamTokenSet | { reason: CredentialFailure }> {
    const lock = `${LOCK_PREFIX}${r.kind === 'sign_in' ? 'idp' : r.kind}:${r.name}:${r.user}`;
    const until = Date.now() + LOCK_WAIT_MS;
    for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
      if (await this.o.store.setIfAbsent(lock, { instance: this.#instance, at: Date.now() }, { ttlSeconds: LOCK_TTL_SECONDS })) {
        try {
          // Re-read under the lock: another instance may have refreshed since this request looked.
          const current = await this.tokens.get(r.kind, r.name, r.user, true);
          if (!current) return { reason: 'not_connected' };
          if (this.#fresh(current) || !current.refresh_token) return current;
          return await this.#refresh(r, current);
        } finally {
          await this.o.store.delete(lock).catch(() => undefined);
        }
      }
      await sleep(wait);
      const current = await this.tokens.get(r.kind, r.name, r.user, true);
      if (!current) return { reason: 'not_connected' };
      if (this.#fresh(current)) return current;
      if (Date.now() > until) return { reason: 'unavailable' };
    }
  }

  async #refresh(r: Refreshable, current: UpstreamTokenSet): Promise<UpstreamTokenSet | { reason: CredentialFailure }> {
    const { endpoint, user } = r;
    const provider = r.label;
    if (!endpoint) return { reason: 'unavailable' };
    try {
      const next = this.#tokenSet(await endpoint.refresh(current.refresh_token!), current);
      await this.tokens.put(r.kind, r.name, user, next);
      this.o.metrics.upstreamTokenRefreshes.inc({ provider, outcome: 'success' });
      return next;
    } catch (err) {
      const e = err as { oauthError?: string; message?: string };
      // RFC 6749 §5.2 invalid_grant: the refresh token is invalid, expired or revoked: the grant is gone.
      const refused = e.oauthError === 'invalid_grant';
      this.o.metrics.upstreamTokenRefreshes.inc({ provider, outcome: refused ? 'refused' : 'error' });
      this.o.audit.emit('upstream.refresh_failed', {
        user,
        ...(r.kind === 'oauth' ? { service: r.name } : { provider }),
        reason: e.oauthError ?? 'unavailable',
      });
      if (refused) {
        await this.tokens.delete(r.kind, r.name, user);
        return { reason: 'not_connected' };
      }
      this.o.log.warn({ provider, reason: e.message }, 'upstream token refresh failed');
      return { reason: 'unavailable' };
    }
  }

  /** token_exchange: the cached token for this service, or a new exchange (single-flight in this process). */
  async #exchanged(target: CredentialTarget, user: string): Promise<string | { reason: CredentialFailure }> {
    const cached = await this.tokens.get('exchange', target.serviceId, user);
    if (cached && this.#fresh(cached)) return cached.access_token;
    return this.#once(`svc:${target.serviceId}:${user}`, () => this.#exchange(target, user));
  }

  async #exchange(target: CredentialTarget, user: string): Promise<string | { reason: CredentialFailure }> {
    const subject = await this.#signInTokens(target.provider, user);
    if (!('access_token' in subject)) return subject;
    const a = target.auth;
    const subjectToken = a.subject_token === 'id_token' ? subject.id_token : subject.access_token;
    if (!subjectToken) return { reason: 'not_connected' };
    const endpoint = this.#endpoints.get(target.provider);
    if (!endpoint) return { reason: 'unavailable' };
    const [grantType, params] =
      a.exchange_form === 'entra_obo'
        ? // Microsoft identity platform, OAuth 2.0 On-Behalf-Of flow: the user's token as `assertion`.
          [GRANT_JWT_BEARER, { assertion: subjectToken, requested_token_use: 'on_behalf_of', scope: a.scope! }]
        : // RFC 8693 §2.1: subject_token and its type; audience and scope name the target.
          [
            GRANT_TOKEN_EXCHANGE,
            {
              subject_token: subjectToken,
              subject_token_type: TOKEN_TYPE + a.subject_token,
              requested_token_type: `${TOKEN_TYPE}access_token`,
              ...(a.audience ? { audience: a.audience } : {}),
              ...(a.scope ? { scope: a.scope } : {}),
            },
          ];
    try {
      const t = await endpoint.grant(grantType, params);
      const set: UpstreamTokenSet = {
        access_token: t.access_token,
        token_type: t.token_type,
        scope: t.scope,
        expires_at: expiresAt(t.expires_in) ?? Date.now() + Math.max(DEFAULT_EXCHANGED_LIFETIME_MS, this.#skewMs + 1000),
      };
      await this.tokens.put('exchange', target.serviceId, user, set);
      this.o.metrics.upstreamTokenExchanges.inc({ service: target.serviceId, outcome: 'success' });
      return set.access_token;
    } catch (err) {
      const e = err as { oauthError?: string; message?: string };
      // invalid_grant: the provider refused the user's token itself (revoked there): connect again.
      const refused = e.oauthError === 'invalid_grant';
      this.o.metrics.upstreamTokenExchanges.inc({ service: target.serviceId, outcome: e.oauthError ? 'refused' : 'error' });
      this.o.audit.emit('upstream.exchange_failed', {
        user,
        service: target.serviceId,
        provider: target.provider,
        reason: e.oauthError ?? 'unavailable',
      });
      this.o.log.warn({ service: target.serviceId, provider: target.provider, reason: e.message }, 'upstream token exchange failed');
      if (refused) {
        await this.tokens.delete('sign_in', target.provider, user);
        return { reason: 'not_connected' };
      }
      return { reason: e.oauthError ? 'exchange_failed' : 'unavailable' };
    }
  }
}
