/**
 * Operator commands against the configured storage (issue #6): after a real sign-in through a gateway on
 * a SQLite file, the CLI (run in-process on the same file, as an operator would next to a running
 * gateway) lists and shows clients, lists grants, revokes, deletes and rotates keys; the running gateway
 * sees each change.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { startSqliteWorld } from '../helpers/sqlite-world.js';
import { TEST_SECRET } from '../helpers/config.js';
import { captureOutput } from '../helpers/capture.js';

async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('operator commands', () => {
  it('clients, grants, revoke and keys rotate work on the storage of a running gateway', async () => {
    const { dir, db, gw } = await startSqliteWorld('gw-admin-');
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const gid = String(decodeJwt(tokens.access_token).gid);

    const cfg = join(dir, 'gateway.yaml');
    writeFileSync(cfg, `session_secret: ${TEST_SECRET}\nissuer: ${gw.url}\nstorage:\n  type: sqlite\n  sqlite: {path: ${db}}\n`);

    const list = captureOutput();
    expect(await main(['clients', 'list', '--config', cfg, '--json'], list.output, {})).toBe(0);
    expect((JSON.parse(list.text()) as { client_id: string }[]).map((c) => c.client_id)).toContain(clientId);

    const show = captureOutput();
    expect(await main(['clients', 'show', '--config', cfg, '--', clientId], show.output, {})).toBe(0);
    expect(JSON.parse(show.text())).toMatchObject({ client_id: clientId, token_endpoint_auth_method: 'none' });
    const missing = captureOutput();
    expect(await main(['clients', 'show', 'nope', '--config', cfg], missing.output, {})).toBe(1);

    const grants = captureOutput();
    expect(await main(['grants', 'list', '--user', 'corp:alice', '--config', cfg, '--json'], grants.output, {})).toBe(0);
    const rows = JSON.parse(grants.text()) as { grant_id: string; user: string; client_id: string; services: string }[];
    expect(rows).toContainEqual(expect.objectContaining({ grant_id: gid, user: 'corp:alice', client_id: clientId }));
    const none = captureOutput();
    await main(['grants', 'list', '--user', 'corp:nobody', '--config', cfg], none.output, {});
    expect(none.text()).toBe('(none)');

    // Revoking the user's grants: the running gateway learns it from storage and refuses the refresh token.
    const usage = captureOutput();
    expect(await main(['revoke', '--config', cfg], usage.output, {})).toBe(2);
    const revoke = captureOutput();
    expect(await main(['revoke', '--user', 'corp:alice', '--config', cfg], revoke.output, {})).toBe(0);
    expect(revoke.text()).toContain('revoked 1 grant');
    await waitFor(() => gw.ctx.revocations.isRevoked(gid));
    const refresh = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId }),
    });
    expect(refresh.status).toBe(400);
    expect(await refresh.json()).toMatchObject({ error: 'invalid_grant' });

    // Deleting the client: the token endpoint answers invalid_client (clients then register again).
    const del = captureOutput();
    expect(await main(['clients', 'delete', '--config', cfg, '--', clientId], del.output, {})).toBe(0);
    const after = captureOutput();
    await main(['clients', 'list', '--config', cfg, '--json'], after.output, {});
    expect((JSON.parse(after.text()) as { client_id: string }[]).map((c) => c.client_id)).not.toContain(clientId);

    // Key rotation: the new key is published at once by the running gateway (it re-reads keys).
    const before = (await (await fetch(`${gw.url}/oauth/jwks`)).json()) as { keys: { kid: string }[] };
    const rotate = captureOutput();
    expect(await main(['keys', 'rotate', '--config', cfg], rotate.output, {})).toBe(0);
    const kid = /new signing key (\S+)/.exec(rotate.text())?.[1];
    expect(kid).toBeTruthy();
    expect(before.keys.map((k) => k.kid)).not.toContain(kid);
    await gw.ctx.keys.reload();
    expect(gw.ctx.keys.publicJwks().keys.map((k) => k.kid)).toContain(kid);
  });
});
