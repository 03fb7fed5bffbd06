/**
 * A real upstream OpenID provider for tests: a second oidc-provider on 127.0.0.1 (a free port unless given)
 * with scripted users.
 * Its interaction signs in `idp.nextUser` (the test picks who) and consents automatically. Discovery,
 * PKCE, nonce and ID tokens (ES256) with email/name/picture/groups claims are real.
 *
 * For `upstream_auth` (docs/upstream-auth.md) it also issues refresh tokens (`offline_access` with
 * `prompt=consent`, as oidc-provider requires), records every token-endpoint grant (`grants`), can revoke
 * everything of a user as a person revoking the app at their provider would (`revokeUser`), and has:
 * - an RFC 8693 token-exchange stand-in (oidc-provider has none), registered as a grant type of the real
 *   provider so that client authentication is oidc-provider's own: it validates the subject token (an
 *   access token this IdP issued to the same client, or one of its ID tokens for that client), checks the
 *   audience against `exchangeAudiences` (`invalid_target` otherwise), records what it received
 *   (`exchanges`), and issues an opaque token for the audience; Microsoft Entra's on-behalf-of form
 *   (jwt-bearer + `requested_token_use=on_behalf_of`) likewise;
 * - a fake "upstream API", `GET /api/whoami`: the user, audience and scope of the bearer token it got
 *   (an access token of this IdP or an exchanged one), 401 for anything else.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import Provider, { errors, type Adapter, type AdapterPayload, type ClientMetadata, type KoaContextWithOIDC } from 'oidc-provider';
import { onTestFinished } from 'vitest';

export interface IdpUser {
  sub: string;
  email: string;
  name?: string;
  picture?: string;
  groups?: string[];
  /** `email_verified` the IdP asserts (default true). */
  emailVerified?: boolean;
}

export const ALICE: IdpUser = {
  sub: 'alice',
  email: 'alice@example.com',
  name: 'Alice Example',
  picture: 'https://example.com/alice.png',
  groups: ['staff', 'mcp-users'],
};
export const BOB: IdpUser = { sub: 'bob', email: 'bob@other.example', name: 'Bob Other', groups: ['guests'] };

export interface UpstreamIdp {
  issuer: string;
  provider: Provider;
  /** Who signs in next (default alice). */
  nextUser: IdpUser;
  /** When set, the IdP answers the next sign-in with this OAuth error instead. */
  nextError?: string | undefined;
  /** When set, the userinfo endpoint (`/me`) answers this JSON instead (a provider misbehaving or attacked). */
  userinfoOverride?: Record<string, unknown> | undefined;
  addClient(meta: ClientMetadata): void;
  /** Every successful token-endpoint grant, in order (grant type, client, and the tokens issued). */
  grants: Array<{ grant_type: string; client_id: string; access_token?: string; refresh_token?: string }>;
  /** Every token-exchange request that reached the stand-in (valid or not), with its parameters. */
  exchanges: Array<{ grant_type: string; client_id: string; params: Record<string, string> }>;
  /** Audiences the exchange stand-in issues tokens for. */
  exchangeAudiences: Set<string>;
  /** Calls of the fake upstream API and the token each carried. */
  apiCalls: Array<{ authorization: string | undefined; status: number }>;
  /** Deletes the user's grants and tokens (their refresh tokens then get `invalid_grant`). */
  revokeUser(sub: string): void;
  /** Adds a user the IdP can sign in (by `sub`). */
  addUser(user: IdpUser): void;
  close(): Promise<void>;
}

function mapAdapter(store: Map<string, AdapterPayload>) {
  return (model: string): Adapter => ({
    upsert: async (id, payload) => void store.set(`${model}:${id}`, payload),
    find: async (id) => store.get(`${model}:${id}`),
    findByUid: async (uid) => [...store.entries()].find(([k, v]) => k.startsWith(`${model}:`) && v.uid === uid)?.[1],
    findByUserCode: async () => undefined,
    consume: async (id) => {
      const v = store.get(`${model}:${id}`);
      if (v) v.consumed = Math.floor(Date.now() / 1000);
    },
    destroy: async (id) => void store.delete(`${model}:${id}`),
    revokeByGrantId: async (gid) => {
      for (const [k, v] of store) if (v.grantId === gid) store.delete(k);
    },
  });
}

/**
 * `port`: listen on this port instead of a free one (a configuration file names the IdP's port, e.g. the
 * seed fixtures' `IDP_PORT`).
 */
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/**
 * The `oauth_providers` entry of a gateway that signs in at `idp` as the confidential client `gateway`
 * (register its redirect URI with `idp.addClient`); plain http is allowed, the IdP is on loopback.
 */
