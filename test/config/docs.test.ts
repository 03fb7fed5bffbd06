import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configMarkdown, configSchemaJson } from '../../src/config/docs.js';
import { loadConfigFile } from '../../src/config/load.js';

describe('generated configuration documentation', () => {
  it('docs/configuration.md is up to date with the schema (npm run docs:config)', () => {
    expect(readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')).toBe(configMarkdown());
  });

  it('config.schema.json is up to date with the schema (npm run docs:config)', () => {
    expect(readFileSync(new URL('../../config.schema.json', import.meta.url), 'utf8')).toBe(configSchemaJson());
  });

  it('every example configuration validates', () => {
    const dir = new URL('../../examples/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(2);
    const env = {
      MCP_SESSION_SECRET: 'example-secret-example-secret-example-secret',
      GOOGLE_CLIENT_ID: 'x',
      GOOGLE_CLIENT_SECRET: 'x',
      GITHUB_CLIENT_ID: 'x',
      GITHUB_CLIENT_SECRET: 'x',
      OKTA_CLIENT_ID: 'x',
      OKTA_CLIENT_SECRET: 'x',
      CI_BOT_SECRET: 'ci-bot-secret-0123456789abcdef',
      MCP_CLIENT_1_SECRET: 'mcp-client-1-secret-0123456789',
    };
    for (const f of files) expect(() => loadConfigFile(new URL(f, dir).pathname, { env }), f).not.toThrow();
  });
});
