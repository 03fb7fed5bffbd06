/**
 * Discovery documents.
 * - RFC 8414 authorization server metadata, built from our configuration so that it lists only
 *   endpoints that answer (no userinfo, no OIDC discovery: the gateway is a plain OAuth 2.1 AS).
 * - RFC 9728 protected resource metadata per service, at the path-inserted URL MCP clients derive
 *   (`/.well-known/oauth-protected-resource/{id}/mcp`) and the seed's `?service_id=` form.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ResolvedService } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import { sendError } from '../kernel/error-reply.js';
import { CLIENT_ASSERTION_ALGS, CLIENT_AUTH_METHODS, ROUTES } from './provider.js';
import { ID_JAG_PROFILE, JWT_BEARER_GRANT } from './id-jag.js';

/** The grants the token endpoint accepts: the code and refresh grants, plus client_credentials when a machine client is configured. */
function grantTypes(ctx: GatewayContext): string[] {
  const out = ['authorization_code', 'refresh_token'];
  if (ctx.config.registration.clients.some((c) => c.grant_types.includes('client_credentials'))) out.push('client_credentials');
  if (ctx.config.enterprise_authorization.issuers.length > 0) out.push(JWT_BEARER_GRANT);
  return out;
}

export function authorizationServerMetadata(ctx: GatewayContext): Record<string, unknown> {
  const base = ctx.issuer;
  const scopes = new Set<string>();
  for (const s of ctx.services.values()) if (s.authRequired) for (const sc of s.scopes) scopes.add(sc);
  scopes.add('offline_access');
  // oidc-provider accepts the same client authentication at all three endpoints.
  const authMethods = [...CLIENT_AUTH_METHODS];
  const algs = [...CLIENT_ASSERTION_ALGS];
  return {
    issuer: base,
    authorization_endpoint: base + ROUTES.authorization,
    token_endpoint: base + ROUTES.token,
    ...(ctx.config.registration.mode !== 'off' ? { registration_endpoint: base + ROUTES.registration } : {}),
    revocation_endpoint: base + ROUTES.revocation,
    introspection_endpoint: base + ROUTES.introspection,
    jwks_uri: base + ROUTES.jwks,
    scopes_supported: [...scopes],
    response_types_supported: ['code'],
    response_modes_supported: ['query', 'fragment', 'form_post'],
    grant_types_supported: grantTypes(ctx),
    token_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_methods_supported: authMethods,
    introspection_endpoint_auth_methods_supported: authMethods,
    // RFC 8414 §2: required when private_key_jwt is listed.
    token_endpoint_auth_signing_alg_values_supported: algs,
    revocation_endpoint_auth_signing_alg_values_supported: algs,
    introspection_endpoint_auth_signing_alg_values_supported: algs,
    // OAuth 2.1 / MCP: PKCE S256 only.
    code_challenge_methods_supported: ['S256'],
    // RFC 9207.
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: ctx.config.registration.cimd.enabled,
    // Enterprise-Managed Authorization §6 (draft-ietf-oauth-identity-assertion-authz-grant §7.2).
    ...(ctx.config.enterprise_authorization.issuers.length > 0 ? { authorization_grant_profiles_supported: [ID_JAG_PROFILE] } : {}),
  };
}

export function protectedResourceMetadata(ctx: GatewayContext, s: ResolvedService): Record<string, unknown> {
  return {
    // RFC 9728 §3.3: `resource` must equal the URL the client used (the canonical service URI).
    resource: s.canonicalUri,
    authorization_servers: [ctx.issuer],
    // MCP 2025-11-25 (scope selection): `scopes_supported` is the minimal set for basic use, the scopes every request
    // needs (`required_scopes`); scopes of single tools are requested by step-up (403 insufficient_scope) when first needed.
    scopes_supported: s.requiredScopes.filter((sc) => sc !== 'offline_access'),
    bearer_methods_supported: ['header'],
    resource_name: s.name,
  };
}

function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  // CORS headers come from the onRequest hook (src/http/cors.ts): `*` for a simple read, the origin for an allowed one.
  return reply.header('cache-control', 'public, max-age=300').send(body);
}

function prm(ctx: GatewayContext, reply: FastifyReply, id: string | undefined): FastifyReply {
  const s = id ? ctx.services.get(id) : undefined;
  if (!s || !s.authRequired) {
    return sendError(
      reply,
      'GW_ERR_NOT_FOUND',
      id
        ? `no protected service '${id}'`
        : 'protected resource metadata exists per service: /.well-known/oauth-protected-resource/{service-id}/mcp',
    );
  }
  return sendJson(reply, protectedResourceMetadata(ctx, s));
}

export function registerMetadataRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const asMetadata = authorizationServerMetadata(ctx);
  app.get('/.well-known/oauth-authorization-server', (_req, reply) => sendJson(reply, asMetadata));
  app.get<{ Params: { id: string } }>('/.well-known/oauth-protected-resource/:id/mcp', (req, reply) => prm(ctx, reply, req.params.id));
  // The original gateway's form; no root document without service_id (RFC 9728 §3: one document per resource; docs/authorization.md).
  app.get<{ Querystring: { service_id?: string } }>('/.well-known/oauth-protected-resource', (req, reply) =>
    prm(ctx, reply, req.query.service_id),
  );
}
