/**
 * A gateway in its own process for bench/quick.ts: the source tree given (default this one; another
 * checkout compares two versions interleaved), memory storage, a token minted with its own key.
 * Usage: tsx bench/gateway-child.ts <backend port> [source root]; prints "READY <port> <token>".
 * BENCH_DIST=1 runs the compiled gateway (`dist/`, as `npm start` does; `npm run build` first) instead of
 * the source through tsx, whose name-keeping wrappers cost something on every closure made per request.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const backendPort = Number(process.argv[2]);
const root = process.argv[3] ?? new URL('..', import.meta.url).pathname;
const load = (p: string) => import(pathToFileURL(join(root, p)).href);
const { createGateway } = (await load(
  process.env.BENCH_DIST ? 'dist/http/app.js' : 'src/http/app.ts',
)) as typeof import('../src/http/app.js');
const { testConfig } = (await load('test/helpers/config.ts')) as typeof import('../test/helpers/config.js');
const { mintToken } = (await load('test/helpers/tokens.ts')) as typeof import('../test/helpers/tokens.js');
const gw = await createGateway(
  testConfig({
    issuer: 'http://127.0.0.1:1',
    oauth_providers: { corp: { issuer: 'https://idp.example', client_id: 'x', client_secret: 'y' } },
    mcp_services: { bench: { name: 'Bench', url: `http://127.0.0.1:${backendPort}/mcp`, oauth_provider: 'corp', scopes: ['mcp:tools'] } },
    logging: { level: 'info' },
    limits: { max_concurrent_per_service: 20000 },
  }),
  { logStream: createWriteStream('/dev/null') },
);
const address = await gw.listen();
// An hour: a run under valgrind (bench/callgrind.ts) takes minutes, and an expired token would turn the end into 401s.
const token = await mintToken(gw, { service: 'bench', ttl: 3600 });
process.stdout.write(`READY ${new URL(address).port} ${token}\n`);
process.on('SIGTERM', () => void gw.close().then(() => process.exit(0)));
