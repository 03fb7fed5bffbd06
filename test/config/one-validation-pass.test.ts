/**
 * Issue 13 defect 3, "one validation pass": every rule the server enforces when it starts is part of
 * what the loader checks, so `check-config` and start-up name each mistake in a file at once, with its
 * line, key and fix; createGateway's own checks remain only for configuration objects built in code.
 * Before this, each configuration below passed `check-config` ("OK") and then stopped the server with
 * one message and no line.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { loadConfigText } from '../../src/config/load.js';
import { trustProxyEntryProblem } from '../../src/config/rules.js';
import { createGateway } from '../../src/http/app.js';
import { runCli } from '../helpers/cli.js';
import { problems, testConfig } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-one-pass-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAD = [
  'host: 127.0.0.1',
  'port: 0',
  'issuer: http://127.0.0.1:8080',
  'session_secret: one-validation-pass-secret-0123456789abcdef',
  'storage: {type: memory}',
];
const SERVICE = ['mcp_services:', '  calc:', '    name: Calc', '    url: http://127.0.0.1:9/mcp', '    auth_required: false'];

/** The 1-based line of the first line of `text` containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`'${needle}' is not in the text`);
  return i + 1;
}

function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** A real P-256 private JWK, as `keys:` expects it. */
function ecJwk(kid?: string): Record<string, string> {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as Record<string, string>;
  return kid ? { ...jwk, kid } : jwk;
}

/** The one problem reported at `path`, asserting its line. */
function problemAt(text: string, path: string, needle: string, env: NodeJS.ProcessEnv = {}) {
  const found = problems(text, env);
  const p = found.find((x) => x.path === path);
  expect(p, `no problem at ${path} in ${JSON.stringify(found)}`).toBeDefined();
  expect(p!.line).toBe(lineOf(text, needle));
  return p!;
}

