/**
 * A gateway with a local (stdio) service running test/stdio/fixtures/mcp-stdio-server.mjs, a real upstream
 * IdP (alice, bob, carol), and real MCP SDK clients that sign in by discovery: v1 (legacy era, sessions)
 * and v2 pinned to 2026-07-28 (stateless).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import type { GatewayOptions } from '../../src/http/app.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { BrowserDriver, obtainToken } from '../helpers/oauth-client.js';
import { connectByDiscovery, type DiscoveredSession } from '../helpers/sdk-session.js';
import { ALICE, BOB, gatewayProvider, type IdpUser, startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';

export const FIXTURE = fileURLToPath(new URL('./fixtures/mcp-stdio-server.mjs', import.meta.url));
export const FIXTURE_V1 = fileURLToPath(new URL('./fixtures/mcp-stdio-server-v1.mjs', import.meta.url));
export const CAROL: IdpUser = { sub: 'carol', email: 'carol@example.com', name: 'Carol', groups: [] };

export interface StdioWorld {
  gw: StartedGateway;
  idp: UpstreamIdp;
  /** A legacy-era SDK client (v1) signed in as `user` by discovery. */
  legacy(user?: IdpUser, service?: string): Promise<DiscoveredSession>;
  /** A token for `user` on `service`. */
  token(user?: IdpUser, service?: string): Promise<string>;
  /** A 2026-07-28 SDK client (v2, pinned) with a token for `user`. */
  modern(user?: IdpUser, service?: string): Promise<ModernClient>;
}

export async function startStdioWorld(
  service: Record<string, unknown> = {},
  extra: { services?: Record<string, Record<string, unknown>>; gateway?: Record<string, unknown>; options?: GatewayOptions } = {},
): Promise<StdioWorld> {
  const idp = await startUpstreamIdp([ALICE, BOB, CAROL]);
  const gw = await startGateway(
    () => ({
      oauth_providers: {
        corp: gatewayProvider(idp, ['openid', 'email', 'profile', 'groups']),
      },
      mcp_services: {
        files: { name: 'Files', command: [process.execPath, FIXTURE], oauth_provider: 'corp', scopes: ['mcp:tools'], ...service },
        ...extra.services,
      },
      ...extra.gateway,
    }),
    extra.options,
  );
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  const token = async (user: IdpUser = ALICE, svc = 'files') => {
    idp.nextUser = user;
    const { tokens } = await obtainToken(gw.url, svc, { browser: new BrowserDriver() });
    return tokens.access_token;
  };
  return {
    gw,
    idp,
    token,
    async legacy(user = ALICE, svc = 'files') {
      idp.nextUser = user;
      const s = await connectByDiscovery(`${gw.url}/${svc}/mcp`, { browser: new BrowserDriver() });
      onTestFinished(() => s.close().catch(() => undefined));
      return s;
    },
    async modern(user = ALICE, svc = 'files') {
      const access = await token(user, svc);
      const client = new ModernClient({ name: 'modern-client', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
      const transport = new ModernTransport(new URL(`${gw.url}/${svc}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${access}` } },
      });
      await client.connect(transport);
      onTestFinished(() => client.close().catch(() => undefined));
      return client;
    },
  };
}

export function textOf(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]?.text ?? '';
}

/**
 * Whether a process exists (signal 0 checks without signalling). A zombie (exited, waiting to be reaped
 * by its parent, or by a PID 1 that never reaps) runs nothing: /proc says so and it counts as gone.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function until<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `p`, or a rejection naming `what` after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
