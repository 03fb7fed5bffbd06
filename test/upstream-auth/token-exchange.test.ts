/**
 * mode: token_exchange, end to end: the gateway exchanges the user's sign-in token at the real IdP's RFC
 * 8693 stand-in (and in Entra's on-behalf-of form) for a token with the backend's audience and scope,
 * caches it, and sends that; the backend's call to the fake upstream API shows the exchanged token's
 * user, audience and scope. Refusals: a foreign audience (502, metric), a token revoked at the provider
 * (the connect error).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { JWT_BEARER, TOKEN_EXCHANGE } from '../helpers/upstream-idp.js';
import { startGateway } from '../helpers/gateway.js';
import { API_AUDIENCE, connect, gatewayConfig, registerAtIdp, startIdp, startWorld, upstreamWhoami } from './world.js';

const services = (backendUrl: string) => ({
  byid: {
    name: 'By ID token',
    url: backendUrl,
    oauth_provider: 'corp',
    upstream_auth: { mode: 'token_exchange', audience: API_AUDIENCE, subject_token: 'id_token' },
  },
  obo: {
    name: 'On behalf of',
    url: backendUrl,
    oauth_provider: 'corp',
    upstream_auth: { mode: 'token_exchange', exchange_form: 'entra_obo', scope: `api://${API_AUDIENCE}/.default` },
  },
  foreign: {
    name: 'Foreign',
    url: backendUrl,
    oauth_provider: 'corp',
    upstream_auth: { mode: 'token_exchange', audience: 'https://not-known.example.com' },
  },
});

async function world() {
  const { idp, backend } = await startIdp();
  const gw = await startGateway(() => gatewayConfig(idp, backend, { services: services(backend.url) }));
  registerAtIdp(idp, [gw.url]);
  return { idp, backend, gw };
}

describe('upstream_auth token_exchange', () => {
  it('RFC 8693: the backend gets a token for its audience and scope, exchanged once and cached', async () => {
    const { idp, gw } = await startWorld();
    const session = await connect(gw.url, 'reports');
    onTestFinished(() => session.close());
    const seen = await upstreamWhoami(session);
    expect(seen.status).toBe(200);
    expect(seen.api).toEqual({ sub: 'alice', aud: API_AUDIENCE, scope: 'reports.read', kind: 'exchanged' });
    const signIn = idp.grants.find((g) => g.grant_type === 'authorization_code')!;
    expect(seen.received).not.toBe(`Bearer ${signIn.access_token}`);
    expect(idp.exchanges).toHaveLength(1);
    expect(idp.exchanges[0]).toEqual({
      grant_type: TOKEN_EXCHANGE,
      client_id: 'gateway',
      params: expect.objectContaining({
        grant_type: TOKEN_EXCHANGE,
        subject_token: signIn.access_token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: API_AUDIENCE,
        scope: 'reports.read',
      }),
    });
    // Cached: the next calls reuse it (the stand-in saw one exchange).
    expect((await upstreamWhoami(session)).received).toBe(seen.received);
    expect(idp.exchanges).toHaveLength(1);
    const metrics = await gw.ctx.metrics.registry.getSingleMetricAsString('mcp_gateway_upstream_token_exchanges_total');
    expect(metrics).toContain('service="reports",outcome="success"} 1');
    // The exchanged token is stored per user and service, encrypted.
    const dump = JSON.stringify(await gw.ctx.store.list('gw:upstream:'));
    expect(dump).toContain('"name":"reports"');
    expect(dump).not.toContain(seen.received!.slice('Bearer '.length));
  });

  it('subject_token: id_token sends the ID token; exchange_form: entra_obo sends the on-behalf-of form', async () => {
    const { idp, gw } = await world();
    const byid = await connect(gw.url, 'byid');
    onTestFinished(() => byid.close());
    expect((await upstreamWhoami(byid)).api).toMatchObject({ sub: 'alice', aud: API_AUDIENCE, kind: 'exchanged' });
    expect(idp.exchanges[0]!.params).toMatchObject({ subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' });
    expect(idp.exchanges[0]!.params.subject_token!.split('.')).toHaveLength(3);

    const obo = await connect(gw.url, 'obo');
    onTestFinished(() => obo.close());
    expect((await upstreamWhoami(obo)).api).toMatchObject({ sub: 'alice', aud: API_AUDIENCE, kind: 'exchanged' });
    const sent = idp.exchanges.find((x) => x.grant_type === JWT_BEARER)!;
    const lastSignIn = idp.grants.filter((g) => g.grant_type === 'authorization_code').at(-1)!;
    expect(sent.params).toMatchObject({
      requested_token_use: 'on_behalf_of',
      scope: `api://${API_AUDIENCE}/.default`,
      assertion: lastSignIn.access_token,
    });
    expect(sent.params.subject_token).toBeUndefined();
  });

  it('an audience the provider refuses: 502 upstream_token_failed and the refused metric; the sign-in token is kept', async () => {
    const { idp, gw } = await world();
    // Every request to the service needs its token, the MCP initialize included.
    const err = await connect(gw.url, 'foreign').then(
      () => undefined,
      (e: Error & { code?: number }) => e,
    );
    expect(err?.code).toBe(502);
    expect(err?.message).toContain('upstream_token_failed');
    expect(idp.exchanges).toHaveLength(1);
    const metrics = await gw.ctx.metrics.registry.getSingleMetricAsString('mcp_gateway_upstream_token_exchanges_total');
    expect(metrics).toContain('service="foreign",outcome="refused"} 1');
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')).toBeDefined();
  });

  it("the user's token revoked at the provider: the exchange is refused with invalid_grant and the client is told to connect", async () => {
    const { idp, gw } = await startWorld();
    const session = await connect(gw.url, 'reports');
    onTestFinished(() => session.close());
    idp.revokeUser('alice');
    // The exchanged token is cached; once it is gone (expired) the next exchange presents the revoked token.
    expect(await gw.ctx.credentials!.disconnect('corp:alice', { service: 'reports' })).toBe(1);
    const err = await upstreamWhoami(session).then(
      () => undefined,
      (e: Error & { code?: number }) => e,
    );
    expect(err?.code).toBe(403);
    expect(err?.message).toContain(`${gw.url}/connect/reports`);
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')).toBeUndefined();
  });
});
