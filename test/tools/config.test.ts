/**
 * Configuration of tool-level rules (src/config/rules.ts accessRuleProblems, compiled in
 * src/proxy/tool-policy.ts): every mistake reported with file, line and key; globs as documented; the
 * scopes the challenge and the protected resource metadata advertise.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compileGlob, globProblem } from '../../src/config/rules.js';
import { resolveServices } from '../../src/config/services.js';
import { ToolPolicy } from '../../src/proxy/tool-policy.js';
import { problems } from '../helpers/config.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { calcGateway } from './fixtures.js';

const SECRET = 'a-very-long-session-secret-for-tests-0123456789';
const head = `host: 127.0.0.1\nissuer: http://127.0.0.1:8080\nsession_secret: "${SECRET}"\noauth_providers:\n  dev: {}\nmcp_services:\n`;

describe('tools / prompts / resources configuration', () => {
  it('reports a bad glob, an unknown rule scope and an unknown required scope with their lines', () => {
    const p = problems(
      head +
        [
          '  calc:',
          '    name: Calc',
          '    url: http://127.0.0.1:1/mcp',
          '    oauth_provider: dev',
          '    scopes: [read, calculate]',
          '    required_scopes: [read, write]',
          '    tools:',
          '      rules:',
          '        "admin_[ab]": { deny: true }',
          '        add: { scopes: [calculate, admin] }',
          '  other:',
          '    name: Other',
          '    url: http://127.0.0.1:1/mcp',
          '    oauth_provider: dev',
          '    prompts:',
          '      default: maybe',
          '  pub:',
          '    name: Pub',
          '    url: http://127.0.0.1:1/mcp',
          '    auth_required: false',
          '    resources:',
          '      rules:',
          '        "notes://*": { groups: [staff] }',
          '',
        ].join('\n'),
    );
    const by = (path: string) => p.find((x) => x.path === path);
    expect(by('mcp_services.calc.tools.rules.admin_[ab]')).toMatchObject({ line: 15 });
    expect(by('mcp_services.calc.tools.rules.admin_[ab]')?.message).toContain("uses '['");
    expect(by('mcp_services.calc.tools.rules.add.scopes.1')).toMatchObject({ line: 16 });
    expect(by('mcp_services.calc.tools.rules.add.scopes.1')?.message).toContain(
      "needs scope 'admin', which is not listed in scopes of service 'calc'",
    );
    expect(by('mcp_services.calc.required_scopes')?.message).toContain("required scope 'write' is not listed");
    expect(by('mcp_services.other.prompts.default')).toMatchObject({ line: 22 });
    expect(by('mcp_services.pub.resources.rules.notes://*')?.message).toContain('auth_required: false');
  });

  it('globs: * any run (slashes too), ? one character, \\ escapes; classes, braces and ** are refused', () => {
    expect(compileGlob('admin_*').test('admin_reset')).toBe(true);
    expect(compileGlob('admin_*').test('xadmin_reset')).toBe(false);
    expect(compileGlob('notes://private/*').test('notes://private/a/b')).toBe(true);
    expect(compileGlob('v?').test('v1')).toBe(true);
    expect(compileGlob('v?').test('v12')).toBe(false);
    expect(compileGlob('a\\*b').test('a*b')).toBe(true);
    expect(compileGlob('a\\*b').test('axxb')).toBe(false);
    expect(compileGlob('a.b(c)').test('a.b(c)')).toBe(true);
    expect(compileGlob('a.b').test('axb')).toBe(false);
    expect(globProblem('{read,write}')).toContain("uses '{'");
    expect(globProblem('a**')).toContain("repeats '*'");
    expect(globProblem('tail\\')).toContain('escapes nothing');
    expect(globProblem('')).toContain('empty');
  });

  it('a literal name wins over globs; otherwise the first glob in file order decides', () => {
    const cfg = loadConfigText(
      head +
        '  calc:\n    name: C\n    url: http://127.0.0.1:1/mcp\n    oauth_provider: dev\n    tools:\n      default: deny\n      rules:\n' +
        '        "admin_*": { deny: true }\n        "admin_s*": {}\n        admin_stats: {}\n',
      'cfg.yaml',
      { env: {} },
    );
    const policy = ToolPolicy.compile(cfg.mcp_services.calc!)!;
    const user = { id: 'dev:a', scopes: [] };
    expect(policy.decide('tool', 'admin_stats', user)).toEqual({ decision: 'allow', rule: 'admin_stats' });
    expect(policy.decide('tool', 'admin_sx', user)).toMatchObject({ decision: 'deny', rule: 'admin_*' });
    expect(policy.decide('tool', 'other', user)).toMatchObject({ decision: 'deny', rule: '(default)' });
    expect(policy.governs('prompt')).toBe(false);
    expect(ToolPolicy.compile({ ...cfg.mcp_services.calc!, tools: undefined })).toBeUndefined();
  });

  it('required_scopes defaults to the scopes no rule asks for; the 401 challenge and the PRM advertise them', async () => {
    const cfg = loadConfigText(
      head +
        '  calc:\n    name: C\n    url: http://127.0.0.1:1/mcp\n    oauth_provider: dev\n    scopes: [read, calculate, admin]\n' +
        '    tools:\n      rules:\n        add: { scopes: [calculate] }\n        "admin_*": { scopes: [admin] }\n' +
        '  plain:\n    name: P\n    url: http://127.0.0.1:1/mcp\n    oauth_provider: dev\n    scopes: [read, write]\n',
      'cfg.yaml',
      { env: {} },
    );
    const services = resolveServices(cfg);
    expect(services.get('calc')?.requiredScopes).toEqual(['read']);
    expect(services.get('plain')?.requiredScopes).toEqual(['read', 'write']); // unchanged without rules

    const backend = await startEchoBackend();
    const gw = await calcGateway(backend.url);
    const challenge = (await fetch(`${gw.url}/calc/mcp`, { method: 'POST' })).headers.get('www-authenticate');
    expect(challenge).toContain('scope="read"');
    const prm = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/calc/mcp`)).json()) as { scopes_supported: string[] };
    expect(prm.scopes_supported).toEqual(['read']);
  });
});