describe('rules the server enforces at start-up are reported by the loader, with key and line', () => {
  it('an identity header name that is not an HTTP field name (the proxy refused it at start-up)', () => {
    const text = yaml(...HEAD, ...SERVICE, '    identity_headers:', '      email: "x user email"');
    const p = problemAt(text, 'mcp_services.calc.identity_headers.email', 'email: "x user email"');
    expect(p.message).toMatch(/'x user email' is not a valid HTTP header name \(RFC 9110 §5\.1/);
  });

  it('an identity header that would replace Authorization, Host or Cookie', () => {
    for (const name of ['Authorization', 'host', ' COOKIE']) {
      const text = yaml(...HEAD, ...SERVICE, '    identity_headers:', `      id: "${name}"`);
      const p = problemAt(text, 'mcp_services.calc.identity_headers.id', `id: "${name}"`);
      expect(p.message).toContain(`'${name.trim().toLowerCase()}' cannot be an identity header name`);
    }
  });

  it('the signed identity header, when the assertion is enabled (as the proxy checks it)', () => {
    const text = yaml(...HEAD, ...SERVICE, '    signed_identity:', '      enabled: true', '      header: "x:assertion"');
    expect(problemAt(text, 'mcp_services.calc.signed_identity.header', 'header: "x:assertion"').message).toContain(
      'not a valid HTTP header name',
    );
    // Disabled, the header is never sent and the proxy does not look at it.
    expect(() => loadConfigText(text.replace('enabled: true', 'enabled: false'), 'cfg.yaml', { env: {} })).not.toThrow();
  });

  it('the development sign-in on a non-loopback bind address, at the host key', () => {
    const text = yaml(...HEAD, 'oauth_providers:', '  dev: {}', ...SERVICE).replace('host: 127.0.0.1', 'host: 0.0.0.0');
    const p = problemAt(text, 'host', 'host: 0.0.0.0');
    expect(p.message).toMatch(
      /oauth_providers\.dev \(type: dev, the development sign-in\) is only allowed on a loopback address, but host is '0\.0\.0\.0'\. Bind to 127\.0\.0\.1/,
    );
  });

  it('the development sign-in with host left at its default: the line of the provider', () => {
    const text = yaml(...HEAD.filter((l) => !l.startsWith('host:')), 'oauth_providers:', '  mine: {type: dev}', ...SERVICE);
    expect(problemAt(text, 'host', 'mine: {type: dev}').message).toContain("but host is '0.0.0.0'");
  });

  it('the development sign-in with the host from MCP_GATEWAY_HOST says where the value came from', () => {
    const text = yaml(...HEAD, 'oauth_providers:', '  dev: {}', ...SERVICE);
    const p = problemAt(text, 'host', 'host: 127.0.0.1', { MCP_GATEWAY_HOST: '192.168.1.10' });
    expect(p.message).toMatch(/but host is '192\.168\.1\.10'.*\(value from environment variable MCP_GATEWAY_HOST\)$/);
  });

  it('the development sign-in with a public issuer, at the issuer key', () => {
    const text = yaml(...HEAD, 'oauth_providers:', '  dev: {}', ...SERVICE).replace(
      'issuer: http://127.0.0.1:8080',
      'issuer: https://gateway.example.com',
    );
    expect(problemAt(text, 'issuer', 'issuer: https://gateway.example.com').message).toContain(
      "only allowed with a loopback issuer, but issuer is 'https://gateway.example.com'",
    );
  });

  it('the development sign-in when the environment says NODE_ENV=production', () => {
    const text = yaml(...HEAD, 'oauth_providers:', '  dev: {}', ...SERVICE);
    expect(() => loadConfigText(text, 'cfg.yaml', { env: { NODE_ENV: 'development' } })).not.toThrow();
    expect(problemAt(text, 'oauth_providers.dev', '  dev: {}', { NODE_ENV: 'production' }).message).toContain(
      'is refused when NODE_ENV=production: anyone could sign in as anyone',
    );
  });

  it('type: oidc without issuer (discovery has nowhere to start)', () => {
    const text = yaml(
      ...HEAD,
      'oauth_providers:',
      '  corp:',
      '    type: oidc',
      '    client_id: id',
      '    client_secret: secret',
      ...SERVICE,
    );
    expect(problemAt(text, 'oauth_providers.corp.issuer', '  corp:').message).toContain("provider 'corp' (type: oidc) needs issuer");
  });

  it('a configured signing key without kid', () => {
    const { kid: _none, ...jwk } = ecJwk('unused');
    const text = yaml(...HEAD, 'keys:', `  - ${JSON.stringify(jwk)}`, ...SERVICE);
    expect(problemAt(text, 'keys.0.kid', '  - {').message).toContain('keys[0] needs a kid');
  });

  it('a configured signing key without d (a public key cannot sign)', () => {
    const { d: _private, ...pub } = ecJwk('k1');
    const text = yaml(...HEAD, 'keys:', `  - ${JSON.stringify(pub)}`, ...SERVICE);
    expect(problemAt(text, 'keys.0.d', '  - {').message).toContain('keys[0] must be a private JWK (with d)');
  });

  it('a configured signing key that is not EC P-256, or repeats a kid, or whose halves do not match', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const first = ecJwk('same');
    const mismatched = { ...ecJwk('k3'), d: ecJwk().d };
    const text = yaml(
      ...HEAD,
      'keys:',
      `  - ${JSON.stringify(first)}`,
      `  - ${JSON.stringify({ ...rsa, kid: 'rsa' })}`,
      `  - ${JSON.stringify({ ...ecJwk(), kid: 'same' })}`,
      `  - ${JSON.stringify(mismatched)}`,
      ...SERVICE,
    );
    const found = problems(text);
    const lines = text.split('\n');
    const keyLine = (i: number) => lines.findIndex((l) => l.startsWith('  - {')) + 1 + i;
    expect(found.find((p) => p.path === 'keys.1.kty')).toMatchObject({
      line: keyLine(1),
      message: expect.stringContaining('must be an EC P-256 key'),
    });
    expect(found.find((p) => p.path === 'keys.2.kid')).toMatchObject({
      line: keyLine(2),
      message: expect.stringContaining('same kid as keys[0]'),
    });
    expect(found.find((p) => p.path === 'keys.3')).toMatchObject({
      line: keyLine(3),
      message: expect.stringContaining('d does not belong to x and y'),
    });
    expect(found.some((p) => p.path.startsWith('keys.0'))).toBe(false);
    // A secret never appears in a message.
    expect(JSON.stringify(found)).not.toContain(first.d);
  });

  it('a trust_proxy entry that is not an address, a range or a known name (fastify refused it at start-up)', () => {
    const text = yaml(
      ...HEAD,
      'trust_proxy:',
      '  - 10.0.0.0/8',
      '  - "10.0.0.1, 10.0.0.2"',
      '  - 192.168.0.0/33',
      '  - 10.0.0.0/255.0.255.0',
      ...SERVICE,
    );
    expect(problemAt(text, 'trust_proxy.1', '10.0.0.1, 10.0.0.2').message).toContain('is not an IP address');
    expect(problemAt(text, 'trust_proxy.2', '192.168.0.0/33').message).toContain('invalid prefix length');
    expect(problemAt(text, 'trust_proxy.3', '255.0.255.0').message).toContain('invalid prefix length');
    expect(problems(text).filter((p) => p.path.startsWith('trust_proxy'))).toHaveLength(3);
    const ok = loadConfigText(
      yaml(...HEAD, 'trust_proxy: [loopback, uniquelocal, "::1", 10.0.0.0/255.0.0.0, "fd00::/8"]', ...SERVICE),
      'cfg.yaml',
      { env: {} },
    );
    expect(ok.trust_proxy).toHaveLength(5);
  });

  it('the trust_proxy rule accepts exactly what fastify (proxy-addr) accepts', () => {
    const entries = [
      '10.0.0.1',
      '10.0.0.0/8',
      '10.0.0.0/08',
      '10.0.0.0/0',
      '10.0.0.0/32',
      '10.0.0.0/33',
      '10.0.0.0/255.255.0.0',
      '10.0.0.0/255.0.255.0',
      '10.0.0.0/0.0.0.0',
      '::1',
      'fd00::/8',
      '::/129',
      '::ffff:10.0.0.0/104',
      'fe80::1%eth0',
      'loopback',
      'linklocal',
      'uniquelocal',
      'Loopback',
      'nonsense',
      ' 10.0.0.1',
      '10.0.0.1,10.0.0.2',
      '',
      '10.0.0.0/',
      '10.0.0.0/x',
    ];
    for (const entry of entries) {
      let fastifyAccepts = true;
      try {
        Fastify({ trustProxy: [entry] });
      } catch {
        fastifyAccepts = false;
      }
      expect(trustProxyEntryProblem(entry) === undefined, JSON.stringify(entry)).toBe(fastifyAccepts);
    }
  });

  it('two static clients with one client_id (oidc-provider refused to start)', () => {
    const text = yaml(
      ...HEAD,
      'clients:',
      '  - {client_id: cli, redirect_uris: ["http://127.0.0.1/cb"]}',
      '  - {client_id: cli, redirect_uris: ["http://127.0.0.1/other"]}',
      ...SERVICE,
    );
    expect(problemAt(text, 'clients.1.client_id', '/other').message).toContain("client_id 'cli' is already used by clients[0]");
  });

  it('a valid configuration with every one of these keys loads, and the gateway starts on it', async () => {
    const text = yaml(
      ...HEAD,
      'oauth_providers:',
      '  dev: {}',
      'trust_proxy: [loopback]',
      'clients:',
      '  - {client_id: a, redirect_uris: ["http://127.0.0.1/cb"]}',
      '  - {client_id: b, redirect_uris: ["http://127.0.0.1/cb"]}',
      'keys:',
      `  - ${JSON.stringify(ecJwk('first'))}`,
      `  - ${JSON.stringify({ ...ecJwk('second'), alg: 'ES256', use: 'sig' })}`,
      ...SERVICE,
      '    identity_headers: {id: X-Remote-User, email: x-remote-email}',
      '    signed_identity: {enabled: true, header: X-Identity}',
    );
    const gw = await createGateway(loadConfigText(text, 'cfg.yaml', { env: {} }), { silent: true });
    await gw.close();
  });

  it('several different mistakes are reported together, each with its line (also past a type error)', () => {
    const text = yaml(
      'host: 0.0.0.0',
      'port: not-a-port',
      'session_secret: one-validation-pass-secret-0123456789abcdef',
      'storage: {type: memory}',
      'trust_proxy: [nonsense]',
      'oauth_providers:',
      '  dev: {}',
      'keys:',
      '  - {kty: EC, crv: P-256}',
      ...SERVICE,
      '    identity_headers: {id: "bad header"}',
    );
    const found = problems(text);
    const at = (path: string) => found.find((p) => p.path === path);
    expect(at('port')?.line).toBe(lineOf(text, 'port:'));
    expect(at('host')).toMatchObject({ line: 1, message: expect.stringContaining('development sign-in') });
    expect(at('trust_proxy.0')?.line).toBe(lineOf(text, 'trust_proxy'));
    expect(at('keys.0.kid')?.line).toBe(lineOf(text, '  - {kty'));
    expect(at('mcp_services.calc.identity_headers.id')?.line).toBe(lineOf(text, 'identity_headers'));
  });
});

