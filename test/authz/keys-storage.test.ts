import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, onTestFinished, test } from 'vitest';
import { rotateSigningKey } from '../../src/kernel/key-rotation.js';
import { createGateway } from '../../src/http/app.js';
import { testConfig } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { startUpstreamIdp } from '../helpers/upstream-idp.js';
import { startWorld } from './setup.js';

async function jwks(url: string) {
  return (await (await fetch(`${url}/oauth/jwks`)).json()) as { keys: Array<{ kid: string }> };
}

describe('signing keys and persistence', () => {
  test('rotation: new key published at once, signs after the grace period, old tokens still verify', async () => {
    const { gw } = await startWorld();
    const { tokens: before } = await obtainToken(gw.url, 'calc');
    const oldKid = decodeProtectedHeader(before.access_token).kid;
    const pending = await rotateSigningKey(gw.ctx, { graceSeconds: 3600 });
    expect((await jwks(gw.url)).keys.map((k) => k.kid)).toContain(pending.kid);
    const { tokens: during } = await obtainToken(gw.url, 'calc');
    expect(decodeProtectedHeader(during.access_token).kid).toBe(oldKid);
    const active = await rotateSigningKey(gw.ctx, { graceSeconds: 0 });
    const { tokens: after } = await obtainToken(gw.url, 'calc');
    expect(decodeProtectedHeader(after.access_token).kid).toBe(active.kid);
    const set = createLocalJWKSet((await jwks(gw.url)) as never);
    for (const t of [before, after]) await expect(jwtVerify(t.access_token, set, { audience: `${gw.url}/calc/mcp` })).resolves.toBeTruthy();
  });

  test('restart on the same SQLite file keeps clients, keys and grants: refresh still works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-authz-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const idp = await startUpstreamIdp();
    const raw = () => ({
      storage: { type: 'sqlite', sqlite: { path: join(dir, 'gw.db') } },
      oauth_providers: { myidp: { issuer: idp.issuer, client_id: 'gateway', client_secret: 'gateway-secret', allow_insecure_http: true } },
      mcp_services: { calc: { name: 'Calc', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'myidp', scopes: ['mcp:tools'] } },
    });
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const boot = async () => {
      const gw = await createGateway(testConfig({ ...raw(), issuer, port }), { silent: true });
      await gw.listen();
      return Object.assign(gw, { url: issuer });
    };
    const first = await boot();
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${first.url}/oauth/callback`] });
    const { tokens, provider } = await obtainToken(first.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const kid = (await jwks(first.url)).keys[0]!.kid;
    await first.close();
    const second = await boot();
    // The client's pooled keep-alive socket to the first process is dead: the first request may fail.
    await fetch(`${second.url}/oauth/jwks`).catch(() => undefined);
    onTestFinished(() => second.close());
    expect((await jwks(second.url)).keys[0]!.kid).toBe(kid);
    const res = await fetch(`${second.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId }),
    });
    expect(res.status).toBe(200);
  });
});
