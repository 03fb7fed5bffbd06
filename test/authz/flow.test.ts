import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, test } from 'vitest';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { BOB } from '../helpers/upstream-idp.js';
import { startWorld } from './setup.js';

describe('authorization code flow through the MCP SDK', () => {
  test('issues an ES256 at+jwt bound to the service, with identity claims, verifiable at /oauth/jwks', async () => {
    const { gw } = await startWorld();
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    expect(provider.lastWalk?.pages).toEqual(['consent']);
    expect(provider.captured?.iss).toBe(gw.url);
    expect(tokens.refresh_token).toBeTruthy();
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${gw.url}/oauth/jwks`)), {
      issuer: gw.url,
      audience: `${gw.url}/calc/mcp`,
      typ: 'at+jwt',
    });
    expect(payload.aud).toBe(`${gw.url}/calc/mcp`);
    expect(payload.sub).toBe('myidp:alice');
    expect(payload).toMatchObject({ email: 'alice@example.com', name: 'Alice Example', groups: ['staff', 'mcp-users'], idp: 'myidp' });
    expect(String(payload.scope).split(' ').sort()).toEqual(['mcp:read', 'mcp:tools']);
    expect(typeof payload.gid).toBe('string');
    expect(payload.client_id).toBe(provider.clientInformation()?.client_id);
  });

  test('deny on the consent page returns access_denied to the client', async () => {
    const { gw } = await startWorld();
    const provider = new TestOAuthProvider();
    provider.browser.consent = 'deny';
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'access_denied', iss: gw.url });
  });

  test('consent is remembered per user and client: the second flow shows no page', async () => {
    const { gw } = await startWorld();
    const provider = new TestOAuthProvider();
    await obtainToken(gw.url, 'calc', { provider });
    expect(provider.lastWalk?.pages).toEqual(['consent']);
    const again = new TestOAuthProvider({ browser: provider.browser, clientInformation: provider.clientInformation() });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider: again });
    expect(again.lastWalk?.pages).toEqual([]);
    expect(tokens.access_token).toBeTruthy();
  });

  test('access policy: a user outside the policy gets a page and the client access_denied', async () => {
    const { gw, idp } = await startWorld();
    idp.nextUser = BOB;
    const provider = new TestOAuthProvider();
    // The client is told which rule refused; the person's page says the same in words.
    await expect(obtainToken(gw.url, 'weather', { provider })).rejects.toMatchObject({
      oauthError: 'access_denied',
      description: "denied by the access policy of service 'weather' (policy / access_policy): this account is not allowed to use it",
    });
    expect(provider.lastWalk?.pages).toEqual(['consent', 'return']);
    expect(provider.lastWalk?.shown.at(-1)?.body).toContain('its access policy does not include you');
  });

  test('upstream error is shown and relayed as access_denied', async () => {
    const { gw, idp } = await startWorld();
    idp.nextError = 'access_denied';
    await expect(obtainToken(gw.url, 'calc')).rejects.toMatchObject({
      oauthError: 'access_denied',
      description: 'the identity provider refused the sign-in',
    });
  });
});
