/**
 * Security regressions at the authorization endpoint and the sign-in journey (original-behaviour §8.1):
 * S1 open redirect, S2 PKCE, S8 http redirect URIs, S9 consent before upstream, S10 state and code
 * single use. Each test names the finding it proves closed.
 */
import { describe, expect, test } from 'vitest';
import { authorizeOnly, BrowserDriver, obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { authorizeUrl, gidOf, postForm, register, REDIRECT, securityWorld, VERIFIER } from './world.js';

const flipLast = (s: string) => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A');

/** A browser-facing refusal: an HTML error page, no Location, framing forbidden. */
async function expectErrorPage(res: Response): Promise<string> {
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  expect(res.headers.get('location')).toBeNull();
  expect(res.headers.get('content-type')).toContain('text/html');
  expect(res.headers.get('x-frame-options')).toBe('DENY');
  return res.text();
}

describe('S1: no open redirector at /oauth/authorize', () => {
  test('S1: unknown client at /oauth/authorize gets an error page, never a redirect', async () => {
    const { gw } = await securityWorld();
    for (const redirect of [REDIRECT, 'https://evil.example/cb']) {
      const body = await expectErrorPage(
        await fetch(authorizeUrl(gw.url, { client_id: 'no-such-client', redirect_uri: redirect }), { redirect: 'manual' }),
      );
      expect(body).not.toContain('evil.example');
    }
  });

  test('S1: a registered client with an unregistered redirect_uri gets an error page (other host, other path, extra query, fragment, userinfo)', async () => {
    const { gw } = await securityWorld();
    const clientId = String((await register(gw.url)).json.client_id);
    const variants = [
      'https://evil.example/callback',
      'http://127.0.0.1:49152/callback/../evil',
      'http://127.0.0.1:49152/callbackx',
      'http://127.0.0.1:49152/callback?next=https://evil.example',
      'http://127.0.0.1:49152/callback#frag',
      'http://evil@127.0.0.1:49152/callback',
      'http://127.0.0.1.evil.example:49152/callback',
      'HTTP://127.0.0.1:49152/CALLBACK',
    ];
    for (const redirect_uri of variants) {
      const res = await fetch(authorizeUrl(gw.url, { client_id: clientId, redirect_uri }), { redirect: 'manual' });
      await expectErrorPage(res);
    }
    // The registered one (loopback: any port, RFC 8252 §7.3) is accepted.
    const ok = await fetch(authorizeUrl(gw.url, { client_id: clientId, redirect_uri: 'http://127.0.0.1:50000/callback' }), {
      redirect: 'manual',
    });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toMatch(/^\/interaction\//);
  });

  test('S1: an unknown URL-shaped client_id (CIMD) pointing at loopback or link-local is refused with a page, nothing is fetched (SSRF)', async () => {
    const { gw } = await securityWorld();
    for (const clientId of [
      'https://127.0.0.1:1/client.json',
      'https://169.254.169.254/latest/meta-data/client.json',
      'https://[::1]/c.json',
      'http://public.example/client.json',
    ]) {
      await expectErrorPage(
        await fetch(authorizeUrl(gw.url, { client_id: clientId, redirect_uri: 'https://evil.example/cb' }), { redirect: 'manual' }),
      );
    }
  });
});

describe('S2: PKCE is required (S256 only)', () => {
  test('S2: an authorization request without code_challenge, or with method plain, is refused (no code issued)', async () => {
    const { gw } = await securityWorld();
    const clientId = String((await register(gw.url)).json.client_id);
    for (const params of [
      { code_challenge: undefined, code_challenge_method: undefined },
      { code_challenge_method: 'plain', code_challenge: VERIFIER },
      { code_challenge_method: 'S512' },
    ]) {
      const res = await fetch(authorizeUrl(gw.url, { client_id: clientId, ...params }), { redirect: 'manual' });
      expect(res.status).toBe(303);
      const to = new URL(res.headers.get('location')!, gw.url);
      // The client is known and its redirect URI registered, so the error goes back to it (RFC 6749 §4.1.2.1).
      expect(to.href.startsWith(REDIRECT)).toBe(true);
      expect(to.searchParams.get('error')).toBe('invalid_request');
      expect(to.searchParams.get('code')).toBeNull();
    }
  });

  test('S2: the token endpoint refuses a missing or wrong code_verifier with invalid_grant and issues nothing', async () => {
    const { gw } = await securityWorld();
    const provider = await authorizeOnly(gw.url, 'calc');
    const base = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      redirect_uri: provider.redirectUri,
      client_id: provider.clientInformation()!.client_id,
    };
    for (const code_verifier of [
      undefined,
      VERIFIER,
      `${provider.codeVerifier()}x`,
      provider.codeVerifier().slice(1),
      flipLast(provider.codeVerifier()),
    ]) {
      const body: Record<string, string> = { ...base };
      if (code_verifier !== undefined) body.code_verifier = code_verifier;
      const res = await postForm(`${gw.url}/oauth/token`, body);
      expect(res.status).toBe(400);
      // A verifier of the wrong length or alphabet is a malformed request; a well-formed wrong one is invalid_grant.
      expect(['invalid_grant', 'invalid_request']).toContain(res.json.error);
      expect(res.json.access_token).toBeUndefined();
    }
  });

  test('S2 (documented behaviour): a failed PKCE check does not consume the code; the right verifier then redeems it once', async () => {
    // oidc-provider checks PKCE before consuming the code (actions/grants/authorization_code.js), so a
    // wrong guess by someone holding a stolen code cannot burn the legitimate client's code. Guessing is
    // hopeless: the verifier carries >= 256 bits and the code lives `tokens.authorization_code_ttl` (60 s).
    const { gw } = await securityWorld();
    const provider = await authorizeOnly(gw.url, 'calc');
    const base = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      redirect_uri: provider.redirectUri,
      client_id: provider.clientInformation()!.client_id,
    };
    expect((await postForm(`${gw.url}/oauth/token`, { ...base, code_verifier: VERIFIER })).json.error).toBe('invalid_grant');
    const ok = await postForm(`${gw.url}/oauth/token`, { ...base, code_verifier: provider.codeVerifier() });
    expect(ok.status).toBe(200);
    const again = await postForm(`${gw.url}/oauth/token`, { ...base, code_verifier: provider.codeVerifier() });
    expect(again.json.error).toBe('invalid_grant');
  });

  test('S2: the metadata advertises S256 only', async () => {
    const { gw } = await securityWorld();
    const md = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(md.code_challenge_methods_supported).toEqual(['S256']);
  });
});