describe('the runtime guards stay for configuration objects built in code', () => {
  it('createGateway still refuses a bad identity header name, a key without kid and a bad trust_proxy entry', async () => {
    const base = testConfig({ mcp_services: { calc: { name: 'Calc', url: 'http://127.0.0.1:9/mcp', auth_required: false } } });
    const calc = base.mcp_services.calc!;
    const badHeader = { ...base, mcp_services: { calc: { ...calc, identity_headers: { ...calc.identity_headers!, id: 'cookie' } } } };
    await expect(createGateway(badHeader, { silent: true })).rejects.toThrow(
      "mcp_services.calc.identity_headers.id: 'cookie' cannot be an identity header name",
    );
    const { kid: _none, ...jwk } = ecJwk('x');
    await expect(createGateway({ ...base, keys: [jwk] }, { silent: true })).rejects.toThrow('keys[0] needs a kid');
    await expect(createGateway({ ...base, trust_proxy: ['nonsense'] }, { silent: true })).rejects.toThrow(/invalid IP address/);
  });
});

describe('check-config and start-up (the real binary) list every problem with file and line', () => {
  const broken = () => {
    const text = yaml(
      'host: 0.0.0.0',
      'port: 0',
      'session_secret: one-validation-pass-secret-0123456789abcdef',
      'storage: {type: memory}',
      'oauth_providers:',
      '  dev: {}',
      'keys:',
      `  - ${JSON.stringify({ ...ecJwk(), kid: undefined })}`,
      ...SERVICE,
      '    identity_headers: {email: "x user email"}',
    );
    const file = join(dir, `broken-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, text);
    return { file, text };
  };

  const expectAll = (stderr: string, file: string, text: string) => {
    expect(stderr).toContain('Invalid configuration (3 problems)');
    expect(stderr).toContain(
      `${file}:1 host: oauth_providers.dev (type: dev, the development sign-in) is only allowed on a loopback address`,
    );
    expect(stderr).toContain(`${file}:${lineOf(text, '  - {')} keys.0.kid: keys[0] needs a kid`);
    expect(stderr).toContain(
      `${file}:${lineOf(text, 'identity_headers')} mcp_services.calc.identity_headers.email: 'x user email' is not a valid HTTP header name`,
    );
    expect(stderr).not.toMatch(/\n\s+at /);
  };

  it('check-config exits 1 and names all of them', async () => {
    const { file, text } = broken();
    const run = await runCli(['check-config', file]);
    expect(run.code).toBe(1);
    expectAll(run.stderr, file, text);
    expect(run.stdout).not.toContain('OK');
  });

  it('check-config with NODE_ENV=production also names the development sign-in', async () => {
    const file = join(dir, 'dev-production.yaml');
    const text = yaml(...HEAD, 'oauth_providers:', '  dev: {}', ...SERVICE);
    writeFileSync(file, text);
    expect((await runCli(['check-config', file])).code).toBe(0);
    const run = await runCli(['check-config', file], { env: { NODE_ENV: 'production' } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `${file}:${lineOf(text, '  dev: {}')} oauth_providers.dev: oauth_providers.dev (type: dev, the development sign-in) is refused when NODE_ENV=production`,
    );
  });

  it('start-up (serve) refuses with the same list before opening a port', async () => {
    const { file, text } = broken();
    const port = await freePort();
    const run = await runCli(['--config', file, '--port', String(port)]);
    expect(run.code).toBe(1);
    expectAll(run.stderr, file, text);
    expect(run.stderr).not.toContain('listening on');
  });

  it('the demo (no configuration file) names the command line, not a file', async () => {
    const err: string[] = [];
    expect(await main(['--host', '0.0.0.0', '--port', '0'], { out: () => undefined, err: (s) => err.push(s) }, {})).toBe(1);
    expect(err.join('\n')).toMatch(
      /demo mode \(no configuration file\) host: .*but host is '0\.0\.0\.0'.*\(value from the command line option --host\)/,
    );
  });

  it('start-up names a --host that the development sign-in refuses as coming from the command line', async () => {
    const file = join(dir, 'dev-cli-host.yaml');
    writeFileSync(file, yaml(...HEAD, 'oauth_providers:', '  dev: {}', ...SERVICE));
    const run = await runCli(['--config', file, '--host', '0.0.0.0']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(
        `${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1 host: .*but host is '0\\.0\\.0\\.0'.*\\(value from the command line option --host\\)`,
      ),
    );
  });
});
