/**
 * Services as the rest of the gateway sees them: configuration plus the URLs derived from the issuer.
 * The canonical URI `{issuer}/{id}/mcp` is the service's RFC 8707 resource indicator and token audience.
 */
import { ruleScopes } from './rules.js';
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
