/**
 * Everything the hot path needs per service, computed once at start-up: the backend pool and target,
 * challenge strings, header name sets, limits, metric children and the concurrency counter.
 */
import { Pool } from 'undici';
import type { JWTVerifyOptions } from 'jose';
import { buildBearerChallenge } from '../kernel/challenge.js';
import { headerNameProblem, normalizeHeaderName } from '../config/rules.js';
import type { ResolvedService } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import { verifyOptions } from './access-token.js';
import { DEFAULT_IDENTITY_HEADERS, type IdentityHeaderNames } from './identity.js';
import { backendTarget, type BackendTarget } from './path.js';
import { SessionBindings } from './sessions.js';
import { ToolPolicy } from './tool-policy.js';
import type { CredentialTarget } from '../credentials/broker.js';
import { proxyError, type ProxyError } from './respond.js';

export interface ServiceState {
  id: string;
  service: ResolvedService;
  pool: Pool;
  /** Backend origin (`http://host:port`), passed to `dispatch`. */
  origin: string;
  target: BackendTarget;
  /** Session binding scope: the backend origin, shared by every service routed to it (sessions.ts). */
  sessionScope: string;
  /**
   * Whether anonymous callers' session ids are checked: a public service whose backend is also reached by
   * an authenticated service (P2 in docs/security.md). False otherwise, so a plain public service pays nothing.
   */
  checkAnonymousSessions: boolean;
  verifyOptions: JWTVerifyOptions;
  challenges: { missing: string; invalid: string; scope: string };
  identityNames: IdentityHeaderNames;
  /** Header names never accepted from clients on this service. */
  strippedHeaders: ReadonlySet<string>;
  signedIdentity: { header: string; ttl: number } | undefined;
  /** `upstream_auth`: where the user's upstream token goes and the answers when there is none (docs/upstream-auth.md). */
  credential: { target: CredentialTarget; connect: ProxyError; failed: ProxyError } | undefined;
  allowSetCookie: boolean;
  maxRequestBytes: number;
  maxConcurrent: number;
  /** In-flight requests plus open response streams. */
  inFlight: number;
  timeoutMs: number;
  pinnedVersions: ReadonlySet<string> | undefined;
  pinnedVersionList: readonly string[] | undefined;
  /**
   * The compiled `tools` / `prompts` / `resources` rules (globs compiled once, tool-policy.ts); undefined
   * for a service without rules, whose bodies the proxy never reads.
   */
  toolPolicy: ToolPolicy | undefined;
  metrics: {
    duration: { observe(v: number): void };
    ttfb: { observe(v: number): void };
    streams: { inc(): void; dec(): void };
    status: Map<number, { inc(): void }>;
  };
}

/** The loader reports a bad name with file and line; this guards a configuration object built in code. */
function headerName(name: string, where: string): string {
  const problem = headerNameProblem(name);
  if (problem) throw new TypeError(`${where}: ${problem}`);
  return normalizeHeaderName(name);
}

