/**
 * Enterprise-Managed Authorization (MCP extension `ext-auth`, stable; draft-ietf-oauth-identity-assertion-
 * authz-grant): the token endpoint accepts `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an
 * Identity Assertion JWT Authorization Grant (ID-JAG) from a trusted enterprise IdP
 * (`enterprise_authorization.issuers`). No browser and no consent page: the enterprise granted it. Each
 * rule that refuses says which one, as `invalid_grant` (§7.6.2) unless noted; the ID-JAG is never logged.
 *
 * Steps: readAssertion → trustedIssuer → verifySignatureAndClaims → checkClient → checkResource →
 * checkReplay → grantedScopes → service access policy → account → grant + access token.
 */
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { enterpriseProviderName } from '../config/rules.js';
import { JWT_BEARER_GRANT, type EnterpriseIssuerConfig } from '../config/schema.js';
import type { ResolvedService } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import { checkServiceAccess } from '../kernel/policy.js';
import { saveAccount } from './accounts.js';
import { resourceServerInfo, serviceForResource } from './resource-servers.js';

/** draft-ietf-oauth-identity-assertion-authz-grant §3.1: the ID-JAG's JWS `typ`. */
export const ID_JAG_TYP = 'oauth-id-jag+jwt';
/** §7.2: the grant profile advertised in `authorization_grant_profiles_supported`. */
export const ID_JAG_PROFILE = 'urn:ietf:params:oauth:grant-profile:id-jag';
/** Replay records: one per (issuer, jti), kept until the assertion expires (shared by every instance through the Store). */
const JTI_PREFIX = 'gw:id-jag-jti:';
const CLOCK_SKEW_S = 30;
const MAX_ASSERTION_LENGTH = 16 * 1024;
const PROTOCOL_SCOPES = new Set(['openid', 'offline_access']);
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

interface TrustedIssuer {
  config: EnterpriseIssuerConfig;
  provider: string;
  keys: JWTVerifyGetKey;
}

const refuse = (rule: string, description: string) => new errors.CustomOIDCProviderError('invalid_grant', `${rule}: ${description}`);

