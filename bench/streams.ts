/**
 * Holds N idle SSE streams open against a URL (its own process, so the gateway's memory is measured
 * alone). Usage: tsx bench/streams.ts '<json {url, n, headers}>'. Prints "OPEN <n>" once every stream got
 * its first event, then waits for SIGTERM.
 */
import { Agent, request } from 'undici';

const { url, n, headers } = JSON.parse(process.argv[2] ?? '{}') as { url: string; n: number; headers: Record<string, string> };
const agent = new Agent({ connections: n + 10, pipelining: 0, headersTimeout: 120_000, bodyTimeout: 0, keepAliveTimeout: 600_000 });
let open = 0;
let failed = 0;
const bodies: NodeJS.ReadableStream[] = [];

async function one(): Promise<void> {
  try {
    const res = await request(url, { method: 'GET', headers: { accept: 'text/event-stream', ...headers }, dispatcher: agent });
    if (res.statusCode !== 200) {
      failed++;
      await res.body.dump();
      return;
    }
    bodies.push(res.body);
    await new Promise<void>((resolve) => res.body.once('data', () => resolve()));
    open++;
  } catch {
    failed++;
  }
}

const batch = 500;
for (let i = 0; i < n; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, n - i) }, one));
}
process.stdout.write(`OPEN ${open} FAILED ${failed}\n`);
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1 << 30);
