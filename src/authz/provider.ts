/**
 * oidc-provider 9 configured as a plain OAuth 2.1 authorization server for MCP clients
 * (docs/authorization.md, Decisions): flat `/oauth/*` routes at the root issuer, PKCE S256 for everyone, refresh tokens
 * for every client allowed the refresh_token grant, RFC 9068 JWT access tokens bound to one service.
 */
import { hkdfSync } from 'node:crypto';
import Provider, { errors, type Configuration, type ClientMetadata, type KoaContextWithOIDC } from 'oidc-provider';
import type { GatewayContext } from '../context.js';
import { accountProfile, findAccountFor, identityClaims } from './accounts.js';
import { createAdapterFactory, StoreAdapter, type AdapterHooks } from './adapter.js';
import { cimdFeature, providerFetch } from './cimd.js';
import { OriginPolicy } from '../kernel/origin.js';
import { escapeHtml, koaPage } from './html.js';
import { RefreshGrace } from './refresh-grace.js';
import { loopbackRedirectAllowed, registeredClientId } from './registration.js';
import { resourceIndicatorsFeature } from './resource-servers.js';
import { structuredAccessToken } from './structured-tokens.js';
import { ID_TOKEN_TTL_S } from '../kernel/key-rotation.js';
import { machineSubject } from '../kernel/claims.js';
import { idJagGrant, JWT_BEARER_GRANT } from './id-jag.js';

export const ROUTES = {
  authorization: '/oauth/authorize',
  token: '/oauth/token',
  registration: '/oauth/register',
  revocation: '/oauth/revoke',
  introspection: '/oauth/introspect',
  jwks: '/oauth/jwks',
  // Disabled features; their routes are never handed to the provider.
  userinfo: '/oauth/userinfo',
  end_session: '/oauth/logout',
  pushed_authorization_request: '/oauth/par',
  code_verification: '/oauth/device',
  device_authorization: '/oauth/device/auth',
  backchannel_authentication: '/oauth/backchannel',
  challenge: '/oauth/challenge',
} as const;

/**
 * Token endpoint client authentication (also used at revocation and introspection). `private_key_jwt`
 * (RFC 7523 §2.2, OIDC Core §9): clients that register `jwks` or `jwks_uri`, e.g. ChatGPT's CIMD document;
 * the MCP authorization spec lets CIMD clients use it. No `client_secret_jwt`: CIMD forbids shared secrets
 * and nothing in the field uses it.
 */
export const CLIENT_AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
/** Accepted client assertion algorithms (oidc-provider's default minus HS256, which only client_secret_jwt uses). */
export const CLIENT_ASSERTION_ALGS = ['RS256', 'PS256', 'ES256', 'Ed25519', 'EdDSA'] as const;

/** The MCP-friendly client defaults (RFC 8252 §7: loopback and custom-scheme redirects): native apps, code + refresh, public. */
const CLIENT_DEFAULTS: Partial<ClientMetadata> = {
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
  id_token_signed_response_alg: 'ES256',
};

/**
 * Cookie-signing keys (keygrip: the first signs, every one verifies): derived from `session_secret`, then
 * from each of `previous_session_secrets`, so that a rotation does not break cookies already handed out.
 */
export function cookieKeys(secret: string, previous: readonly string[] = []): string[] {
  return [secret, ...previous].map((s) =>
    Buffer.from(hkdfSync('sha256', s, 'mcp-oauth-gateway', 'oidc-provider cookies', 32)).toString('base64url'),
  );
}

/**
 * `registration.clients`: confidential clients without a browser (no redirect URIs, no response types):
 * `client_credentials` machine clients and ID-JAG presenters.
 */
function machineClients(ctx: GatewayContext): ClientMetadata[] {
  return ctx.config.registration.clients.map((c) => ({
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    ...(c.jwks ? { jwks: c.jwks as ClientMetadata['jwks'] } : {}),
    ...(c.client_name ? { client_name: c.client_name } : {}),
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? (c.jwks ? 'private_key_jwt' : 'client_secret_basic'),
    grant_types: [...c.grant_types],
    response_types: [],
    redirect_uris: [],
    application_type: 'web',
    id_token_signed_response_alg: 'ES256',
  }));
}

export function staticClients(ctx: GatewayContext): ClientMetadata[] {
  return [...browserClients(ctx), ...machineClients(ctx)];
}

function browserClients(ctx: GatewayContext): ClientMetadata[] {
  return ctx.config.clients.map((c) => ({
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    ...(c.client_name ? { client_name: c.client_name } : {}),
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? (c.client_secret ? 'client_secret_basic' : 'none'),
    grant_types: c.grant_types,
    response_types: ['code'],
    application_type: 'native',
    id_token_signed_response_alg: 'ES256',
    ...(c.scope ? { scope: c.scope } : {}),
  }));
}