function trustedIssuers(ctx: GatewayContext): Map<string, TrustedIssuer> {
  const out = new Map<string, TrustedIssuer>();
  for (const config of ctx.config.enterprise_authorization.issuers) {
    const keys = config.jwks
      ? createLocalJWKSet(config.jwks as unknown as JSONWebKeySet)
      : // §7.4.1: keys over TLS (rules.ts), refetched for an unknown kid at most every 30 s; cached 10 min.
        createRemoteJWKSet(new URL(config.jwks_uri!), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
    out.set(config.issuer, { config, provider: enterpriseProviderName(config, ctx.config.oauth_providers), keys });
  }
  return out;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 && v.length <= 1024 ? v : undefined;
}

function groupsOf(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((g): g is string => typeof g === 'string' && g.length > 0);
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** The handler `provider.registerGrantType` runs after oidc-provider authenticated the client. */
export function idJagGrant(ctx: GatewayContext, provider: Provider) {
  const issuers = trustedIssuers(ctx);
  const audiences = [ctx.issuer, `${ctx.issuer}/`];

  async function verify(assertion: string): Promise<{ issuer: TrustedIssuer; payload: JWTPayload }> {
    let iss: unknown;
    try {
      iss = decodeJwt(assertion).iss;
    } catch {
      throw refuse('malformed', 'the assertion is not a JWT');
    }
    const issuer = typeof iss === 'string' ? issuers.get(iss) : undefined;
    if (!issuer)
      throw refuse('unknown_issuer', 'the assertion was not issued by a trusted enterprise issuer (enterprise_authorization.issuers)');
    try {
      const { payload } = await jwtVerify(assertion, issuer.keys, {
        issuer: issuer.config.issuer,
        // §7.6.2: `aud` MUST be our issuer.
        audience: audiences,
        typ: ID_JAG_TYP,
        // §7.4.1: an explicit allow-list, never `none`.
        algorithms: [...issuer.config.algorithms],
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
        clockTolerance: CLOCK_SKEW_S,
      });
      return { issuer, payload };
    } catch (err) {
      throw refuse(joseRule(err), joseDescription(err));
    }
  }

  return async function handler(koa: KoaContextWithOIDC): Promise<void> {
    const client = koa.oidc.client!;
    const assertion = koa.oidc.params?.assertion;
    if (typeof assertion !== 'string' || assertion.length === 0) throw new errors.InvalidRequest("missing required parameter 'assertion'");
    if (assertion.length > MAX_ASSERTION_LENGTH) throw refuse('malformed', 'the assertion is too large');
    const { issuer, payload } = await verify(assertion);
    const now = Math.floor(Date.now() / 1000);
    const iat = payload.iat!;
    const exp = payload.exp!;
    // §7.4.2: short-lived, rejected outside its validity window.
    if (iat > now + CLOCK_SKEW_S) throw refuse('iat', 'the assertion was issued in the future');
    if (exp - iat > issuer.config.max_lifetime)
      throw refuse(
        'lifetime',
        `the assertion lives longer than ${issuer.config.max_lifetime} s (enterprise_authorization.issuers[].max_lifetime)`,
      );

    // The client the IdP issued it to must be allowed for this issuer and be the one authenticated here.
    const clientId = payload.client_id;
    if (typeof clientId !== 'string' || !issuer.config.clients.includes(clientId))
      throw refuse(
        'unknown_client',
        "the assertion's client_id is not allowed for this issuer (enterprise_authorization.issuers[].clients)",
      );
    if (clientId !== client.clientId) throw refuse('client_mismatch', "the assertion's client_id is not the authenticated client");

    // §5.1, §7.6.2: audience-restricted to the MCP server named by `resource`, one of ours.
    const resource = payload.resource;
    const service = typeof resource === 'string' ? serviceForResource(ctx, resource) : undefined;
    if (!service) throw refuse('resource', "the assertion's resource is not a service of this gateway ({issuer}/{service}/mcp)");
    const requestedResource = koa.oidc.params?.resource;
    if (requestedResource !== undefined && requestedResource !== resource)
      throw new errors.InvalidTarget('resource differs from the resource of the assertion');
    const configured = ctx.config.registration.clients.find((c) => c.client_id === clientId);
    if (!configured?.services.includes(service.id))
      throw new errors.InvalidTarget(
        `client '${clientId}' may not obtain tokens for service '${service.id}' (registration.clients[].services)`,
      );

    const scope = grantedScopes(service, payload.scope, koa.oidc.params?.scope);

    // §7.4.2: the same jti is refused until the assertion expires, on every instance (Store).
    const jtiKey =
      JTI_PREFIX + createHash('sha256').update(issuer.config.issuer).update('\n').update(String(payload.jti)).digest('base64url');
    const first = await ctx.store.setIfAbsent(jtiKey, { exp }, { ttlSeconds: Math.max(1, exp - now + CLOCK_SKEW_S) });
    if (!first) throw refuse('replay', 'the assertion was already used (jti)');

    const subject = text(payload[issuer.config.claims.id]);
    // OpenID Connect Core §2: at most 255 characters; no control characters (it ends up in keys and headers).
    if (!subject || subject.length > 255 || CONTROL.test(subject))
      throw refuse('subject', `the assertion has no usable '${issuer.config.claims.id}' claim for the user id`);
    const email = text(payload[issuer.config.claims.email]);
    const profile = {
      id: `${issuer.provider}:${subject}`,
      provider: issuer.provider,
      subject,
      email,
      emailVerified: email === undefined ? undefined : issuer.config.assume_email_verified || payload.email_verified === true,
      name: text(payload[issuer.config.claims.name]),
      groups: groupsOf(payload[issuer.config.claims.groups]),
    };
    // The service's access policy applies as at a browser sign-in.
    const decision = checkServiceAccess(service, profile);
    if (!decision.allowed) {
      ctx.metrics.policyDenials.inc({ service: service.id, stage: 'token' });
      ctx.audit.emit('policy.denied', { user: profile.id, client_id: clientId, service: service.id, reason: decision.reason });
      throw refuse('policy', `denied by the access policy of service '${service.id}' (policy / access_policy)`);
    }
    await saveAccount(ctx, profile);
    ctx.audit.emit('sign_in.success', { user: profile.id, client_id: clientId, provider: profile.provider });

    // A grant (revocable like any other: `grants`, `revoke`), one access token, no refresh token: the
    // client asks its IdP for a new ID-JAG, so the enterprise's policy is applied again.
    const grant = new provider.Grant({ accountId: profile.id, clientId });
    if (scope) grant.addResourceScope(service.canonicalUri, scope);
    const grantId = await grant.save();
    const token = new provider.AccessToken({ accountId: profile.id, client, grantId, gty: 'id_jag', ...(scope ? { scope } : {}) });
    token.resourceServer = new provider.ResourceServer(service.canonicalUri, resourceServerInfo(ctx, service));
    koa.oidc.entity('AccessToken', token);
    const accessToken = await token.save();
    koa.body = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: token.expiration,
      ...(scope ? { scope } : {}),
    };
  };
}

/**
 * §7.2.1: the intersection of the requested scopes (all asserted ones when none are requested) and the
 * asserted ones; §7.6.2: an asserted scope the service does not have is refused.
 */
function grantedScopes(service: ResolvedService, asserted: unknown, requested: unknown): string | undefined {
  const assertedSet = typeof asserted === 'string' ? asserted.split(' ').filter((s) => s && !PROTOCOL_SCOPES.has(s)) : [];
  const unknown = assertedSet.filter((s) => !service.scopes.includes(s));
  if (unknown.length) throw refuse('scope', `the assertion grants scopes service '${service.id}' does not have: ${unknown.join(' ')}`);
  const requestedSet = typeof requested === 'string' && requested.length > 0 ? requested.split(' ').filter(Boolean) : undefined;
  const scopes = requestedSet ? assertedSet.filter((s) => requestedSet.includes(s)) : assertedSet;
  return scopes.length ? [...new Set(scopes)].join(' ') : undefined;
}

function joseRule(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (code === 'ERR_JWT_EXPIRED') return 'exp';
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
    const claim = (err as { claim?: unknown }).claim;
    return claim === 'aud' ? 'audience' : typeof claim === 'string' ? claim : 'claims';
  }
  if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') return 'algorithm';
  if (code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JOSE_GENERIC') return 'keys';
  return 'signature';
}

function joseDescription(err: unknown): string {
  switch (joseRule(err)) {
    case 'exp':
      return 'the assertion has expired';
    case 'audience':
      return "the assertion's aud is not this authorization server's issuer";
    case 'typ':
      return `the assertion's typ is not ${ID_JAG_TYP}`;
    case 'algorithm':
      return 'the assertion is signed with an algorithm not allowed for its issuer';
    case 'keys':
      return "the issuer's keys could not be fetched";
    case 'signature':
      return 'the assertion signature does not verify with the issuer keys';
    default:
      return 'the assertion is missing a required claim or has an invalid one';
  }
}

export { JWT_BEARER_GRANT };