describe('S8: plain http redirect URIs only on loopback', () => {
  test('S8: registration refuses non-loopback http redirect URIs for every application_type', async () => {
    const { gw } = await securityWorld();
    const uris = [
      'http://evil.example/cb',
      'http://10.0.0.1/cb',
      'http://localhost.evil.example/cb',
      'http://127.0.0.1.nip.io/cb',
      'http://0.0.0.0/cb',
    ];
    for (const uri of uris) {
      for (const application_type of [undefined, 'native', 'web']) {
        const res = await register(gw.url, { redirect_uris: [REDIRECT, uri], ...(application_type ? { application_type } : {}) });
        expect(res.status, `${uri} ${application_type}`).toBe(400);
        expect(res.json.error).toBe('invalid_redirect_uri');
        expect(res.json.client_id).toBeUndefined();
      }
    }
    // Loopback http (RFC 8252 §7.3) and https stay allowed.
    for (const uri of ['http://127.0.0.1/cb', 'http://[::1]:8080/cb', 'http://localhost:3000/cb', 'https://app.example/cb']) {
      expect((await register(gw.url, { redirect_uris: [uri] })).status, uri).toBe(201);
    }
  });

  test('S8: javascript:, data: and relative redirect URIs are refused', async () => {
    const { gw } = await securityWorld();
    for (const uri of ['javascript:alert(1)', 'data:text/html,hi', '/relative/cb', 'https://app.example/cb#fragment']) {
      const res = await register(gw.url, { redirect_uris: [uri] });
      expect(res.status, uri).toBe(400);
      expect(['invalid_redirect_uri', 'invalid_client_metadata']).toContain(res.json.error);
    }
  });
});