export function allScopes(ctx: GatewayContext): string[] {
  const scopes = new Set(['openid', 'offline_access']);
  for (const s of ctx.services.values()) for (const sc of s.scopes) scopes.add(sc);
  return [...scopes];
}

/** Browser-facing errors (unknown client, bad redirect_uri, …): an HTML page, never a redirect (RFC 6749 §4.1.2.1). */
function renderError(koa: KoaContextWithOIDC, out: { error: string; error_description?: string | undefined }): void {
  const description = out.error_description ?? 'The request could not be processed.';
  koaPage(
    koa,
    'Sign-in error',
    `<h1>Sign-in error</h1><p role="alert" class="error">${escapeHtml(description)}</p><p>Error code: <code>${escapeHtml(out.error)}</code></p><p>Return to the application and try again.</p>`,
  );
}

/** The sign-out confirmation (oidc-provider supplies `form`: its own CSRF-protected form, no script). */
async function logoutSource(koa: KoaContextWithOIDC, form: string): Promise<void> {
  koaPage(
    koa,
    'Sign out',
    `<h1>Sign out of this gateway?</h1><p>Applications you connected keep their access until you revoke it; the next sign-in goes through your identity provider again.</p>${form}<div class="actions"><button class="primary" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button><button type="submit" form="op.logoutForm">Stay signed in</button></div>`,
  );
}

async function postLogoutSuccessSource(koa: KoaContextWithOIDC): Promise<void> {
  koaPage(koa, 'Signed out', '<h1>Signed out</h1><p>You are signed out of this gateway. You can close this window.</p>');
}

/** RFC 8707 §2.2 at the refresh grant: `resource`, when sent, must be one the grant was issued for. */
function assertRefreshResource(koa: KoaContextWithOIDC): void {
  const requested = koa.oidc.params?.resource as unknown;
  if (requested === undefined) return;
  const token = koa.oidc.entities.RefreshToken as { resourceIndicators?: Set<string> } | undefined;
  if (typeof requested !== 'string' || !token?.resourceIndicators?.has(requested)) {
    throw new errors.InvalidTarget('the refresh token was not issued for this resource');
  }
}

