/**
 * A local (stdio) service with `upstream_auth` (docs/stdio.md, docs/upstream-auth.md): the per-user process
 * is started with the user's upstream token in MCP_UPSTREAM_TOKEN, obtained exactly as for an HTTP
 * backend (the sign-in's token, refreshed or exchanged), never the client's gateway token; check-config
 * refuses the combinations that cannot work.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { textOf } from '../helpers/sdk-session.js';
import { testConfig } from '../helpers/config.js';
import { connect, startWorld } from '../upstream-auth/world.js';
import { FIXTURE } from './world.js';

const LOCAL = {
  name: 'Local files',
  command: [process.execPath, FIXTURE],
  oauth_provider: 'corp',
  scopes: ['mcp:tools'],
  upstream_auth: { mode: 'passthrough' },
};

describe('stdio services with upstream_auth', () => {
  it('the per-user process gets the upstream token of its user in MCP_UPSTREAM_TOKEN, not the gateway token', async () => {
    const { idp, gw } = await startWorld({ services: { local: LOCAL } });
    const session = await connect(gw.url, 'local');
    onTestFinished(() => session.close());
    const who = JSON.parse(textOf(await session.client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
    const signIn = idp.grants.find((g) => g.grant_type === 'authorization_code')!;
    expect(who.id).toBe('corp:alice');
    expect(who.upstreamToken).toBe(signIn.access_token);
    expect(who.upstreamToken).not.toBe(session.provider.tokens()!.access_token);
    expect(who.envNames).toContain('MCP_UPSTREAM_TOKEN');
  });

  it('check-config refuses upstream_auth on a shared process, mode oauth on a command, and MCP_UPSTREAM_TOKEN in env', () => {
    const problems = (service: Record<string, unknown>) => {
      try {
        testConfig({
          oauth_providers: {
            corp: { issuer: 'https://idp.example.com', client_id: 'gw', client_secret: 'gw-secret' },
          },
          upstream_tokens: { secret: 'a-dedicated-upstream-secret-of-32-characters-or-more' },
          mcp_services: { local: { ...LOCAL, ...service } },
        });
        return '';
      } catch (err) {
        return String((err as Error).message);
      }
    };
    expect(problems({ per_user: false })).toMatch(/upstream_auth needs per_user: true/);
    expect(problems({ upstream_auth: { mode: 'oauth' } })).toMatch(/mode: oauth is for a remote MCP server/);
    expect(problems({ env: { MCP_UPSTREAM_TOKEN: 'x' } })).toMatch(/MCP_UPSTREAM_TOKEN is set by the gateway/);
  });
});
