/**
 * A gateway on a SQLite file in a scratch folder, with a real upstream IdP and one protected service, for
 * tests of what an operator does next to a running gateway (the CLI on the same file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { startGateway, type StartedGateway } from './gateway.js';
import { gatewayProvider, startUpstreamIdp, type UpstreamIdp } from './upstream-idp.js';

export interface SqliteWorld {
  dir: string;
  db: string;
  idp: UpstreamIdp;
  gw: StartedGateway;
}

export async function startSqliteWorld(prefix: string): Promise<SqliteWorld> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'gw.db');
  const idp = await startUpstreamIdp();
  const gw = await startGateway((issuer) => ({
    storage: { type: 'sqlite', sqlite: { path: db } },
    oauth_providers: {
      corp: gatewayProvider(idp, ['openid', 'email', 'profile']),
    },
    mcp_services: { calc: { name: 'Calculator', url: `${issuer}/none`, oauth_provider: 'corp', scopes: ['mcp:tools'] } },
  }));
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  return { dir, db, idp, gw };
}