export function buildConfiguration(
  ctx: GatewayContext,
  onGrantRevoked: (gid: string) => Promise<void>,
  grace = refreshGrace(ctx, onGrantRevoked),
): Configuration {
  const { tokens, registration } = ctx.config;
  return {
    adapter: createAdapterFactory(ctx.store, { ...adapterHooks(ctx, onGrantRevoked), refreshReuseCovered: (rt) => grace.covers(rt) }),
    clients: staticClients(ctx),
    clientDefaults: CLIENT_DEFAULTS,
    clientAuthMethods: [...CLIENT_AUTH_METHODS],
    enabledJWA: { clientAuthSigningAlgValues: [...CLIENT_ASSERTION_ALGS] },
    jwks: ctx.keys.privateJwks() as Configuration['jwks'],
    cookies: {
      keys: cookieKeys(ctx.config.session_secret, ctx.config.previous_session_secrets),
      long: { signed: true },
      short: { signed: true },
    },
    scopes: allScopes(ctx),
    responseTypes: ['code'],
    // OAuth 2.1 §4.1.1: PKCE for every client; oidc-provider 9 accepts only S256.
    pkce: { required: () => true },
    routes: ROUTES,
    interactions: { url: (_koa, interaction) => `/interaction/${interaction.uid}` },
    findAccount: findAccountFor(ctx),
    // Refresh tokens for every client allowed the grant, not only offline_access (OAuth 2.1 §4.3; MCP clients rarely ask for it).
    issueRefreshToken: async (_koa, client) => client.grantTypeAllowed('refresh_token'),
    // RFC 9700 §4.14.2: rotate on every use; a replayed one revokes the grant (refresh_token.js).
    // oidc-provider consumes the old token before it resolves `resource`, so a refresh naming another
    // resource would burn the token (and its retry would count as reuse and revoke the grant). This hook
    // runs just before that consume: an unacceptable resource is refused here, the token stays valid.
    // It is also where `tokens.refresh_reuse_grace` claims the token or answers a reuse (refresh-grace.ts).
    rotateRefreshToken: async (koa) => {
      assertRefreshResource(koa);
      await grace.beforeRotation(koa);
      return true;
    },
    expiresWithSession: async () => false,
    // Machine clients act as themselves: subject `client:{client_id}` (oidc-provider puts the bare client
    // id there), never a person's id, so policies, sessions and headers cannot mistake one for the other.
    formats: {
      customizers: {
        jwt: async (_koa, token, jwt) => {
          if (token.kind === 'ClientCredentials') jwt.payload.sub = machineSubject(String(jwt.payload.client_id));
        },
      },
    },
    async extraTokenClaims(koa, token) {
      // A machine client's configured display name (x-user-name); nothing else about it is claimed.
      if (token.kind === 'ClientCredentials') {
        const name = ctx.config.registration.clients.find((c) => c.client_id === token.clientId)?.client_name;
        return name ? { name } : undefined;
      }
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      return identityClaims(await accountProfile(ctx, koa, token.accountId), token.grantId);
    },
    renderError,
    // Its default allows every origin; ours is the gateway's one CORS rule (src/http/cors.ts).
    clientBasedCORS: (() => {
      const origins = new OriginPolicy(ctx.config.cors, ctx.issuer);
      return (_koa: KoaContextWithOIDC, origin: string) => origins.check(origin) === 'allowed';
    })(),
    ttl: {
      AccessToken: tokens.access_token_ttl,
      AuthorizationCode: tokens.authorization_code_ttl,
      RefreshToken: tokens.refresh_token_ttl,
      Grant: tokens.grant_ttl,
      // P10: the browser session (and so the age of the profile policies check at sign-in) is bounded.
      Session: tokens.session_ttl,
      Interaction: 900,
      IdToken: ID_TOKEN_TTL_S,
    },
    features: {
      devInteractions: { enabled: false },
      registration: {
        enabled: registration.mode !== 'off',
        initialAccessToken: registration.mode === 'token' ? registration.initial_access_token! : false,
        idFactory: registeredClientId,
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only tokens issued to it. A confidential client is told
        // (invalid_request); for a public one the request is a no-op 200, so it learns nothing.
        async allowedPolicy(_koa, client, token) {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      introspection: {
        enabled: true,
        // RFC 7662 §4: only the client a token was issued to may introspect it (the proxy verifies JWTs
        // itself, so no resource server needs to introspect other clients' tokens): others get active=false.
        allowedPolicy: async (_koa, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: false },
      // P10: sign-out of the gateway's browser session at /oauth/logout (OIDC RP-Initiated Logout). Grants
      // do not expire with the session (expiresWithSession: false), so MCP clients keep working; the next
      // authorization sends the person through the upstream identity provider again.
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      pushedAuthorizationRequests: { enabled: false },
      claimsParameter: { enabled: false },
      resourceIndicators: resourceIndicatorsFeature(ctx),
      // registration.clients only: DCR refuses the grant (registration.ts) and the resource check refuses
      // every client not configured for the service (resource-servers.ts).
      clientCredentials: { enabled: ctx.config.registration.clients.some((c) => c.grant_types.includes('client_credentials')) },
      clientIdMetadataDocument: cimdFeature(ctx),
    },
    // CIMD documents and clients' jwks_uri: resolved and checked before connecting (SSRF guard), except
    // for the operator's registration.cimd.private_hosts (cimd.ts).
    fetch: providerFetch(ctx) as Configuration['fetch'],
  };
}

function adapterHooks(ctx: GatewayContext, onGrantRevoked: (gid: string) => Promise<void>): AdapterHooks {
  return {
    onGrantRevoked,
    clientTtlSeconds: ctx.config.registration.client_ttl,
    isGrantRevoked: (gid) => ctx.revocations.isRevoked(gid),
    structuredAccessToken: (handle) => structuredAccessToken(ctx, handle),
  };
}

function refreshGrace(ctx: GatewayContext, onGrantRevoked: (gid: string) => Promise<void>): RefreshGrace {
  const revoker = new StoreAdapter('Grant', ctx.store, adapterHooks(ctx, onGrantRevoked));
  return new RefreshGrace(
    ctx.store,
    ctx.config.tokens.refresh_reuse_grace,
    ctx.config.session_secret,
    (gid) => revoker.revokeByGrantId(gid),
    ctx.log,
  );
}

export function buildProvider(ctx: GatewayContext, onGrantRevoked: (gid: string) => Promise<void>): Provider {
  const grace = refreshGrace(ctx, onGrantRevoked);
  const provider = new Provider(ctx.issuer, buildConfiguration(ctx, onGrantRevoked, grace));
  provider.proxy = Boolean(ctx.config.trust_proxy);
  if (grace.enabled) provider.use(grace.middleware());
  // Enterprise-Managed Authorization (id-jag.ts): only with a trusted issuer configured.
  if (ctx.config.enterprise_authorization.issuers.length > 0)
    provider.registerGrantType(JWT_BEARER_GRANT, idJagGrant(ctx, provider), ['assertion', 'scope', 'resource']);
  relaxLoopbackPorts(provider);
  return provider;
}

/** Extends oidc-provider's native-only loopback port rule to every client (registration.ts). */
function relaxLoopbackPorts(provider: Provider): void {
  type Matcher = { redirectUris: string[]; redirectUriAllowed(value: string): boolean };
  const proto = (provider.Client as unknown as { prototype: Matcher }).prototype;
  const exact = proto.redirectUriAllowed;
  proto.redirectUriAllowed = function (this: Matcher, value: string): boolean {
    return exact.call(this, value) || loopbackRedirectAllowed(value, this.redirectUris ?? []);
  };
}
