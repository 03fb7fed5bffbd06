/**
 * The configuration of local (stdio) services: `url` and `command` are mutually exclusive, and the
 * `command` rules are reported by the one validation pass (check-config and start-up) with key and line.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { resolveServices } from '../../src/config/services.js';
import { problems } from '../helpers/config.js';

const HEAD = `host: 127.0.0.1
issuer: http://127.0.0.1:8080
session_secret: stdio-config-test-secret-0123456789abcdef
oauth_providers:
  dev: {}
mcp_services:
  files:
    name: Files
    oauth_provider: dev
`;

describe('stdio service configuration', () => {
  it('a command service loads with its defaults and resolves to a stdio spec', () => {
    const cfg = loadConfigText(
      `${HEAD}    command: ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/shared"]\n    env: { LOG_LEVEL: info }\n    cwd: /srv\n`,
      'cfg.yaml',
      { env: {} },
    );
    const files = cfg.mcp_services.files!;
    expect(files).toMatchObject({ per_user: true, idle_timeout: 600, max_processes: 50 });
    expect(resolveServices(cfg).get('files')!.stdio).toEqual({
      command: ['npx', '-y', '@modelcontextprotocol/server-filesystem', '/srv/shared'],
      env: { LOG_LEVEL: 'info' },
      cwd: '/srv',
      perUser: true,
      idleTimeoutMs: 600_000,
      maxProcesses: 50,
    });
  });

  it.each([
    [
      'url and command',
      '    url: http://127.0.0.1:3001/mcp\n    command: ["server"]\n',
      'mcp_services.files.command',
      11,
      /mutually exclusive/,
    ],
    ['neither', '    scopes: []\n', 'mcp_services.files', 7, /needs either url .* or command/],
    [
      'a shell string',
      '    command: ["npx -y @modelcontextprotocol/server-filesystem /srv"]\n',
      'mcp_services.files.command.0',
      10,
      /argv list, never run by a shell: write \["npx","-y"/,
    ],
    ['an empty command', '    command: []\n', 'mcp_services.files.command', 10, /at least the program/],
    [
      'an identity variable in env',
      '    command: ["server"]\n    env: { MCP_USER_ID: root }\n',
      'mcp_services.files.env.MCP_USER_ID',
      11,
      /set by the gateway from the verified sign-in/,
    ],
    [
      'an invalid variable name',
      '    command: ["server"]\n    env: { "A-B": x }\n',
      'mcp_services.files.env.A-B',
      11,
      /not a valid environment variable name/,
    ],
    [
      'env on a url service',
      '    url: http://127.0.0.1:3001/mcp\n    env: { A: b }\n',
      'mcp_services.files.env',
      11,
      /applies only to a command service/,
    ],
    ['a relative cwd', '    command: ["server"]\n    cwd: srv\n', 'mcp_services.files.cwd', 11, /absolute path/],
    [
      'per_user on a public service',
      '    command: ["server"]\n    auth_required: false\n',
      'mcp_services.files.per_user',
      undefined,
      /per_user: true needs auth_required: true/,
    ],
  ])('%s is reported at its key and line', (_what, body, path, line, message) => {
    const found = problems(`${HEAD}${body}`).find((p) => p.path === path);
    expect(found, JSON.stringify(problems(`${HEAD}${body}`))).toBeDefined();
    expect(found!.message).toMatch(message);
    if (line !== undefined) expect(found!.line).toBe(line);
  });

  it('per_user: false makes a public shared process valid', () => {
    const cfg = loadConfigText(`${HEAD}    command: ["server"]\n    auth_required: false\n    per_user: false\n`, 'cfg.yaml', { env: {} });
    expect(resolveServices(cfg).get('files')!.stdio!.perUser).toBe(false);
  });
});