describe('S9: consent before the upstream IdP (confused deputy)', () => {
  test('S9: the first step is the gateway consent page; the IdP is not contacted before Approve', async () => {
    const { gw, idp } = await securityWorld();
    const clientId = String((await register(gw.url, { client_name: 'Evil <b>Client</b>' })).json.client_id);
    const browser = new BrowserDriver();
    const first = await browser.request(new URL(authorizeUrl(gw.url, { client_id: clientId })));
    expect(first.status).toBe(303);
    const interaction = new URL(first.headers.get('location')!, gw.url);
    expect(interaction.origin).toBe(gw.url);
    const page = await browser.request(interaction);
    expect(page.status).toBe(200);
    expect(page.headers.get('location')).toBeNull();
    const html = await page.text();
    expect(html).toContain('/decision');
    // The client name is escaped; the redirect host and the service are named.
    expect(html).toContain('Evil &lt;b&gt;Client&lt;/b&gt;');
    expect(html).toContain('http://127.0.0.1:49152');
    expect(html).toContain(`${gw.url}/calc/mcp`);
    // No cookie that grants anything upstream was set before the approval: only oidc-provider's own.
    expect(html).not.toContain(idp.issuer);
  });

  test('S9: Deny never reaches the IdP and returns access_denied', async () => {
    const { gw, idp } = await securityWorld();
    const provider = new TestOAuthProvider();
    provider.browser.consent = 'deny';
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'access_denied' });
    expect(provider.lastWalk!.visited.some((u) => u.origin === idp.issuer)).toBe(false);
  });

  test('S9: consent is per client — a second client for a signed-in user shows the page again', async () => {
    const { gw } = await securityWorld();
    const first = new TestOAuthProvider();
    await obtainToken(gw.url, 'calc', { provider: first });
    expect(first.lastWalk!.pages).toEqual(['consent']);
    // Same browser (the user has a gateway session), another dynamically registered client.
    const attacker = new TestOAuthProvider({ browser: first.browser, clientMetadata: { client_name: 'Other Client' } });
    const walk = await authorizeOnly(gw.url, 'calc', { provider: attacker }).then(
      () => attacker.lastWalk!,
      () => attacker.lastWalk!,
    );
    expect(walk.pages[0]).toBe('consent');
    expect(walk.shown[0]!.body).toContain('Other Client');
  });

  test('S9: the consent decision is bound to the browser: the right CSRF token from another browser does nothing', async () => {
    const { gw, idp } = await securityWorld();
    const clientId = String((await register(gw.url)).json.client_id);
    const victim = new BrowserDriver();
    const first = await victim.request(new URL(authorizeUrl(gw.url, { client_id: clientId })));
    const interaction = new URL(first.headers.get('location')!, gw.url);
    const csrf = /name="csrf" value="([^"]+)"/.exec(await (await victim.request(interaction)).text())![1]!;
    const stranger = new BrowserDriver();
    const res = await stranger.request(new URL(`${interaction.pathname}/decision`, gw.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, action: 'approve' }),
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get('location') ?? '').not.toContain(idp.issuer);
  });

  test('S9: the consent page cannot be framed and is never cached', async () => {
    const { gw } = await securityWorld();
    const clientId = String((await register(gw.url)).json.client_id);
    const browser = new BrowserDriver();
    const first = await browser.request(new URL(authorizeUrl(gw.url, { client_id: clientId })));
    const page = await browser.request(new URL(first.headers.get('location')!, gw.url));
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('cache-control')).toBe('no-store');
    for (const cookie of page.headers.getSetCookie()) expect(cookie.toLowerCase()).toContain('httponly');
  });
});

describe('S10: upstream state and codes are single use', () => {
  test('S10: replaying the upstream callback (same state) is refused and issues no second code', async () => {
    const { gw, idp } = await securityWorld();
    const provider = new TestOAuthProvider();
    await obtainToken(gw.url, 'calc', { provider });
    const callback = provider.lastWalk!.visited.find((u) => u.origin === gw.url && u.pathname === '/oauth/callback');
    expect(callback?.searchParams.get('state')).toBeTruthy();
    expect(callback!.href).toContain('code=');
    // Same browser: the state was taken at the first use.
    const replay = await provider.browser.walk(callback!, REDIRECT);
    expect(replay.redirect?.searchParams.get('code') ?? null).toBeNull();
    expect(replay.visited.some((u) => u.origin === idp.issuer)).toBe(false);
    // Another browser (an attacker who saw the URL): refused too.
    const stranger = await fetch(callback!, { redirect: 'manual' });
    if (stranger.status === 303) {
      const follow = await fetch(new URL(stranger.headers.get('location')!, gw.url), { redirect: 'manual' });
      expect(follow.status).toBeGreaterThanOrEqual(400);
      expect(follow.headers.get('location')).toBeNull();
    } else {
      expect(stranger.status).toBe(400);
    }
  });

  test('S10: an unknown or missing state at /oauth/callback is an error page', async () => {
    const { gw } = await securityWorld();
    for (const q of ['', '?state=forged&code=abc', '?code=abc', '?state=&code=abc', '?state[]=x']) {
      const res = await fetch(`${gw.url}/oauth/callback${q}`, { redirect: 'manual' });
      expect(res.status, q).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }
  });

  test('S10: concurrent redemptions of one code — exactly one wins and the grant is then revoked (atomic consume)', async () => {
    const { gw } = await securityWorld();
    const provider = await authorizeOnly(gw.url, 'calc');
    const body = {
      grant_type: 'authorization_code',
      code: provider.captured!.code!,
      code_verifier: provider.codeVerifier(),
      redirect_uri: provider.redirectUri,
      client_id: provider.clientInformation()!.client_id,
    };
    const results = await Promise.all(Array.from({ length: 8 }, () => postForm(`${gw.url}/oauth/token`, body)));
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    expect(results.filter((r) => r.status === 400 && r.json.error === 'invalid_grant')).toHaveLength(7);
    expect(gw.ctx.revocations.isRevoked(gidOf(String(ok[0]!.json.access_token)))).toBe(true);
  });
});
