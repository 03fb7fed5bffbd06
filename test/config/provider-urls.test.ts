/**
 * Provider URLs are checked when the configuration is loaded (so check-config reports them), each problem
 * once, at its key and line, with the fix. And one mistake gives one message: no cascade.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { problems } from '../helpers/config.js';
import { plainHttpNotice, loopbackHttpUrls } from '../../src/config/schema.js';

const SECRET = 'a-very-long-session-secret-for-tests-0123456789';

function yaml(provider: string[], name = 'myidp'): string {
  return [
    `session_secret: "${SECRET}"`,
    'oauth_providers:',
    `  ${name}:`,
    ...provider.map((l) => `    ${l}`),
    'mcp_services:',
    '  calc:',
    '    name: Calc',
    '    url: http://127.0.0.1:1/mcp',
    `    oauth_provider: ${name}`,
    'storage: {type: memory}',
    '',
  ].join('\n');
}

const CREDS = ['client_id: gw', 'client_secret: gw-secret'];

describe('provider URLs', () => {
  it('plain http on loopback (127.0.0.0/8, ::1, localhost) loads without any flag, and is listed for the start-up warning', () => {
    const cfg = loadConfigText(
      yaml([
        ...CREDS,
        'authorization_url: http://127.0.0.1:9000/auth',
        'token_url: "http://[::1]:9000/token"',
        'userinfo_url: http://localhost:9000/me',
      ]),
      'cfg.yaml',
      { env: {} },
    );
    expect(cfg.oauth_providers.myidp?.allow_insecure_http).toBe(false);
    expect(loopbackHttpUrls(cfg.oauth_providers.myidp!)).toEqual(['authorization_url', 'token_url', 'userinfo_url']);
    const oidc = loadConfigText(yaml([...CREDS, 'issuer: http://127.8.9.10:8080/realms/dev']), 'cfg.yaml', { env: {} });
    expect(loopbackHttpUrls(oidc.oauth_providers.myidp!)).toEqual(['issuer']);
  });

  it('plain http on any other host is refused at its key and line, with the fix', () => {
    const found = problems(
      yaml([
        ...CREDS,
        'authorization_url: https://idp.example.com/auth',
        'token_url: http://idp.example.com/token',
        'userinfo_url: https://idp.example.com/me',
      ]),
    );
    expect(found).toEqual([
      {
        path: 'oauth_providers.myidp.token_url',
        line: 7,
        message: expect.stringMatching(
          /token_url uses plain http on a non-loopback host \(idp\.example\.com\).*allow_insecure_http: true on provider 'myidp' \(refused when NODE_ENV=production\)/,
        ),
      },
    ]);
    // 10.x, 0.0.0.0 and look-alike names are not loopback.
    for (const host of ['10.0.0.5', '0.0.0.0', '127.0.0.1.example.com', 'localhost.example.com']) {
      expect(
        problems(yaml([...CREDS, `issuer: http://${host}:8080`])).map((p) => p.path),
        host,
      ).toEqual(['oauth_providers.myidp.issuer']);
    }
  });

  it('allow_insecure_http: true accepts a non-loopback http URL, except under NODE_ENV=production (at load time, so check-config says it)', () => {
    const text = yaml([...CREDS, 'issuer: http://keycloak.internal:8080/realms/dev', 'allow_insecure_http: true']);
    const cfg = loadConfigText(text, 'cfg.yaml', { env: {} });
    expect(cfg.oauth_providers.myidp?.allow_insecure_http).toBe(true);
    // It is still said at start-up, once.
    expect(plainHttpNotice('myidp', cfg.oauth_providers.myidp!)).toBe(
      "identity provider 'myidp': plain http (issuer) is accepted because allow_insecure_http: true; codes, tokens and the client secret cross the network unencrypted (for a test set-up only)",
    );
    expect(problems(text, { NODE_ENV: 'production' })).toEqual([
      {
        path: 'oauth_providers.myidp.allow_insecure_http',
        line: 7,
        message: expect.stringContaining('allow_insecure_http is refused when NODE_ENV=production'),
      },
    ]);
    // Loopback http needs no flag, so it is fine in production too (the traffic does not leave the host).
    expect(() =>
      loadConfigText(yaml([...CREDS, 'issuer: http://127.0.0.1:8080']), 'cfg.yaml', { env: { NODE_ENV: 'production' } }),
    ).not.toThrow();
  });

  it('a provider URL that is not a URL is named with its value; nothing else is reported for it', () => {
    const found = problems(
      yaml([
        ...CREDS,
        'authorization_url: https://idp.example.com/auth',
        'token_url: idp.example.com/token',
        'userinfo_url: https://idp.example.com/me',
      ]),
    );
    expect(found).toEqual([
      {
        path: 'oauth_providers.myidp.token_url',
        line: 7,
        message: 'token_url must be an absolute http:// or https:// URL (got "idp.example.com/token")',
      },
    ]);
  });

  it('GitHub base_url must be an origin; fragments and an issuer query are refused', () => {
    const gh = problems(yaml([...CREDS, 'base_url: https://github.example.com/enterprise/'], 'github'));
    expect(gh).toEqual([
      {
        path: 'oauth_providers.github.base_url',
        line: 6,
        message: expect.stringContaining('base_url must be an origin such as https://github.example.com'),
      },
    ]);
    expect(() =>
      loadConfigText(yaml([...CREDS, 'base_url: https://github.example.com/'], 'github'), 'cfg.yaml', { env: {} }),
    ).not.toThrow();
    // api_url may carry a path (GitHub Enterprise's /api/v3).
    expect(() =>
      loadConfigText(yaml([...CREDS, 'api_url: https://github.example.com/api/v3'], 'github'), 'cfg.yaml', { env: {} }),
    ).not.toThrow();
    expect(problems(yaml([...CREDS, 'issuer: https://idp.example.com/?tenant=1'])).map((p) => p.message)).toEqual([
      expect.stringContaining('issuer must not contain a query string'),
    ]);
    expect(
      problems(
        yaml([
          ...CREDS,
          'authorization_url: https://idp.example.com/auth#x',
          'token_url: https://idp.example.com/token',
          'userinfo_url: https://idp.example.com/me',
        ]),
      ).map((p) => p.path),
    ).toEqual(['oauth_providers.myidp.authorization_url']);
  });
});

describe('one mistake, one message (no cascades)', () => {
  it('a missing provider variable does not also say "no OAuth providers are configured"', () => {
    const found = problems(
      yaml(['client_id: ${IDP_CLIENT_ID}', 'client_secret: ${IDP_CLIENT_SECRET:-s}', 'issuer: https://idp.example.com']),
    );
    expect(found).toEqual([
      {
        path: 'oauth_providers.myidp.client_id',
        line: 4,
        message: expect.stringContaining("environment variable 'IDP_CLIENT_ID' is required but not set"),
      },
    ]);
  });

  it('a misspelt provider key is reported with the rule it breaks, and the provider (and its services) stay', () => {
    const found = problems(yaml(['clientid: gw', 'client_secret: s', 'issuer: https://idp.example.com']));
    expect(found.map((p) => p.path)).toEqual(['oauth_providers.myidp.clientid', 'oauth_providers.myidp.client_id']);
    expect(found.map((p) => p.message).join('\n')).not.toContain('no OAuth providers');
  });

  it('a missing URL variable is one problem (not also "needs all of authorization_url, token_url and userinfo_url")', () => {
    const found = problems(
      yaml([
        ...CREDS,
        'authorization_url: https://idp.example.com/auth',
        'token_url: ${TOKEN_URL}',
        'userinfo_url: https://idp.example.com/me',
      ]),
    );
    expect(found).toEqual([
      { path: 'oauth_providers.myidp.token_url', line: 7, message: expect.stringContaining("environment variable 'TOKEN_URL'") },
    ]);
  });

  it('two independent mistakes are both reported, each once', () => {
    const text = yaml(['client_id: ${IDP_CLIENT_ID}', 'client_secret: s', 'issuer: http://idp.example.com']).replace(
      'url: http://127.0.0.1:1/mcp',
      'url: ${CALC_URL}',
    );
    expect(problems(text).map((p) => p.path)).toEqual([
      'oauth_providers.myidp.client_id',
      'mcp_services.calc.url',
      'oauth_providers.myidp.issuer',
    ]);
  });
});

describe('one mistake, one message: the provider kind', () => {
  it('an unset issuer variable is one problem (the provider does not turn into a custom one that lacks URLs)', () => {
    const found = problems(yaml([...CREDS, 'issuer: ${IDP_ISSUER}']));
    expect(found).toEqual([
      { path: 'oauth_providers.myidp.issuer', line: 6, message: expect.stringContaining("environment variable 'IDP_ISSUER'") },
    ]);
  });
});

describe('one mistake, one message: rules that read a dropped value', () => {
  it('scopes of the wrong type do not also say "required scope … is not listed in scopes"', () => {
    const text = yaml([...CREDS, 'issuer: https://idp.example.com']).replace(
      '    oauth_provider: myidp',
      '    oauth_provider: myidp\n    scopes: read\n    required_scopes: [read]',
    );
    expect(problems(text)).toEqual([{ path: 'mcp_services.calc.scopes', line: 12, message: 'expected array (got "read")' }]);
  });

  it('an empty client_id is one message, not also "client_id is required"', () => {
    const found = problems(yaml(['client_id: ""', 'client_secret: s', 'issuer: https://idp.example.com']));
    expect(found.map((p) => p.path)).toEqual(['oauth_providers.myidp.client_id']);
  });

  it('a misspelt type does not turn the provider into a custom one that "needs authorization_url, token_url and userinfo_url"', () => {
    const found = problems(yaml([...CREDS, 'type: oidcc']));
    expect(found).toEqual([{ path: 'oauth_providers.myidp.type', line: 6, message: expect.stringContaining('must be one of') }]);
  });
});

describe('ports fetch refuses', () => {
  it('a provider on a fetch "bad port" (e.g. 6000) is refused at load time instead of failing every sign-in with "fetch failed: bad port"', () => {
    expect(problems(yaml([...CREDS, 'issuer: http://127.0.0.1:6000']))).toEqual([
      {
        path: 'oauth_providers.myidp.issuer',
        line: 6,
        message: expect.stringContaining('uses port 6000, which fetch refuses to connect to'),
      },
    ]);
    expect(() => loadConfigText(yaml([...CREDS, 'issuer: http://127.0.0.1:6001']), 'cfg.yaml', { env: {} })).not.toThrow();
  });
});
