import { decodeJwt } from 'jose';
import { describe, expect, test } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { startGithubStandin, OCTOCAT, type GithubStandin } from '../helpers/github-standin.js';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';

const SERVICES = { calc: { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] } };

function githubGateway(gh: GithubStandin, provider: Record<string, unknown>, name = 'github') {
  return startGateway({
    oauth_providers: { [name]: { client_id: gh.clientId, client_secret: gh.clientSecret, allow_insecure_http: true, ...provider } },
    mcp_services: { calc: { ...SERVICES.calc, oauth_provider: name } },
  });
}

describe('GitHub upstream (OAuth 2.0 + REST API)', () => {
  test('GitHub Enterprise layout (base_url): sub github:<id>, private primary verified email, name falls back to login, PKCE and body credentials', async () => {
    const gh = await startGithubStandin();
    const gw = await githubGateway(gh, { base_url: gh.url });
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    expect(provider.lastWalk?.pages).toEqual(['consent']);
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      sub: 'github:583231',
      email: 'octocat@example.com',
      name: 'octocat',
      picture: OCTOCAT.avatar_url,
      idp: 'github',
    });
    const auth = gh.authorizeRequests[0]!;
    expect(auth).toMatchObject({
      client_id: gh.clientId,
      redirect_uri: `${gw.url}/oauth/callback`,
      scope: 'read:user user:email',
      code_challenge_method: 'S256',
    });
    expect(gh.tokenRequests).toEqual([
      { clientAuth: 'body', accept: expect.stringContaining('application/json'), pkceVerified: true, outcome: 'ok' },
    ]);
  });

  test('api.github.com layout (api_url): name from the profile; only a primary AND verified address becomes the email (not the public profile email, not an unverified primary)', async () => {
    const gh = await startGithubStandin();
    gh.nextUser = {
      id: 42,
      login: 'hubot',
      name: 'Hubot Robot',
      email: 'hubot-public@example.com',
      emails: [{ email: 'hubot@example.com', primary: true, verified: false }],
    };
    const gw = await githubGateway(gh, {
      authorization_url: `${gh.url}/login/oauth/authorize`,
      token_url: `${gh.url}/login/oauth/access_token`,
      api_url: gh.url,
    });
    const { tokens } = await obtainToken(gw.url, 'calc');
    const claims = decodeJwt(tokens.access_token);
    expect(claims).toMatchObject({ sub: 'github:42', name: 'Hubot Robot' });
    // Only a primary AND verified address from /user/emails is trusted.
    expect(claims.email).toBeUndefined();
  });

  test('GitHub answers access_denied: the page is shown and the MCP client receives access_denied', async () => {
    const gh = await startGithubStandin();
    const gw = await githubGateway(gh, { base_url: gh.url });
    gh.nextError = 'access_denied';
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'access_denied', iss: gw.url });
    expect(provider.lastWalk?.pages).toEqual(['consent', 'return']);
    expect(gh.tokenRequests).toHaveLength(0);
  });

  test("GitHub's HTTP 200 error body at the token endpoint (wrong client secret) fails the sign-in with server_error", async () => {
    const gh = await startGithubStandin();
    const gw = await githubGateway({ ...gh, clientSecret: 'not-the-secret' }, { base_url: gh.url });
    const provider = new TestOAuthProvider();
    await expect(obtainToken(gw.url, 'calc', { provider })).rejects.toMatchObject({ oauthError: 'server_error' });
    expect(gh.tokenRequests[0]?.outcome).toBe('incorrect_client_credentials');
  });
});

describe('custom upstream (explicit URLs, no discovery, no ID token)', () => {
  const customGateway = (gh: GithubStandin, extra: Record<string, unknown> = {}) =>
    githubGateway(
      gh,
      {
        authorization_url: `${gh.url}/login/oauth/authorize`,
        token_url: `${gh.url}/login/oauth/access_token`,
        userinfo_url: `${gh.url}/custom/userinfo`,
        ...extra,
      },
      'acme',
    );

  test('claims mapping: id, email, name, picture and groups from configured (nested) claims', async () => {
    const gh = await startGithubStandin();
    gh.customProfile = {
      uid: 'u-77',
      mail: 'carol@acme.example',
      profile: { display: 'Carol Acme' },
      photo: 'https://acme.example/c.png',
      teams: 'ops, dev',
      id: 'ignored',
    };
    const gw = await customGateway(gh, {
      claims: { id: 'uid', email: 'mail', name: 'profile.display', picture: 'photo', groups: 'teams' },
    });
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      sub: 'acme:u-77',
      email: 'carol@acme.example',
      name: 'Carol Acme',
      picture: 'https://acme.example/c.png',
      groups: ['ops', 'dev'],
      idp: 'acme',
    });
    expect(gh.tokenRequests[0]).toMatchObject({ clientAuth: 'body', pkceVerified: true });
  });

  test('default fallbacks: id←user_id, name←display_name, picture←profile_image_url', async () => {
    const gh = await startGithubStandin();
    gh.customProfile = {
      user_id: 9001,
      email: 'dave@acme.example',
      display_name: 'Dave',
      profile_image_url: 'https://acme.example/d.png',
      groups: ['a', 'b'],
    };
    const gw = await customGateway(gh);
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      sub: 'acme:9001',
      email: 'dave@acme.example',
      name: 'Dave',
      picture: 'https://acme.example/d.png',
      groups: ['a', 'b'],
    });
  });

  test('default fallbacks: id←sub, name←username, picture←avatar_url; no subject at all fails cleanly', async () => {
    const gh = await startGithubStandin();
    gh.customProfile = { sub: 's-1', username: 'erin', avatar_url: 'https://acme.example/e.png' };
    const gw = await customGateway(gh);
    const { tokens } = await obtainToken(gw.url, 'calc');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'acme:s-1', name: 'erin', picture: 'https://acme.example/e.png' });
    gh.customProfile = { name: 'nobody' };
    await expect(obtainToken(gw.url, 'calc')).rejects.toMatchObject({ oauthError: 'server_error' });
  });
});
