/**
 * The gateway the fuzzer talks to, built without vitest so that `npm run fuzz` (scripts/fuzz.ts) can use
 * it too: memory storage, rate limits off, a raw recording backend, the development provider, a `calc`
 * service (protected) and a `pub` service (public), a registered public client and a valid token.
 */
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createGateway, type Gateway } from '../../src/http/app.js';
import { testConfig } from '../helpers/config.js';
import { mintToken } from '../helpers/tokens.js';
import type { FuzzWorld } from './fuzz-properties.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningFuzzWorld extends FuzzWorld {
  gateway: Gateway;
  close(): Promise<void>;
}

export async function startFuzzWorld(): Promise<RunningFuzzWorld> {
  const received: Array<{ headers: IncomingMessage['headers']; rawHeaders: string[] }> = [];
  const backend = createHttpServer((req, res) => {
    received.push({ headers: req.headers, rawHeaders: req.rawHeaders });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":1,"result":{}}');
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const gateway = await createGateway(
    testConfig({
      issuer: url,
      port,
      oauth_providers: { dev: {} },
      mcp_services: {
        calc: { name: 'Calc', url: backendUrl, oauth_provider: 'dev', scopes: ['mcp:tools'] },
        pub: { name: 'Pub', url: backendUrl, auth_required: false },
      },
      rate_limits: { enabled: false },
      limits: { shutdown_grace: 1 },
    }),
    { silent: true },
  );
  await gateway.listen();
  const redirectUri = 'http://127.0.0.1:49152/callback';
  const reg = (await (
    await fetch(`${url}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [redirectUri] }),
    })
  ).json()) as { client_id: string };
  const token = await mintToken(gateway, { service: 'calc', claims: { scope: 'mcp:tools' } });
  return {
    url,
    clientId: reg.client_id,
    redirectUri,
    token,
    gateway,
    received: () => received,
    async close() {
      await gateway.close();
      backend.closeAllConnections();
      await new Promise<void>((r) => backend.close(() => r()));
    },
  };
}

/** After a fuzz run: the process is still healthy and a normal request still works. */
export async function assertHealthy(w: FuzzWorld): Promise<void> {
  const health = await fetch(`${w.url}/health`);
  if (health.status !== 200) throw new Error(`GET /health answered ${health.status}`);
  const normal = await fetch(`${w.url}/calc/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${w.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  if (normal.status !== 200) throw new Error(`a normal proxied request answered ${normal.status}`);
  await normal.text();
  const reg = await fetch(`${w.url}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [w.redirectUri] }),
  });
  if (reg.status !== 201) throw new Error(`a normal registration answered ${reg.status}`);
}
