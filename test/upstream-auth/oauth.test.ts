/**
 * mode: oauth, end to end: the backend is a real MCP SDK server protected by its own real authorization
 * server (a second oidc-provider: RFC 9728 metadata on the backend, RFC 8707 resource-bound opaque tokens,
 * open RFC 7591 registration). The gateway finds the server through the backend's metadata, registers
 * itself there, and each user connects once through the connect link (sign-in at the gateway's provider
 * first, then the backend's authorization with PKCE and `resource`); then the SDK client works through the
 * gateway, the token is refreshed at the backend's server, and a grant revoked there asks to connect again.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { BrowserDriver, TestOAuthProvider } from '../helpers/oauth-client.js';
import { connectByDiscovery } from '../helpers/sdk-session.js';
import { startUpstreamIdp } from '../helpers/upstream-idp.js';
import { gatewayConfig, registerAtIdp, sleep, startIdp, upstreamWhoami } from './world.js';

describe('upstream_auth oauth', () => {
  it('connect once through the link, then use, refresh and lose the backend authorization', async () => {
    const { idp, backend: plain } = await startIdp();
    const resources = new Set<string>();
    const as = await startUpstreamIdp(undefined, { resources, accessTokenTtl: 5, rotateRefreshTokens: true });
    const remote = await startMcpBackend({ protectedBy: as.issuer, upstreamApi: `${as.issuer}/api/whoami` });
    resources.add(remote.url);
    const gw = await startGateway(() =>
      gatewayConfig(idp, plain, {
        refreshBeforeExpiry: 4,
        services: {
          remote: { name: 'Remote', url: remote.url, oauth_provider: 'corp', upstream_auth: { mode: 'oauth', scopes: ['mcp:tools'] } },
        },
      }),
    );
    registerAtIdp(idp, [gw.url]);

    // The first connection: signed in at the gateway, but the backend's own authorization is missing.
    const provider = new TestOAuthProvider();
    const refused = await connectByDiscovery(`${gw.url}/remote/mcp`, { provider }).then(
      () => undefined,
      (e: Error & { code?: number }) => e,
    );
    expect(refused?.code).toBe(403);
    expect(refused?.message).toContain(`${gw.url}/connect/remote`);
    expect(remote.requests.filter((r) => r.method === 'POST')).toHaveLength(0);

    // The person opens the link: who they are (the gateway's provider), then the backend's authorization server.
    const walk = await new BrowserDriver().walk(new URL(`${gw.url}/connect/remote`), 'http://never.example/');
    expect(walk.finalPage?.body).toContain('Account connected');
    expect(walk.visited.some((u) => u.origin === idp.issuer)).toBe(true);
    const authorize = walk.visited.find((u) => u.origin === as.issuer && u.pathname.includes('auth'))!;
    expect(authorize.searchParams.get('resource')).toBe(remote.url);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${gw.url}/connect/callback`);
    // Registered by DCR, once, kept in storage for every instance.
    expect((await gw.ctx.store.get<{ client_id: string }>('gw:upstream-client:remote'))?.value.client_id).toBeTruthy();

    const session = await connectByDiscovery(`${gw.url}/remote/mcp`, { provider });
    onTestFinished(() => session.close());
    expect(session.challenged).toBe(false);
    const seen = await upstreamWhoami(session);
    expect(seen.api).toMatchObject({ sub: 'alice', resource: remote.url, kind: 'access_token' });
    const code = as.grants.find((g) => g.grant_type === 'authorization_code')!;
    expect(seen.received).toBe(`Bearer ${code.access_token}`);
    expect(code.refresh_token).toBeTruthy();

    // Refreshed at the backend's server shortly before it expires.
    await sleep(1200);
    const next = await upstreamWhoami(session);
    expect(next.api.sub).toBe('alice');
    expect(as.grants.filter((g) => g.grant_type === 'refresh_token')).toHaveLength(1);
    expect(next.received).not.toBe(seen.received);

    // Revoked there before it expires: the backend's 401 is not relayed (the client would re-authorize at the
    // gateway, in vain); the token is dropped and the client gets the connect link.
    as.revokeUser('alice');
    const lost = await upstreamWhoami(session).then(
      () => undefined,
      (e: Error & { code?: number }) => e,
    );
    expect(lost?.code).toBe(403);
    expect(lost?.message).toContain(`${gw.url}/connect/remote`);
    expect(await gw.ctx.credentials!.tokens.get('oauth', 'remote', 'corp:alice')).toBeUndefined();
  });
});
