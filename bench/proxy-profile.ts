/**
 * Profiles the proxy hot path alone: the gateway in this process (memory storage, a token minted with the
 * gateway's own key — profiling only, the benchmark proper uses the real flow), the backend and the load
 * generator in their own processes. The CPU profile covers only the load phase.
 * Usage: tsx bench/proxy-profile.ts [seconds] [connections]
 */
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { createGateway } from '../src/http/app.js';
import { testConfig } from '../test/helpers/config.js';
import { mintToken } from '../test/helpers/tokens.js';

const ROOT = new URL('..', import.meta.url).pathname;
const seconds = Number(process.argv[2] ?? 5);
const connections = Number(process.argv[3] ?? 32);

const backend = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/backend.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((resolve) =>
  backend.stdout!.on('data', (d: Buffer) => {
    const m = /READY (\d+)/.exec(d.toString());
    if (m) resolve(Number(m[1]));
  }),
);
const gw = await createGateway(
  testConfig({
    issuer: 'http://127.0.0.1:1',
    oauth_providers: { corp: { issuer: 'https://idp.example', client_id: 'x', client_secret: 'y' } },
    mcp_services: { bench: { name: 'Bench', url: `http://127.0.0.1:${port}/mcp`, oauth_provider: 'corp', scopes: ['mcp:tools'] } },
    logging: { level: process.env.LOG_LEVEL ?? 'info' },
  }),
  { logStream: process.env.LOG_LEVEL === 'silent' ? undefined : (await import('node:fs')).createWriteStream('/dev/null') },
);
const address = await gw.listen();
const token = await mintToken(gw, { service: 'bench' });
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } });
const load = (duration: number) =>
  new Promise<string>((resolve) => {
    const c = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'bench/load.ts'),
        JSON.stringify({
          url: `${address}/bench/mcp`,
          connections,
          duration,
          body,
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` },
        }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', () => resolve(out.trim()));
  });
console.log('warm-up', await load(2));
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.start');
console.log('load', await load(seconds));
const { profile } = await session.post('Profiler.stop');
mkdirSync(join(ROOT, 'bench/results/profiles'), { recursive: true });
const file = join(ROOT, 'bench/results/profiles/proxy.cpuprofile');
writeFileSync(file, JSON.stringify(profile));
console.log(`profile: ${file}`);
await gw.close();
backend.kill();
process.exit(0);
