import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigText, parseConfig } from '../../src/config/load.js';
import { problems } from '../helpers/config.js';
import { providerKind } from '../../src/config/schema.js';

const SECRET = 'a-very-long-session-secret-for-tests-0123456789';

describe('configuration loading', () => {
  it('accepts the seed format unchanged and fills defaults', () => {
    const cfg = loadConfigText(
      `
host: "0.0.0.0"
port: 8080
issuer: "http://localhost:8080"
session_secret: "${SECRET}"
oauth_providers:
  google:
    client_id: "\${GOOGLE_CLIENT_ID}"
    client_secret: "\${GOOGLE_CLIENT_SECRET}"
    scopes: ["openid", "email", "profile"]
mcp_services:
  calculator:
    name: "Calculator Service"
    url: "http://localhost:3001/mcp/"
    oauth_provider: "google"
    auth_required: true
    scopes: ["read", "calculate"]
    timeout: 30000
storage:
  type: memory
cors:
  allow_origins: ["http://localhost:3000"]
  allow_credentials: true
`,
      'seed.yaml',
      { env: { GOOGLE_CLIENT_ID: 'id', GOOGLE_CLIENT_SECRET: 'secret' } },
    );
    expect(cfg.oauth_providers.google?.client_id).toBe('id');
    expect(cfg.mcp_services.calculator?.timeout).toBe(30000);
    expect(cfg.storage.type).toBe('memory');
    expect(cfg.tokens.access_token_ttl).toBe(900);
    expect(cfg.registration.mode).toBe('open');
  });

  it('defaults storage to sqlite and strips a trailing slash from the issuer', () => {
    const cfg = parseConfig({ session_secret: SECRET, issuer: 'https://gw.example.com/' });
    expect(cfg.storage.type).toBe('sqlite');
    expect(cfg.storage.sqlite.path).toBe('./data/gateway.db');
    expect(cfg.issuer).toBe('https://gw.example.com');
  });

  it('substitutes ${VAR} and ${VAR:-default} in string values only, never in comments, with $${ escaping', () => {
    const cfg = loadConfigText(
      `
# comment mentions \${NOT_SET_ANYWHERE} and must not fail
session_secret: "\${SECRET}"
port: \${PORT:-9000}
issuer: "http://\${HOST:-127.0.0.1}:\${PORT:-9000}"
debug: "\${DEBUG:-false}"
mcp_services:
  lit:
    name: "costs $\${money}"
    url: http://127.0.0.1:1/mcp
    auth_required: false
`,
      'x.yaml',
      { env: { SECRET, HOST: '' } },
    );
    expect(cfg.port).toBe(9000);
    expect(cfg.issuer).toBe('http://127.0.0.1:9000'); // empty HOST takes the default (shell semantics)
    expect(cfg.debug).toBe(false);
    expect(cfg.mcp_services.lit?.name).toBe('costs ${money}');
  });

  it('a substituted value cannot change the document structure', () => {
    const cfg = loadConfigText(`session_secret: "\${S}"\nhost: \${H}\n`, 'x.yaml', { env: { S: SECRET, H: 'a: b\nport: 1' } });
    expect(cfg.host).toBe('a: b\nport: 1');
    expect(cfg.port).toBe(8080);
  });

  it('names a missing environment variable with its key and line', () => {
    const p = problems(`session_secret: "${SECRET}"\noauth_providers:\n  github:\n    client_id: \${GH_ID}\n    client_secret: x\n`);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatchObject({ path: 'oauth_providers.github.client_id', line: 4 });
    expect(p[0]?.message).toContain("'GH_ID'");
  });

  it('collects every problem at once, each with key path and line', () => {
    const p = problems(
      [
        'port: 99999', // 1
        'session_secret: short', // 2
        'storage:', // 3
        '  type: mongo', // 4
        'mcp_services:', // 5
        '  calc:', // 6
        '    name: Calc', // 7
        '    url: not a url', // 8
        '    timeout: "soon"', // 9
        '    auth_requird: true', // 10
        'oauth_providers:', // 11
        '  google: {client_id: a, client_secret: b}', // 12
        '  github: {client_id: a, client_secret: b}', // 13
      ].join('\n'),
    );
    const byPath = Object.fromEntries(p.map((x) => [x.path, x]));
    expect(byPath.port?.line).toBe(1);
    expect(byPath.session_secret?.line).toBe(2);
    expect(byPath['storage.type']).toMatchObject({ line: 4 });
    expect(byPath['storage.type']?.message).toContain('memory, sqlite, redis, vault');
    expect(byPath['mcp_services.calc.url']?.line).toBe(8);
    expect(byPath['mcp_services.calc.timeout']?.line).toBe(9);
    expect(byPath['mcp_services.calc.auth_requird']?.message).toContain('unknown key');
    // Several providers are allowed (issue 16): two under oauth_providers is not a problem any more.
    expect(byPath.oauth_providers).toBeUndefined();
    expect(p.length).toBeGreaterThanOrEqual(6);
  });

  it('describes wrong values as wrong, not missing, and never echoes a secret value', () => {
    const p = problems(`session_secret: "${SECRET}"\nport: abc\nstorage:\n  type: floppy\n  redis: {password: 987654321}\n`);
    const byPath = Object.fromEntries(p.map((x) => [x.path, x.message]));
    expect(byPath.port).toBe('expected number (got "abc")');
    expect(byPath['storage.type']).toBe('must be one of: memory, sqlite, redis, vault (got "floppy")');
    expect(byPath['storage.redis.password']).toBe('expected string (got a number)');
    expect(JSON.stringify(p)).not.toContain('987654321');
    expect(problems(`session_secret: "${SECRET}"\nmcp_services:\n  a: {url: "http://x/mcp", auth_required: false}\n`)[0]?.message).toBe(
      'required (expected string)',
    );
  });

  it('enforces the provider rules with messages that say how to fix them', () => {
    const noProvider = problems(`session_secret: "${SECRET}"\nmcp_services:\n  a: {name: A, url: "http://x/mcp"}\n`);
    expect(noProvider[0]?.message).toContain('require authentication but no OAuth providers are configured');
    const mismatch = problems(
      `session_secret: "${SECRET}"\noauth_providers:\n  google: {client_id: a, client_secret: b}\nmcp_services:\n  a: {name: A, url: "http://x/mcp", oauth_provider: okta}\n  b: {name: B, url: "http://x/mcp"}\n`,
    );
    // An omitted oauth_provider means every configured provider (issue 16): only the unknown name is a problem.
    expect(mismatch.map((m) => m.path).sort()).toEqual(['mcp_services.a.oauth_provider']);
    expect(mismatch[0]?.message).toMatch(/oauth_provider: google/);
    const custom = problems(
      `session_secret: "${SECRET}"\noauth_providers:\n  myidp: {client_id: a, client_secret: b, authorization_url: "https://idp/auth"}\n`,
    );
    expect(custom[0]?.message).toContain('token_url');
  });

  it('refuses weak or placeholder secrets unless debug', () => {
    expect(problems('session_secret: change-this-in-production\n')[0]?.path).toBe('session_secret');
    expect(problems(`session_secret: "${'x'.repeat(20)}"\n`)[0]?.message).toContain('at least 32');
    expect(problems('{}\n')[0]?.path).toBe('session_secret'); // the default placeholder
    expect(loadConfigText('session_secret: short\ndebug: true\n', 'x', { env: {} }).debug).toBe(true);
  });

  it('quoted booleans mean what they say (seed bug: "false" turned SSL on)', () => {
    const cfg = parseConfig({ session_secret: SECRET, storage: { type: 'redis', redis: { ssl: 'false', port: '6380' } } });
    expect(cfg.storage.redis?.ssl).toBe(false);
    expect(cfg.storage.redis?.port).toBe(6380);
    expect(() => parseConfig({ session_secret: SECRET, debug: 'maybe' })).toThrow(ConfigError);
  });

  it('applies environment overrides over the file, and reports which variable was wrong', () => {
    const cfg = loadConfigText(`session_secret: short\nport: 1000\n`, 'x', {
      env: {
        MCP_GATEWAY_PORT: '2000',
        MCP_GATEWAY_HOST: '127.0.0.2',
        MCP_ISSUER: 'https://a.example',
        MCP_SESSION_SECRET: SECRET,
        MCP_DEBUG: 'false',
      },
    });
    expect(cfg).toMatchObject({ port: 2000, host: '127.0.0.2', issuer: 'https://a.example', session_secret: SECRET, debug: false });
    const p = problems(`session_secret: "${SECRET}"\n`, { MCP_GATEWAY_PORT: 'eighty' });
    expect(p[0]?.message).toContain('MCP_GATEWAY_PORT');
  });

  it('reports YAML syntax errors with their line, without a stack trace', () => {
    const p = problems('a: 1\nb: [unclosed\nc: 3\n');
    expect(p[0]?.message).toMatch(/YAML syntax error/);
    expect(p[0]?.line).toBeGreaterThanOrEqual(2);
    expect(problems('- just\n- a list\n')[0]?.message).toContain('mapping');
    expect(problems('a: 1\na: 2\n')[0]?.message).toMatch(/YAML syntax error/);
  });

  it('rejects issuers with a path, reserved service ids and bad service ids', () => {
    const p = problems(
      `session_secret: "${SECRET}"\nissuer: https://gw.example.com/base\nmcp_services:\n  oauth: {name: A, url: "http://x/mcp", auth_required: false}\n  "a/b": {name: B, url: "http://x/mcp", auth_required: false}\n`,
    );
    expect(p.map((x) => x.path).sort()).toEqual(['issuer', 'mcp_services.a/b', 'mcp_services.oauth']);
  });

  it('trust_proxy: a hop count stays a number (1 must not become "trust everything")', () => {
    expect(parseConfig({ session_secret: SECRET, trust_proxy: 1 }).trust_proxy).toBe(1);
    expect(parseConfig({ session_secret: SECRET, trust_proxy: '2' }).trust_proxy).toBe(2);
    expect(parseConfig({ session_secret: SECRET, trust_proxy: true }).trust_proxy).toBe(true);
    expect(parseConfig({ session_secret: SECRET, trust_proxy: ['10.0.0.0/8'] }).trust_proxy).toEqual(['10.0.0.0/8']);
  });

  it('derives the provider kind from its key unless type is given', () => {
    expect(providerKind('google', {})).toBe('google');
    expect(providerKind('GitHub', {})).toBe('github');
    expect(providerKind('myidp', { issuer: 'https://idp' })).toBe('oidc');
    expect(providerKind('myidp', {})).toBe('custom');
    expect(providerKind('corp', { type: 'okta' })).toBe('okta');
  });
});