export function buildServiceStates(ctx: GatewayContext): { states: Map<string, ServiceState>; pools: Pool[] } {
  const pools = new Map<string, Pool>();
  const states = new Map<string, ServiceState>();
  for (const service of ctx.services.values()) {
    const cfg = service.config;
    const origin = service.backend.origin;
    let pool = pools.get(origin);
    if (!pool) {
      // One keep-alive pool per backend origin. No retries anywhere: undici's core never retries, and we
      // use neither RetryAgent nor interceptors. Timeouts are set per request (services may share a pool).
      pool = new Pool(origin, {
        pipelining: 1,
        keepAliveTimeout: 10_000,
        keepAliveMaxTimeout: 60_000,
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: { timeout: Math.min(10_000, cfg.timeout) },
      });
      pools.set(origin, pool);
    }
    const names = { ...DEFAULT_IDENTITY_HEADERS, ...cfg.identity_headers };
    const identityNames: IdentityHeaderNames = {
      id: headerName(names.id, `mcp_services.${service.id}.identity_headers.id`),
      email: headerName(names.email, `mcp_services.${service.id}.identity_headers.email`),
      emailVerified: headerName(
        cfg.identity_headers?.email_verified ?? DEFAULT_IDENTITY_HEADERS.emailVerified,
        `mcp_services.${service.id}.identity_headers.email_verified`,
      ),
      name: headerName(names.name, `mcp_services.${service.id}.identity_headers.name`),
      provider: headerName(names.provider, `mcp_services.${service.id}.identity_headers.provider`),
      avatar: headerName(names.avatar, `mcp_services.${service.id}.identity_headers.avatar`),
      groups: headerName(names.groups, `mcp_services.${service.id}.identity_headers.groups`),
      kind: headerName(names.kind, `mcp_services.${service.id}.identity_headers.kind`),
    };
    const signed = cfg.signed_identity?.enabled
      ? {
          header: headerName(cfg.signed_identity.header, `mcp_services.${service.id}.signed_identity.header`),
          ttl: cfg.signed_identity.ttl,
        }
      : undefined;
    const credential = upstreamCredential(ctx, service);
    const stripped = new Set<string>([
      ...Object.values(identityNames),
      ...(signed ? [signed.header] : []),
      ...(credential ? [credential.target.header] : []),
      'x-user-assertion',
    ]);
    const state: ServiceState = {
      id: service.id,
      service,
      pool,
      origin,
      target: backendTarget(service.backend),
      sessionScope: SessionBindings.scopeOf(origin),
      checkAnonymousSessions:
        !service.authRequired && [...ctx.services.values()].some((s) => s.authRequired && s.backend.origin === origin),
      verifyOptions: {},
      challenges: {
        missing: buildBearerChallenge(service),
        invalid: buildBearerChallenge(service, { error: 'invalid_token' }),
        // MCP step-up: name every scope the client needs, not only the missing ones (RFC 6750 §3.1; MCP authorization, scope challenge handling).
        scope: buildBearerChallenge(service, { error: 'insufficient_scope', scopes: service.requiredScopes }),
      },
      identityNames,
      strippedHeaders: stripped,
      signedIdentity: signed,
      credential,
      allowSetCookie: cfg.allow_set_cookie,
      maxRequestBytes: cfg.max_request_bytes ?? ctx.config.limits.max_request_bytes,
      maxConcurrent: cfg.max_concurrent ?? ctx.config.limits.max_concurrent_per_service,
      inFlight: 0,
      timeoutMs: cfg.timeout,
      pinnedVersions: cfg.protocol_versions?.length ? new Set(cfg.protocol_versions) : undefined,
      pinnedVersionList: cfg.protocol_versions?.length ? [...cfg.protocol_versions] : undefined,
      toolPolicy: ToolPolicy.compile(cfg),
      metrics: {
        duration: ctx.metrics.proxyDuration.labels(service.id),
        ttfb: ctx.metrics.proxyTtfb.labels(service.id),
        streams: ctx.metrics.activeStreams.labels(service.id),
        status: new Map(),
      },
    };
    state.verifyOptions = verifyOptions(ctx, state);
    states.set(service.id, state);
  }
  return { states, pools: [...pools.values()] };
}

/** The upstream token target of a service with `upstream_auth`, and its two refusals, built once. */
function upstreamCredential(ctx: GatewayContext, service: ResolvedService): ServiceState['credential'] {
  const auth = service.config.upstream_auth;
  // One provider per upstream_auth service (src/config/rules.ts upstreamAuthProblems).
  if (!auth || !service.authRequired || typeof service.config.oauth_provider !== 'string') return undefined;
  if (!ctx.credentials) throw new TypeError(`mcp_services.${service.id}.upstream_auth needs upstream_tokens (an encryption key)`);
  const header = normalizeHeaderName(auth.header);
  const url = ctx.credentials.connectUrl(service.id);
  const provider = service.config.oauth_provider;
  const where = auth.mode === 'oauth' ? `${service.name}'s own authorization server` : provider;
  const message = `${service.name} acts as you at ${where}, and your account there is not connected (or no longer). Open ${url} to connect it, then try again.`;
  return {
    // A local (stdio) service gets the bare token in MCP_UPSTREAM_TOKEN (docs/stdio.md), never a header.
    target: { serviceId: service.id, provider, auth, header, bearer: service.stdio === undefined && header === 'authorization' },
    connect: proxyError('GW_ERR_UPSTREAM_AUTH_REQUIRED', {
      description: message,
      // MCP 2025-11-25 URL-mode elicitation (URLElicitationRequiredError, -32042): the link, no credentials in it.
      data: {
        service: service.id,
        connect_url: url,
        elicitations: [{ mode: 'url', elicitationId: `connect-${service.id}`, url, message }],
      },
    }),
    failed: proxyError('GW_ERR_UPSTREAM_TOKEN_FAILED', { data: { service: service.id } }),
  };
}

/** Counts a finished proxied request by status (children cached per status code). */
export function countStatus(ctx: GatewayContext, state: ServiceState, status: number): void {
  let child = state.metrics.status.get(status);
  if (!child) {
    child = ctx.metrics.proxyRequests.labels(state.id, String(status));
    state.metrics.status.set(status, child);
  }
  child.inc();
}
