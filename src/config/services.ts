/**
 * Services as the rest of the gateway sees them: configuration plus the URLs derived from the issuer.
 * The canonical URI `{issuer}/{id}/mcp` is the service's RFC 8707 resource indicator and token audience.
 */
import { enterpriseProviderName, ruleScopes } from './rules.js';
import type { GatewayConfig, PolicyConfig, ServiceConfig } from './schema.js';

export interface ResolvedService {
  id: string;
  name: string;
  /**
   * Backend URL, parsed. A `command` service (src/stdio) has none: it gets the placeholder
   * `http://stdio.invalid/{id}` (RFC 2606 `.invalid`, never resolvable), so per-service proxy state stays
   * uniform; the proxy hands such a service to the stdio bridge before anything is forwarded.
   */
  backend: URL;
  /** The local stdio server of a `command` service (docs/stdio.md); undefined for a `url` service. */
  stdio: StdioSpec | undefined;
  /** `{issuer}/{id}/mcp`: resource indicator, token `aud`, PRM `resource`. */
  canonicalUri: string;
  /** `{issuer}/.well-known/oauth-protected-resource/{id}/mcp` (RFC 9728 path-inserted form). */
  resourceMetadataUrl: string;
  scopes: string[];
  /**
   * Scopes every request must carry: `required_scopes`, else every scope of the service that no
   * `tools` / `prompts` / `resources` rule asks for (those are requested by step-up when first needed).
   */
  requiredScopes: string[];
  authRequired: boolean;
  /**
   * The identity providers people sign in with for this service (keys under `oauth_providers`, in the
   * configuration's order): `oauth_provider` as one name or a list; omitted, every provider.
   */
  providers: string[];
  /** The redirecting sign-ins among `providers` (keys under `oauth_providers`): what the chooser offers. */
  signInProviders: string[];
  /**
   * Whether `providers` leaves out some configured provider: only then does a token's provider need
   * checking on each request (every token carries a provider of this gateway).
   */
  providersRestricted: boolean;
  /** Machine clients (`registration.clients` with `client_credentials`) whose `services` list this one. */
  machineClients: string[];
  /** The service policy, or the global default. */
  policy: PolicyConfig | undefined;
  config: ServiceConfig;
}

/** A `command` service's process settings, as the stdio bridge (src/stdio) uses them. */
export interface StdioSpec {
  /** argv: program and arguments, never a shell string. */
  command: readonly string[];
  /** Configured variables (PATH comes from the gateway unless listed here). */
  env: Readonly<Record<string, string>>;
  cwd: string | undefined;
  perUser: boolean;
  idleTimeoutMs: number;
  maxProcesses: number;
}

export function canonicalUri(issuer: string, id: string): string {
  return `${issuer.replace(/\/+$/, '')}/${id}/mcp`;
}

export function resolveServices(config: GatewayConfig): Map<string, ResolvedService> {
  const issuer = config.issuer.replace(/\/+$/, '');
  const out = new Map<string, ResolvedService>();
  for (const [id, s] of Object.entries(config.mcp_services)) {
    out.set(id, {
      id,
      name: s.name,
      backend: new URL(s.url ?? `http://stdio.invalid/${encodeURIComponent(id)}`),
      stdio:
        s.command === undefined
          ? undefined
          : {
              command: [...s.command],
              env: { ...s.env },
              cwd: s.cwd,
              perUser: s.per_user,
              idleTimeoutMs: s.idle_timeout * 1000,
              maxProcesses: s.max_processes,
            },
      canonicalUri: canonicalUri(issuer, id),
      resourceMetadataUrl: `${issuer}/.well-known/oauth-protected-resource/${id}/mcp`,
      scopes: [...s.scopes],
      requiredScopes: s.required_scopes ? [...s.required_scopes] : defaultRequiredScopes(s),
      authRequired: s.auth_required,
      providers: serviceProviders(config, s),
      signInProviders: serviceProviders(config, s).filter((p) => Object.hasOwn(config.oauth_providers, p)),
      providersRestricted: serviceProviders(config, s).length < identitySources(config).length,
      machineClients: config.registration.clients
        .filter((c) => c.grant_types.includes('client_credentials') && c.services.includes(id))
        .map((c) => c.client_id),
      policy: s.policy ?? config.access_policy,
      config: s,
    });
  }
  return out;
}

function defaultRequiredScopes(s: ServiceConfig): string[] {
  const stepUp = ruleScopes(s);
  return s.scopes.filter((sc) => !stepUp.has(sc));
}

/** Every identity source's provider name: the keys under `oauth_providers`, then the enterprise issuers' (ID-JAG). */
export function identitySources(config: Pick<GatewayConfig, 'oauth_providers' | 'enterprise_authorization'>): string[] {
  const names = Object.keys(config.oauth_providers);
  for (const i of config.enterprise_authorization.issuers) {
    const name = enterpriseProviderName(i, config.oauth_providers);
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** `oauth_provider` resolved: one name, a list, or (omitted) every identity source. */
export function serviceProviders(
  config: Pick<GatewayConfig, 'oauth_providers' | 'enterprise_authorization'>,
  s: Pick<ServiceConfig, 'oauth_provider'>,
): string[] {
  const all = identitySources(config);
  if (s.oauth_provider === undefined) return all;
  const named = Array.isArray(s.oauth_provider) ? s.oauth_provider : [s.oauth_provider];
  return all.filter((p) => named.includes(p));
}
