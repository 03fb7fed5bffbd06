/**
 * Stored upstream tokens go with the user's access (docs/upstream-auth.md, data model): an RFC 7009
 * revocation of the client's refresh token, the operator's `revoke --user` and `clients delete` delete
 * them; `connections list` shows a connection without any token and `connections revoke` deletes one.
 * On SQLite, with the real command line code (`main`) on the file the gateway uses.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/main.js';
import { TEST_SECRET } from '../helpers/config.js';
import { pollUntil } from '../multi-instance/helpers.js';
import { connect, startWorld, upstreamWhoami } from './world.js';

async function sqliteWorld() {
  const dir = mkdtempSync(join(tmpdir(), 'gw-upstream-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'gw.db');
  const world = await startWorld({ storage: { type: 'sqlite', sqlite: { path: db } } });
  const cfg = join(dir, 'gateway.yaml');
  writeFileSync(cfg, `session_secret: ${TEST_SECRET}\nissuer: ${world.gw.url}\nstorage:\n  type: sqlite\n  sqlite: {path: ${db}}\n`);
  const cli = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['--config', cfg, ...args], { out: (s) => out.push(s), err: (s) => err.push(s) }, {});
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  return { ...world, cli };
}

describe('upstream tokens are deleted with the access they came with', () => {
  it('connections list shows the connection (no token); connections revoke deletes it and the user is asked to connect', async () => {
    const { gw, idp, cli } = await sqliteWorld();
    const session = await connect(gw.url, 'reports');
    onTestFinished(() => session.close());
    expect((await upstreamWhoami(session)).api.kind).toBe('exchanged');
    const listed = await cli('connections', 'list', '--user', 'corp:alice', '--json');
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.out) as Record<string, string>[];
    expect(rows).toEqual([
      expect.objectContaining({ user: 'corp:alice', kind: 'provider', name: 'corp', refresh_token: 'yes' }),
      expect.objectContaining({ user: 'corp:alice', kind: 'service', name: 'reports', refresh_token: 'no' }),
    ]);
    for (const g of idp.grants) {
      expect(listed.out).not.toContain(g.access_token);
      if (g.refresh_token) expect(listed.out).not.toContain(g.refresh_token);
    }
    expect((await cli('connections', 'revoke', '--user', 'corp:alice', '--provider', 'corp')).code).toBe(0);
    expect((await cli('connections', 'revoke', '--user', 'corp:alice', '--service', 'reports')).code).toBe(0);
    expect((await cli('connections', 'list', '--user', 'corp:alice')).out).toBe('(none)');
    const gone = await cli('connections', 'revoke', '--user', 'corp:alice');
    expect(gone.code).toBe(1);
    expect(gone.err).toContain("no connection of 'corp:alice'");
    // The running gateway reuses a record it read for at most 2 s (docs/upstream-auth.md, limits).
    let err: (Error & { code?: number }) | undefined;
    await pollUntil(async () => {
      err = await upstreamWhoami(session).then(
        () => undefined,
        (e: Error & { code?: number }) => e,
      );
      return err !== undefined;
    }, 5000);
    expect(err?.code).toBe(403);
  });

  it('RFC 7009: the client revoking its refresh token deletes the upstream tokens', async () => {
    const { gw } = await sqliteWorld();
    const session = await connect(gw.url, 'files');
    await session.close();
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')).toBeDefined();
    const res = await fetch(`${gw.url}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: session.provider.tokens()!.refresh_token!,
        token_type_hint: 'refresh_token',
        client_id: session.provider.clientInformation()!.client_id,
      }),
    });
    expect(res.status).toBe(200);
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')).toBeUndefined();
  });

  it("revoke --user and clients delete delete the user's upstream tokens", async () => {
    const { gw, cli } = await sqliteWorld();
    const first = await connect(gw.url, 'files');
    await first.close();
    expect((await cli('revoke', '--user', 'corp:alice')).code).toBe(0);
    const gone = async () => (await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')) === undefined;
    // In storage at once; the running gateway drops its recent read when its revocation poll sees the marker.
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice', true)).toBeUndefined();
    await pollUntil(gone, 5000);

    const second = await connect(gw.url, 'files');
    await second.close();
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice')).toBeDefined();
    expect((await cli('clients', 'delete', '--', second.provider.clientInformation()!.client_id)).code).toBe(0);
    expect(await gw.ctx.credentials!.tokens.get('sign_in', 'corp', 'corp:alice', true)).toBeUndefined();
    await pollUntil(gone, 5000);
  });
});
