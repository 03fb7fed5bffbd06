/**
 * RFC 8707 resource indicators: every service that requires authentication is a resource server whose
 * identifier is its canonical URI `{issuer}/{id}/mcp`. Access tokens are RFC 9068 JWTs bound to exactly
 * that audience, carrying at most that service's scopes.
 *
 * Clients that send no `resource` (MCP 2025-03-26 era): the authorization request is bound to a service
 * only when that service can be determined unambiguously (see `inferService`); otherwise the request is
 * refused with `invalid_target`. A token valid for every service is never issued.
 */
import { errors, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import type { ResolvedService } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import { selectScopes } from './scope-selection.js';
import { checkServiceAccess } from '../kernel/policy.js';
import { machineSubject } from '../kernel/claims.js';

/** The authorization-request routes (the resume route replays the stored, already normalised request). */
const AUTHORIZATION_ROUTES = new Set(['authorization', 'resume']);

/**
 * One `resource` per authorization request (RFC 8707 §2: the AS may refuse a set it does not accept).
 * The consent page, the sign-in policy, the remembered consent and the audit trail all name exactly one
 * service; a second resource would ride along unseen (P1 in docs/security.md; RFC 8707 §2).
 */
function assertSingleResource(koa: KoaContextWithOIDC): void {
  const raw = koa.oidc.params?.resource as unknown;
  if (Array.isArray(raw) && new Set(raw).size > 1) {
    throw new errors.InvalidTarget(
      'one resource per authorization request: send a single resource=<service URI> and authorize each service separately',
    );
  }
}

/** The configured service whose canonical URI equals `indicator` (exact match, RFC 8707 §2). */
export function serviceForResource(ctx: GatewayContext, indicator: string): ResolvedService | undefined {
  for (const s of ctx.services.values()) if (s.authRequired && s.canonicalUri === indicator) return s;
  return undefined;
}

function protectedServices(ctx: GatewayContext): ResolvedService[] {
  return [...ctx.services.values()].filter((s) => s.authRequired);
}

/**
 * The service an authorization request without `resource` is for, when unambiguous: the only protected
 * service, or the only one whose scopes include every requested non-OIDC scope (and at least one).
 */
export function inferService(ctx: GatewayContext, requestedScope: string | undefined): ResolvedService | undefined {
  const services = protectedServices(ctx);
  if (services.length === 1) return services[0];
  const scopes = (requestedScope ?? '').split(' ').filter((s) => s && s !== 'openid' && s !== 'offline_access');
  if (scopes.length === 0) return undefined;
  const matching = services.filter((s) => scopes.every((sc) => s.scopes.includes(sc)));
  return matching.length === 1 ? matching[0] : undefined;
}

export function resourceIndicatorsFeature(ctx: GatewayContext) {
  return {
    enabled: true,
    /** Only the authorization request is defaulted; at the token endpoint the grant's resource is used. */
    async defaultResource(
      koa: KoaContextWithOIDC,
      _client: unknown,
      oneOf?: readonly string[],
    ): Promise<string | readonly string[] | undefined> {
      // The same resource named twice is one resource (assertSingleResource refuses distinct ones).
      if (oneOf) return new Set(oneOf).size === 1 ? oneOf[0] : oneOf;
      if (isMachineGrant(koa)) return machineDefaultResource(ctx, koa);
      if (koa.oidc.route !== 'authorization') return undefined;
      const scope = koa.oidc.params?.scope;
      const service = inferService(ctx, typeof scope === 'string' ? scope : undefined);
      if (service) return service.canonicalUri;
      const uris = protectedServices(ctx).map((s) => s.canonicalUri);
      throw new errors.InvalidTarget(
        uris.length
          ? `a resource parameter is required: send resource=<service URI>, one of ${uris.join(', ')}`
          : 'no protected service is configured',
      );
    },
    useGrantedResource: async () => true,
    async getResourceServerInfo(koa: KoaContextWithOIDC, indicator: string): Promise<ResourceServer> {
      const service = serviceForResource(ctx, indicator);
      // RFC 8707 §2: an unknown resource is `invalid_target`.
      if (!service) throw new errors.InvalidTarget(`unknown resource; use a service URI such as ${ctx.issuer}/<service>/mcp`);
      if (AUTHORIZATION_ROUTES.has(koa.oidc.route)) {
        assertSingleResource(koa);
        // The only step of the authorization pipeline that knows the service and still precedes the
        // grant checks: the request is processed with the selected scope from here on (scope-selection.ts).
        const params = koa.oidc.params as { scope?: string | undefined };
        params.scope = selectScopes(params.scope, service).scope;
      } else if (isMachineGrant(koa)) {
        assertMachineClientAllowed(ctx, koa, service);
        // The same scope rule as a person's authorization: the service's required scopes always.
        const params = koa.oidc.params as { scope?: string | undefined };
        params.scope = selectScopes(params.scope, service).resourceScopes.join(' ') || undefined;
      }
      return resourceServerInfo(ctx, service);
    },
  };
}

/** A `client_credentials` token request (machine clients, registration.clients). */
function isMachineGrant(koa: KoaContextWithOIDC): boolean {
  return koa.oidc.route === 'token' && koa.oidc.params?.grant_type === 'client_credentials';
}

/**
 * `client_credentials` without `resource`: the client's only service, else refused (a token for no
 * service, or for all, is never issued; the MCP client-credentials extension sends `resource` anyway).
 */
function machineDefaultResource(ctx: GatewayContext, koa: KoaContextWithOIDC): string {
  const clientId = koa.oidc.client?.clientId;
  const services = protectedServices(ctx).filter((s) => clientId !== undefined && s.machineClients.includes(clientId));
  if (services.length === 1) return services[0]!.canonicalUri;
  throw new errors.InvalidTarget(
    services.length
      ? `a resource parameter is required: send resource=<service URI>, one of ${services.map((s) => s.canonicalUri).join(', ')}`
      : `client '${clientId}' is not configured for any service (registration.clients[].services)`,
  );
}

/** RFC 8707 §2: a resource this client may not get tokens for is `invalid_target`; the description names the rule. */
function assertMachineClientAllowed(ctx: GatewayContext, koa: KoaContextWithOIDC, service: ResolvedService): void {
  const clientId = String(koa.oidc.client?.clientId);
  const decision = checkServiceAccess(service, { id: machineSubject(clientId), machineClient: clientId });
  if (decision.allowed) return;
  ctx.metrics.policyDenials.inc({ service: service.id, stage: 'token' });
  ctx.audit.emit('policy.denied', { user: machineSubject(clientId), client_id: clientId, service: service.id, reason: decision.reason });
  throw new errors.InvalidTarget(
    service.machineClients.includes(clientId)
      ? `denied by the access policy of service '${service.id}' (policy.machine_clients)`
      : `client '${clientId}' may not obtain tokens for service '${service.id}' (registration.clients[].services)`,
  );
}

/** The resource server of a service: RFC 9068 JWTs for exactly its audience, at most its scopes. */
export function resourceServerInfo(ctx: GatewayContext, service: ResolvedService): ResourceServer {
  return {
    scope: service.scopes.join(' '),
    audience: service.canonicalUri,
    accessTokenTTL: ctx.config.tokens.access_token_ttl,
    accessTokenFormat: 'jwt',
    // RFC 9068 JWT signed by the current gateway key (src/kernel/keys.ts).
    jwt: { sign: { alg: 'ES256', kid: ctx.keys.signer.kid } },
  };
}
