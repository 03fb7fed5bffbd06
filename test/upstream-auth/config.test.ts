/** `upstream_auth` and `upstream_tokens` rules, reported by the loader with file, line and key (src/config/rules.ts). */
import { describe, expect, it } from 'vitest';
import { problems } from '../helpers/config.js';
import { loadConfigText } from '../../src/config/load.js';

const base = (service: string, extra = '') => `
issuer: https://gw.example.com
session_secret: a-session-secret-that-is-long-enough-0123456789
storage: { type: memory }
oauth_providers:
  corp:
    issuer: https://idp.example.com
    client_id: gw
    client_secret: gw-secret
${extra}
mcp_services:
  files:
    name: Files
    url: http://files:3000/mcp
    oauth_provider: corp
${service}
`;

const SECRET = 'upstream_tokens:\n  secret: a-dedicated-upstream-token-secret-0123456789';

describe('upstream_auth configuration', () => {
  it('a passthrough and a token_exchange service with a secret load', () => {
    const cfg = loadConfigText(
      base(
        '    upstream_auth:\n      mode: token_exchange\n      audience: https://api.example.com\n      subject_token: id_token',
        SECRET,
      ),
      'cfg.yaml',
      { env: {} },
    );
    expect(cfg.mcp_services.files!.upstream_auth).toMatchObject({
      mode: 'token_exchange',
      header: 'authorization',
      exchange_form: 'rfc8693',
    });
    expect(cfg.upstream_tokens?.refresh_before_expiry).toBe(60);
  });

  it('no encryption key: named with the line of mcp_services', () => {
    const p = problems(base('    upstream_auth:\n      mode: passthrough'));
    expect(p).toEqual([expect.objectContaining({ path: 'mcp_services', message: expect.stringContaining('upstream_tokens: { secret:') })]);
    expect(p[0]!.line).toBeGreaterThan(0);
  });

  it('each misuse names its key and line', () => {
    const p = problems(
      base(
        [
          '    auth_required: false',
          '    upstream_auth:',
          '      mode: token_exchange',
          '      header: cookie',
          '      exchange_form: entra_obo',
          '      client_id: nope',
        ].join('\n'),
        'upstream_tokens:\n  secret: short\n  encryption_keys:\n    - { id: "bad id", key: "dG9vLXNob3J0" }\n    - { id: k1, key: "dG9vLXNob3J0" }',
      ),
    );
    const at = (path: string) => p.find((x) => x.path === path);
    expect(at('mcp_services.files.upstream_auth')?.message).toMatch(/auth_required: false/);
    expect(at('mcp_services.files.upstream_auth.header')?.message).toMatch(/cannot carry the upstream token/);
    expect(at('mcp_services.files.upstream_auth.scope')?.message).toMatch(/entra_obo needs scope/);
    expect(at('mcp_services.files.upstream_auth.client_id')?.message).toMatch(/only used with mode: oauth/);
    expect(at('upstream_tokens.secret')?.message).toMatch(/at least 32/);
    expect(at('upstream_tokens.encryption_keys.0.id')?.message).toMatch(/1 to 32 letters/);
    expect(at('upstream_tokens.encryption_keys.1.key')?.message).toMatch(/decodes to 9 bytes/);
    for (const x of p) expect(x.line, x.path).toBeGreaterThan(0);
  });

  it('oauth mode: client_secret needs client_id; the development sign-in has no tokens to pass on', () => {
    expect(
      loadConfigText(base('    upstream_auth: { mode: oauth, scopes: [repo] }', SECRET), 'cfg.yaml', { env: {} }).mcp_services.files!
        .upstream_auth?.mode,
    ).toBe('oauth');
    expect(problems(base('    upstream_auth: { mode: oauth, client_secret: s }', SECRET))).toEqual([
      expect.objectContaining({
        path: 'mcp_services.files.upstream_auth.client_secret',
        message: expect.stringMatching(/needs client_id/),
      }),
    ]);
    const dev = `
issuer: http://127.0.0.1:8080
host: 127.0.0.1
session_secret: a-session-secret-that-is-long-enough-0123456789
storage: { type: memory }
oauth_providers: { dev: { type: dev } }
${SECRET}
mcp_services:
  files: { name: Files, url: "http://127.0.0.1:3000/mcp", oauth_provider: dev, upstream_auth: { mode: passthrough } }
`;
    expect(problems(dev)).toEqual([expect.objectContaining({ message: expect.stringMatching(/development sign-in/) })]);
  });

  it('the secret must not be session_secret', () => {
    const p = problems(
      base('    upstream_auth: { mode: passthrough }', 'upstream_tokens:\n  secret: a-session-secret-that-is-long-enough-0123456789'),
    );
    expect(p).toEqual([
      expect.objectContaining({ path: 'upstream_tokens.secret', message: expect.stringMatching(/differ from session_secret/) }),
    ]);
  });
});
