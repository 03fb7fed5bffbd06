/**
 * Summarises a .cpuprofile: self time per function (top N). Usage: tsx bench/profile-summary.ts FILE [N]
 * INCLUSIVE=1: inclusive time too; LAYERS=1: self time by layer (see the end). FROM_US / TO_US: only
 * samples inside that window (CLOCK_MONOTONIC µs, as `process.hrtime` and V8 both count;
 * bench/oauth-cpu.ts prints the window of its measured rounds).
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
const prof = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
};
const from = Number(process.env.FROM_US ?? -Infinity);
const to = Number(process.env.TO_US ?? Infinity);
const self = new Map<number, number>();
let at = prof.startTime;
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  at += dt;
  if (at >= from && at <= to) self.set(id, (self.get(id) ?? 0) + dt);
});
const byFn = new Map<string, number>();
let total = 0;
for (const n of prof.nodes) {
  const t = self.get(n.id) ?? 0;
  total += t;
  const url = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/');
  const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
}
const byPkg = new Map<string, number>();
for (const [k, v] of byFn) {
  const m = / ((?:@[^/]+\/)?[^/:]+)/.exec(k);
  const pkg = k.includes(' src/') ? 'gateway src' : k.includes('node:') || k.includes(' :') ? 'node internals/native' : (m?.[1] ?? 'other');
  byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + v);
}
const top = [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 40));
for (const [k, v] of top) console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
console.log('\nby package:');
for (const [k, v] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);

// Inclusive ("total") time per function, top N, when INCLUSIVE=1.
if (process.env.INCLUSIVE) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const incl = new Map<number, number>();
  const walk = (id: number): number => {
    const n = byId.get(id)!;
    let t = self.get(id) ?? 0;
    for (const c of n.children ?? []) t += walk(c);
    incl.set(id, t);
    return t;
  };
  walk(prof.nodes[0]!.id);
  const agg = new Map<string, number>();
  for (const n of prof.nodes) {
    const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/')}:${n.callFrame.lineNumber}`;
    agg.set(key, Math.max(agg.get(key) ?? 0, 0) + (incl.get(n.id) ?? 0));
  }
  console.log('\ninclusive:');
  for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 60))
    console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
}

/**
 * LAYERS=1: self time by layer. Node internals and native frames (JSON.parse, writev, fs writes) count for
 * the nearest caller that belongs to a layer (a socket write is node http, a log write is logging, a
 * JSON.parse in the store is the gateway); idle and GC are their own rows.
 */
if (process.env.LAYERS) {
  const LAYERS: Array<[string, RegExp]> = [
    ['gateway (src/, dist/)', /^file:\/\/.*\/(src|dist)\//],
    ['oidc-provider', /node_modules\/oidc-provider\//],
    [
      'koa (inside oidc-provider)',
      /node_modules\/(koa|koa-compose|@koa\/[^/]+|delegates|http-errors|statuses|on-finished|type-is|mime-types|mime-db|content-type|accepts|negotiator|ee-first|cookies|keygrip|depd|vary|destroy|fresh|encodeurl|escape-html|only|cache-content-type|http-assert|media-typer|content-disposition|raw-body|iconv-lite)\//,
    ],
    ['crypto (jose, node:crypto)', /node_modules\/jose\/|^node:internal\/crypto\//],
    [
      'logging (pino, redaction, writes)',
      /node_modules\/(pino[^/]*|@pinojs\/[^/]+|sonic-boom|fast-redact|quick-format-unescaped|safe-stable-stringify|on-exit-leak-free|atomic-sleep|thread-stream)\//,
    ],
    [
      'fastify (routing, hooks, reply)',
      /node_modules\/(fastify|find-my-way|avvio|@fastify\/[^/]+|fast-json-stringify|secure-json-parse|toad-cache|rfdc|fast-querystring|abstract-logging|process-warning|light-my-request)\//,
    ],
    ['storage (better-sqlite3)', /node_modules\/better-sqlite3\//],
    ['metrics (prom-client)', /node_modules\/(prom-client|tdigest|bintrees)\//],
    [
      'node http (parser, sockets, streams)',
      /^node:(_http_|net$|internal\/http|internal\/streams|stream|internal\/stream_base_commons|internal\/js_stream_socket)/,
    ],
  ];
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const layerOf = new Map<number, string>();
  const assign = (id: number, inherited: string): void => {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    const special = name === '(garbage collector)' ? 'GC' : name === '(idle)' ? 'idle' : name === '(program)' ? 'V8 (program)' : undefined;
    const own = special ?? LAYERS.find(([, rx]) => rx.test(n.callFrame.url))?.[0];
    const layer = own ?? inherited;
    layerOf.set(id, layer);
    for (const c of n.children ?? []) assign(c, layer);
  };
  assign(prof.nodes[0]!.id, 'node (other: promises, timers, modules)');
  const byLayer = new Map<string, number>();
  for (const [id, t] of self) byLayer.set(layerOf.get(id)!, (byLayer.get(layerOf.get(id)!) ?? 0) + t);
  const busy = total - (byLayer.get('idle') ?? 0);
  console.log('\nby layer (share of busy time, idle excluded):');
  for (const [k, v] of [...byLayer].sort((a, b) => b[1] - a[1]))
    if (k !== 'idle') console.log(`${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}`);
}
