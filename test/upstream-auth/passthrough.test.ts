/**
 * mode: passthrough, end to end with real components: the SDK client signs in through the gateway at a
 * real IdP; the backend receives the user's upstream access token (never the client's gateway token) and
 * calls the fake upstream API with it; the gateway refreshes it transparently, and a grant revoked at the
 * provider leads to the connect error and, through the connect link, back to a working connection.
 */
import { describe, expect, it } from 'vitest';
import { onTestFinished } from 'vitest';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { textOf } from '../helpers/sdk-session.js';
import { connect, sleep, startWorld, upstreamWhoami } from './world.js';

describe('upstream_auth passthrough', () => {
  it("the backend calls the upstream API as the user with the user's upstream token; the store holds it only encrypted", async () => {
    const { idp, gw } = await startWorld();
    const session = await connect(gw.url, 'files');
    onTestFinished(() => session.close());
    const seen = await upstreamWhoami(session);
    expect(seen.status).toBe(200);
    expect(seen.api).toMatchObject({ sub: 'alice', kind: 'access_token', aud: 'gateway' });
    // The upstream token, not the client's gateway token (MCP: no token passthrough).
    const gatewayToken = session.provider.tokens()!.access_token;
    expect(seen.received).toMatch(/^Bearer /);
    expect(seen.received).not.toContain(gatewayToken);
    const signIn = idp.grants.find((g) => g.grant_type === 'authorization_code')!;
    expect(seen.received).toBe(`Bearer ${signIn.access_token}`);
    // offline_access was asked for because a service needs it: the sign-in returned a refresh token.
    expect(signIn.refresh_token).toBeTruthy();
    // The identity headers stay as they are.
    const who = JSON.parse(textOf(await session.client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, string>;
    expect(who['x-user-id']).toBe('corp:alice');
    // At rest: ciphertext only, anywhere in storage.
    const dump = JSON.stringify(await gw.ctx.store.list('', { limit: 100_000 }));
    expect(dump).not.toContain(signIn.access_token!);
    expect(dump).not.toContain(signIn.refresh_token!);
    expect(dump).toMatch(/"sealed":"v1\.h[0-9a-f]{10}\./);
  });

  it('an upstream token about to expire is refreshed transparently, once', async () => {
    // 5 s tokens, refreshed 4 s before expiry: stale after about a second.
    const { idp, gw } = await startWorld({ accessTokenTtl: 5, refreshBeforeExpiry: 4 });
    const session = await connect(gw.url, 'files');
    onTestFinished(() => session.close());
    const first = await upstreamWhoami(session);
    expect(first.api.sub).toBe('alice');
    await sleep(1200);
    const [a, b] = await Promise.all([upstreamWhoami(session), upstreamWhoami(session)]);
    expect(a.api.sub).toBe('alice');
    expect(b.received).toBe(a.received);
    expect(a.received).not.toBe(first.received);
    const refreshes = idp.grants.filter((g) => g.grant_type === 'refresh_token');
    expect(refreshes).toHaveLength(1);
    expect(a.received).toBe(`Bearer ${refreshes[0]!.access_token}`);
    const metrics = await gw.ctx.metrics.registry.getSingleMetricAsString('mcp_gateway_upstream_token_refreshes_total');
    expect(metrics).toContain('provider="corp",outcome="success"} 1');
  });

  it('a grant revoked at the provider: the token is dropped, the client is told to connect (link, -32042), and the link reconnects', async () => {
    const { idp, gw } = await startWorld({ accessTokenTtl: 5, refreshBeforeExpiry: 4 });
    const session = await connect(gw.url, 'files');
    onTestFinished(() => session.close());
    expect((await upstreamWhoami(session)).api.sub).toBe('alice');
    idp.revokeUser('alice');
    await sleep(1200);
    const err = await upstreamWhoami(session).then(
      () => undefined,
      (e: Error) => e,
    );
    expect((err as Error & { code?: number }).code).toBe(403);
    expect(err?.message).toContain(`${gw.url}/connect/files`);
    expect(err?.message).toContain('-32042');
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')).toBeUndefined();
    const metrics = await gw.ctx.metrics.registry.getSingleMetricAsString('mcp_gateway_upstream_token_refreshes_total');
    expect(metrics).toContain('provider="corp",outcome="refused"} 1');

    // The person opens the link: a sign-in at the provider, and the page says they can go back.
    const walk = await new BrowserDriver().walk(new URL(`${gw.url}/connect/files`), 'http://never.example/');
    expect(walk.finalPage?.status).toBe(200);
    expect(walk.finalPage?.body).toContain('Account connected');
    const again = await upstreamWhoami(session);
    expect(again.status).toBe(200);
    expect(again.api.sub).toBe('alice');
  });

  it('the raw answer without a connection: 403 JSON-RPC -32042 with the URL-mode elicitation; no request reaches the backend', async () => {
    const { gw, backend } = await startWorld();
    const session = await connect(gw.url, 'files');
    const token = session.provider.tokens()!.access_token;
    await session.close();
    expect(await gw.ctx.credentials!.disconnect('corp:alice')).toBe(1);
    const before = backend.requests.length;
    const res = await fetch(`${gw.url}/files/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: { code: number; message: string; data: Record<string, unknown> } };
    expect(body.error.code).toBe(-32042);
    expect(body.error.message).toContain('Files');
    expect(body.error.data).toMatchObject({
      error: 'upstream_authorization_required',
      service: 'files',
      connect_url: `${gw.url}/connect/files`,
      elicitations: [{ mode: 'url', url: `${gw.url}/connect/files`, elicitationId: 'connect-files' }],
    });
    expect(backend.requests.length).toBe(before);
  });
});