export function gatewayProvider(idp: Pick<UpstreamIdp, 'issuer'>, scopes: string[]) {
  return { issuer: idp.issuer, client_id: 'gateway', client_secret: 'gateway-secret', allow_insecure_http: true, scopes };
}

export async function startUpstreamIdp(
  users: IdpUser[] = [ALICE, BOB],
  opts: {
    cleanup?: boolean;
    port?: number;
    /** Access-token lifetime in seconds (default 600). */
    accessTokenTtl?: number;
    /** Rotate refresh tokens on every use (a reused one then revokes the grant, as oidc-provider does). */
    rotateRefreshTokens?: boolean;
    /**
     * Act as the authorization server of OAuth-protected resources (a backend MCP server): RFC 8707 resource
     * indicators for these URLs (more may be added to `resources` later), opaque access tokens for them,
     * open dynamic client registration (RFC 7591), and a refresh token with every code.
     */
    resources?: Set<string>;
  } = {},
): Promise<UpstreamIdp> {
  const data = new Map<string, AdapterPayload>();
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const byId = new Map(users.map((u) => [u.sub, u]));
  const signingKey = await esKey();
  const { d: _d, ...publicKey } = signingKey;
  const provider = new Provider(issuer, {
    adapter: mapAdapter(data),
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    jwks: { keys: [signingKey] },
    ...(opts.rotateRefreshTokens ? { rotateRefreshToken: true } : {}),
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'picture'], groups: ['groups'] },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      ...(opts.resources
        ? {
            registration: { enabled: true },
            resourceIndicators: {
              enabled: true,
              defaultResource: () => undefined as unknown as string,
              useGrantedResource: () => true,
              getResourceServerInfo: (_ctx: unknown, indicator: string) => {
                if (!opts.resources!.has(indicator)) throw new errors.InvalidTarget('unknown resource');
                return { scope: 'mcp:tools', accessTokenFormat: 'opaque' as const, audience: indicator };
              },
            },
          }
        : {}),
    },
    ...(opts.resources
      ? {
          issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
            client.grantTypeAllowed('refresh_token'),
        }
      : {}),
    interactions: { url: (_ctx, i) => `/i/${i.uid}` },
    findAccount: async (_ctx, id) => {
      const u = byId.get(id);
      return u
        ? {
            accountId: id,
            claims: () => ({
              sub: id,
              email: u.email,
              email_verified: u.emailVerified ?? true,
              name: u.name,
              picture: u.picture,
              groups: u.groups,
            }),
          }
        : undefined;
    },
    cookies: { keys: ['upstream-idp-test-cookie-key'] },
    // Explicit lifetimes (oidc-provider prints a notice for every defaulted one).
    ttl: {
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      AccessToken: opts.accessTokenTtl ?? 600,
      IdToken: 600,
      AuthorizationCode: 60,
      RefreshToken: 3600,
    },
  });
  const exchanged = new Map<string, { sub: string; aud: string; scope: string; exp: number }>();
  const idp: UpstreamIdp = {
    issuer,
    provider,
    grants: [],
    exchanges: [],
    exchangeAudiences: new Set(),
    apiCalls: [],
    revokeUser: (sub) => {
      for (const [k, v] of data) if (v.accountId === sub) data.delete(k);
      for (const [k, v] of exchanged) if (v.sub === sub) exchanged.delete(k);
    },
    nextUser: users[0]!,
    addUser: (user) => void byId.set(user.sub, user),
    addClient: (meta) => void data.set(`Client:${meta.client_id}`, { ...meta, application_type: 'web' } as AdapterPayload),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        // Keep-alive connections too: a stopped IdP must refuse the next request, not answer it on an old socket.
        server.closeAllConnections();
      }),
  };
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const body = ctx.body as { access_token?: string; refresh_token?: string };
    idp.grants.push({
      grant_type: String(ctx.oidc.params?.grant_type),
      client_id: String(ctx.oidc.client?.clientId),
      access_token: body?.access_token,
      refresh_token: body?.refresh_token,
    });
  });
  const jwks = createLocalJWKSet({ keys: [publicKey as JWK] });

  /** The user a subject token stands for, or invalid_grant (RFC 8693 §2.2.2). */
  async function subjectOf(ctx: KoaContextWithOIDC, token: string | undefined, type: string | undefined): Promise<string> {
    const clientId = ctx.oidc.client!.clientId;
    if (!token) throw new errors.InvalidRequest('missing subject_token');
    if (type === 'urn:ietf:params:oauth:token-type:access_token') {
      const at = await provider.AccessToken.find(token);
      if (!at || at.isExpired || at.clientId !== clientId)
        throw new errors.InvalidGrant('subject_token is invalid, expired or not issued to this client');
      return at.accountId;
    }
    if (type === 'urn:ietf:params:oauth:token-type:id_token') {
      try {
        const { payload } = await jwtVerify(token, jwks, { issuer, audience: clientId });
        if (!byId.has(String(payload.sub)) || ![...data.values()].some((v) => v.accountId === payload.sub && v.kind === 'Grant'))
          throw new Error('no grant');
        return String(payload.sub);
      } catch {
        throw new errors.InvalidGrant('subject_token is not a valid ID token for this client');
      }
    }
    throw new errors.InvalidRequest('unsupported subject_token_type');
  }

  function issueExchanged(ctx: KoaContextWithOIDC, sub: string, aud: string, scope: string, issuedType: boolean): void {
    const token = randomBytes(24).toString('base64url');
    const ttl = opts.accessTokenTtl ?? 600;
    exchanged.set(token, { sub, aud, scope, exp: Date.now() + ttl * 1000 });
    ctx.body = {
      access_token: token,
      ...(issuedType ? { issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' } : {}),
      token_type: 'Bearer',
      expires_in: ttl,
      ...(scope ? { scope } : {}),
    };
  }

  const record = (ctx: KoaContextWithOIDC) =>
    idp.exchanges.push({
      grant_type: String(ctx.oidc.params!.grant_type),
      client_id: ctx.oidc.client!.clientId,
      params: Object.fromEntries(Object.entries(ctx.oidc.params!).filter(([, v]) => typeof v === 'string')) as Record<string, string>,
    });
  const targetOf = (aud: string | undefined, scope: string | undefined) => {
    // Audience named directly (RFC 8693 audience), or Entra's `api://<audience>/.default` scope form.
    const target = aud ?? /^api:\/\/(.+)\/\.default$/.exec(scope ?? '')?.[1];
    if (!target || !idp.exchangeAudiences.has(target)) throw new errors.InvalidTarget('the requested audience is not known here');
    return target;
  };
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx) => {
      record(ctx);
      const p = ctx.oidc.params as Record<string, string | undefined>;
      const sub = await subjectOf(ctx, p.subject_token, p.subject_token_type);
      issueExchanged(ctx, sub, targetOf(p.audience, undefined), p.scope ?? '', true);
    },
    ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'scope', 'resource', 'actor_token', 'actor_token_type'],
  );
  provider.registerGrantType(
    JWT_BEARER,
    async (ctx) => {
      record(ctx);
      const p = ctx.oidc.params as Record<string, string | undefined>;
      if (p.requested_token_use !== 'on_behalf_of') throw new errors.InvalidRequest('requested_token_use must be on_behalf_of');
      const sub = await subjectOf(ctx, p.assertion, 'urn:ietf:params:oauth:token-type:access_token');
      issueExchanged(ctx, sub, targetOf(undefined, p.scope), p.scope ?? '', false);
    },
    ['assertion', 'requested_token_use', 'scope'],
  );

  async function api(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const authorization = req.headers.authorization;
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    const x = token ? exchanged.get(token) : undefined;
    let body: Record<string, unknown> | undefined;
    if (x && x.exp > Date.now()) body = { sub: x.sub, aud: x.aud, scope: x.scope, kind: 'exchanged' };
    else if (token) {
      const at = await provider.AccessToken.find(token).catch(() => undefined);
      if (at && !at.isExpired)
        body = { sub: at.accountId, aud: at.clientId, scope: at.scope, kind: 'access_token', ...(at.aud ? { resource: at.aud } : {}) };
    }
    idp.apiCalls.push({ authorization, status: body ? 200 : 401 });
    res.writeHead(body ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? { error: 'invalid_token' }));
  }

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    if (req.url === '/api/whoami') return void api(req, res).catch(() => res.writeHead(500).end());
    if (idp.userinfoOverride && req.url?.startsWith('/me')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify(idp.userinfoOverride));
    }
    if (!req.url?.startsWith('/i/')) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (idp.nextError) {
        const error = idp.nextError;
        idp.nextError = undefined;
        return await provider.interactionFinished(req, res, { error, error_description: 'scripted upstream error' });
      }
      if (details.prompt.name === 'login') {
        return await provider.interactionFinished(req, res, { login: { accountId: idp.nextUser.sub } });
      }
      const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
        grant.addResourceScope(indicator, scopes.join(' '));
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err));
    }
  });
  if (opts.cleanup !== false) onTestFinished(() => idp.close());
  return idp;
}

async function esKey() {
  const { generateKeyPair, exportJWK } = await import('jose');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: 'idp-key', alg: 'ES256', use: 'sig' };
}
