/**
 * Holds N idle SSE streams open against a URL (its own process, so the gateway's memory is measured
 * alone). Usage: tsx bench/streams.ts '<json {url, n, headers}>'. Prints "OPEN <n> FAILED <n> CPU <µs>"
 * once every stream got its first event (CPU: microseconds this process used), then waits for SIGTERM.
 *
 * Each stream is one plain HTTP/1.1 GET on a socket of its own, written and read here without an HTTP
 * client library: the holder only needs the status line and the first event, and a client library's
 * per-request work would make this process, not the gateway, the slow part of opening 10,000 streams.
 * One descriptor per stream: 10,000 stay well within a 20,000 open-file limit.
 */
import { connect } from 'node:net';

const { url, n, headers } = JSON.parse(process.argv[2] ?? '{}') as { url: string; n: number; headers: Record<string, string> };
const target = new URL(url);
const head = Buffer.from(
  [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `host: ${target.host}`,
    'accept: text/event-stream',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n'),
);
/** Streams being opened at once. */
const CONCURRENCY = 500;
let open = 0;
let failed = 0;

/** Resolves once the stream answered 200 and its first event arrived; the socket then stays open, idle. */
function one(): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.hostname, port: Number(target.port) });
    let buf = '';
    let settled = false;
    const fail = () => {
      if (settled) return;
      settled = true;
      failed++;
      socket.destroy();
      resolve();
    };
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (!buf.includes('\r\n')) return;
      if (!/^HTTP\/1\.1 200 /.test(buf)) return fail();
      const body = buf.indexOf('\r\n\r\n');
      // The first SSE event ends with a blank line; the body may be chunked.
      if (body === -1 || buf.indexOf('\n\n', body + 4) === -1) return;
      settled = true;
      socket.off('data', onData);
      socket.off('error', fail);
      socket.on('error', () => undefined);
      // Idle from here: anything more is read and dropped.
      socket.resume();
      open++;
      resolve();
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', fail);
    socket.write(head);
  });
}

let next = 0;
async function lane(): Promise<void> {
  while (next < n) {
    next++;
    await one();
  }
}
await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, lane));
const cpu = process.cpuUsage();
process.stdout.write(`OPEN ${open} FAILED ${failed} CPU ${cpu.user + cpu.system}\n`);
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1 << 30);
