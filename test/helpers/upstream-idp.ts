/**
 * A real upstream OpenID provider for tests: a second oidc-provider on 127.0.0.1 (a free port unless given)
 * with scripted users.
 * Its interaction signs in `idp.nextUser` (the test picks who) and consents automatically. Discovery,
 * PKCE, nonce and ID tokens (ES256) with email/name/picture/groups claims are real.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Adapter, type AdapterPayload, type ClientMetadata } from 'oidc-provider';
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
export async function startUpstreamIdp(
  users: IdpUser[] = [ALICE, BOB],
  opts: { cleanup?: boolean; port?: number } = {},
): Promise<UpstreamIdp> {
  const data = new Map<string, AdapterPayload>();
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const byId = new Map(users.map((u) => [u.sub, u]));
  const provider = new Provider(issuer, {
    adapter: mapAdapter(data),
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    jwks: { keys: [await esKey()] },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'picture'], groups: ['groups'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
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
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60, RefreshToken: 3600 },
  });
  const idp: UpstreamIdp = {
    issuer,
    provider,
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
  const callback = provider.callback();
  server.on('request', async (req, res) => {
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
      const missing = details.prompt.details as { missingOIDCScope?: string[] };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
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
