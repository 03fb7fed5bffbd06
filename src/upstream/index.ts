/**
 * Builds the upstream identity providers from `oauth_providers` (one or several, by name: the registry).
 */
import type { FastifyBaseLogger } from 'fastify';
import { plainHttpNotice, providerKind, type GatewayConfig, type ProviderConfig } from '../config/schema.js';
import { assertDevSignInAllowed, DevSignIn } from './dev.js';
import { OAuth2Upstream } from './oauth2.js';
import { OidcUpstream } from './oidc.js';
import type { ClaimNames } from './profile.js';
import type { UpstreamIdp } from './types.js';

export type { UpstreamIdp, UpstreamChecks } from './types.js';
export { UpstreamError, UpstreamHealth } from './types.js';
export { DevSignIn } from './dev.js';
export type { UpstreamTokenEndpoint, UpstreamTokenResponse } from './token-endpoint.js';

/** A redirecting identity provider, or the local development sign-in form. */
export type SignIn = UpstreamIdp | DevSignIn;

type ClaimMapping = Partial<Record<keyof ClaimNames, string | undefined>>;

/**
 * Where each attribute is read from. A configured `claims:` entry is used alone; otherwise the defaults
 * of the original gateway (docs/authorization.md, upstream providers): OAuth 2.0 userinfo `id|sub|user_id`,
 * `name|display_name|username`, `avatar_url|picture|profile_image_url`; OpenID Connect `sub`,
 * `name|preferred_username` (Okta's fallback in the original, applied to every OIDC kind), `picture`.
 */
export function claimNames(kind: string, mapping: ClaimMapping | undefined): ClaimNames {
  const oauth2 = kind === 'github' || kind === 'custom';
  const pick = (configured: string | undefined, defaults: string[]) => (configured ? [configured] : defaults);
  return {
    id: pick(mapping?.id, oauth2 ? ['id', 'sub', 'user_id'] : ['sub']),
    email: pick(mapping?.email, ['email']),
    name: pick(mapping?.name, oauth2 ? ['name', 'display_name', 'username'] : ['name', 'preferred_username']),
    picture: pick(mapping?.picture, oauth2 ? ['avatar_url', 'picture', 'profile_image_url'] : ['picture']),
    groups: pick(mapping?.groups, ['groups']),
  };
}

/** Whether a service signing in at `provider` lets its backend act as the user, so the sign-in asks for a refresh token. */
export function needsRefreshToken(config: GatewayConfig, provider: string): boolean {
  return Object.values(config.mcp_services).some(
    (s) => s.oauth_provider === provider && s.upstream_auth !== undefined && s.upstream_auth.mode !== 'oauth',
  );
}

/** Throws (at createGateway time) for an invalid or, for `dev`, a not-allowed provider. */
function createOne(config: GatewayConfig, name: string, p: ProviderConfig): SignIn {
  const kind = providerKind(name, p);
  const names = claimNames(kind, p.claims);
  switch (kind) {
    case 'dev':
      assertDevSignInAllowed(name, config);
      return new DevSignIn(name, p.assume_email_verified);
    case 'github':
      return new OAuth2Upstream(name, kind, p, names);
    case 'custom':
      return new OAuth2Upstream(name, kind, p, names);
    default:
      return new OidcUpstream(name, kind, p, names, needsRefreshToken(config, name));
  }
}

/** The label of a provider on the sign-in chooser (`display_name`, else a name for the well-known kinds, else the key). */
export function providerLabel(name: string, p: ProviderConfig): string {
  if (p.display_name) return p.display_name;
  const kind = providerKind(name, p);
  return kind === 'google' ? 'Google' : kind === 'github' ? 'GitHub' : kind === 'okta' ? 'Okta' : name;
}

/**
 * Every configured provider by name, in the configuration's order. A second provider is a separate
 * sign-in: its users have their own ids `{provider}:{subject}` (no implicit account linking,
 * docs/authorization.md).
 */
export class UpstreamRegistry {
  readonly #byName: ReadonlyMap<string, SignIn>;
  readonly #labels: ReadonlyMap<string, string>;

  constructor(config: GatewayConfig) {
    const byName = new Map<string, SignIn>();
    const labels = new Map<string, string>();
    for (const [name, p] of Object.entries(config.oauth_providers)) {
      byName.set(name, createOne(config, name, p));
      labels.set(name, providerLabel(name, p));
    }
    this.#byName = byName;
    this.#labels = labels;
  }

  get(name: string): SignIn | undefined {
    return this.#byName.get(name);
  }

  get names(): string[] {
    return [...this.#byName.keys()];
  }

  get size(): number {
    return this.#byName.size;
  }

  label(name: string): string {
    return this.#labels.get(name) ?? name;
  }

  /** The redirecting providers (every kind but the local development form). */
  get redirecting(): UpstreamIdp[] {
    return [...this.#byName.values()].filter((s): s is UpstreamIdp => !('local' in s));
  }
}

/** The first configured provider (the only one in a single-provider configuration). */
export function createUpstream(config: GatewayConfig): SignIn | undefined {
  const first = Object.entries(config.oauth_providers)[0];
  return first ? createOne(config, first[0], first[1]) : undefined;
}

/**
 * Start-up lines about the provider, without blocking the start: one warning when plain http is accepted
 * because the provider is on loopback, and OpenID Connect discovery attempted now, so an unreachable or
 * misconfigured provider is a warning at start-up (and in /ready) rather than a surprise at the first
 * sign-in. A failed discovery is retried at each sign-in.
 */
export function announceUpstream(
  config: GatewayConfig,
  signIn: SignIn | undefined,
  log: Pick<FastifyBaseLogger, 'warn' | 'info'>,
): Promise<void> {
  if (!signIn || 'local' in signIn) return Promise.resolve();
  const name = signIn.name;
  const p = config.oauth_providers[name];
  if (!p) return Promise.resolve();
  const notice = plainHttpNotice(name, p);
  if (notice) log.warn({ provider: name, allow_insecure_http: p.allow_insecure_http }, notice);
  if (!signIn.prepare) return Promise.resolve();
  return signIn.prepare().then(
    () => log.info({ provider: name }, `identity provider '${name}': OpenID Connect discovery succeeded`),
    (err: unknown) =>
      log.warn(
        { provider: name, reason: signIn.health.reason, err: (err as { cause?: unknown }).cause ?? err },
        `identity provider '${name}' cannot be used yet: ${(err as Error).message}. The gateway runs; ${
          signIn.health.state === 'unreachable'
            ? 'sign-ins show "temporarily unavailable" until it answers'
            : 'sign-ins fail with this reason until the provider or oauth_providers.' + name + '.issuer is fixed'
        } (discovery is retried at each sign-in; /ready shows identity_provider.state)`,
      ),
  );
}

/** `announceUpstream` for every provider of the registry. */
export function announceUpstreams(
  config: GatewayConfig,
  registry: UpstreamRegistry,
  log: Pick<FastifyBaseLogger, 'warn' | 'info'>,
): Promise<void> {
  return Promise.all(registry.names.map((n) => announceUpstream(config, registry.get(n), log))).then(() => undefined);
}
export { BackendOAuth, type BackendOAuthOptions, type BackendClient, type BackendChecks } from './backend-oauth.js';
