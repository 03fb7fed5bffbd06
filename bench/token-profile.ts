/**
 * Profiles the token endpoint (refresh grant) in-process: upstream IdP and gateway here, tokens through the
 * real flow, then 8 refresh chains for N seconds under the CPU profiler.
 * Usage: tsx bench/token-profile.ts [seconds]
 */
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { createGateway } from '../src/http/app.js';
import { testConfig } from '../test/helpers/config.js';
import { freePort } from '../test/helpers/gateway.js';
import { benchRefreshTokens, startBenchIdp } from './flow.js';

const ROOT = new URL('..', import.meta.url).pathname;
const seconds = Number(process.argv[2] ?? 5);
const idp = await startBenchIdp();
const port = await freePort();
const issuer = `http://127.0.0.1:${port}`;
idp.allowGateway(issuer);
const gw = await createGateway(
  testConfig({
    issuer,
    port,
    oauth_providers: { corp: { issuer: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret, allow_insecure_http: true } },
    mcp_services: { bench: { name: 'Bench', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'corp', scopes: ['mcp:tools'] } },
    rate_limits: { enabled: false },
    logging: { level: 'info' },
  }),
  { logStream: createWriteStream('/dev/null') },
);
await gw.listen();
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.start');
const r = await benchRefreshTokens(issuer, 'bench', 8, seconds);
const { profile } = await session.post('Profiler.stop');
console.log('refresh/s', r.perSecond.toFixed(0), 'errors', r.errors);
mkdirSync(join(ROOT, 'bench/results/profiles'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/profiles/token.cpuprofile'), JSON.stringify(profile));
await gw.close();
await idp.close();
process.exit(0);
