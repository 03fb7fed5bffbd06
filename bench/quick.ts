/**
 * A quick interleaved comparison for optimisation work (not the benchmark of record: that is bench/run.ts).
 * Every server runs in its own process (bench/gateway-child.ts: source, memory storage, a token minted with
 * its own key), as do the backend and the load generator. Per round and target: req/s and the CPU time of
 * the measured server process per request (robust to other load on the machine).
 * Usage: tsx bench/quick.ts [rounds] [seconds] [targets: bare,gateway,refusal] [other source root]
 * With another source root (e.g. `git archive HEAD~1 | tar -x -C /tmp/base` and a node_modules symlink), the
 * targets `old` and `oldrefusal` measure that version interleaved with this one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 4);
const which = (process.argv[4] ?? 'bare,gateway').split(',');
/** QUICK_RATE=N: a fixed request rate, so every target batches alike and CPU per request compares fairly. */
const RATE = process.env.QUICK_RATE ? Number(process.env.QUICK_RATE) : undefined;
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill()));

function start(script: string, args: string[]): Promise<[ChildProcess, number, string]> {
  // QUICK_NODE_ARGS: extra node options for the measured servers (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
  const extra = script === 'bench/backend.ts' ? [] : (process.env.QUICK_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const c = spawn(process.execPath, [...extra, '--import', 'tsx', join(ROOT, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return new Promise((resolve) =>
    c.stdout!.on('data', (d: Buffer) => {
      const m = /READY (\d+) ?(\S*)/.exec(d.toString());
      if (m) resolve([c, Number(m[1]), m[2] ?? '']);
    }),
  );
}
const cpuOf = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

const [, port] = await start('bench/backend.ts', []);
const [bare, barePort] = await start('bench/bare-proxy.ts', [`http://127.0.0.1:${port}`]);
const [gw, gwPort, token] = await start('bench/gateway-child.ts', [String(port)]);
const other = process.argv[5];
const [old, oldPort, oldToken] = other ? await start('bench/gateway-child.ts', [String(port), other]) : [undefined, 0, ''];
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } });
const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
const targets: Record<string, { url: string; headers: Record<string, string>; cpu: () => number }> = {
  // The same request as the gateway's (its token included, relayed as is): the same bytes to parse.
  bare: { url: `http://127.0.0.1:${barePort}/mcp`, headers: { ...base, authorization: `Bearer ${token}` }, cpu: () => cpuOf(bare.pid!) },
  gateway: {
    url: `http://127.0.0.1:${gwPort}/bench/mcp`,
    headers: { ...base, authorization: `Bearer ${token}` },
    cpu: () => cpuOf(gw.pid!),
  },
  refusal: { url: `http://127.0.0.1:${gwPort}/bench/mcp`, headers: base, cpu: () => cpuOf(gw.pid!) },
  old: {
    url: `http://127.0.0.1:${oldPort}/bench/mcp`,
    headers: { ...base, authorization: `Bearer ${oldToken}` },
    cpu: () => cpuOf(old!.pid!),
  },
  oldrefusal: { url: `http://127.0.0.1:${oldPort}/bench/mcp`, headers: base, cpu: () => cpuOf(old!.pid!) },
};
const load = (url: string, headers: Record<string, string>, duration: number) =>
  new Promise<{ rps: number; total: number; non2xx: number }>((resolve) => {
    const c = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench/load.ts'), JSON.stringify({ url, headers, body, duration, connections: 32, rate: RATE })],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', () => resolve(JSON.parse(out.trim()) as { rps: number; total: number; non2xx: number }));
  });
for (const name of which) await load(targets[name]!.url, targets[name]!.headers, 2);
for (let r = 1; r <= rounds; r++) {
  for (const name of which) {
    const t = targets[name]!;
    const c0 = t.cpu();
    const res = await load(t.url, t.headers, seconds);
    const us = ((t.cpu() - c0) * 1e6) / res.total;
    const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    console.log(
      `round ${r} ${name.padEnd(8)} ${Math.round(res.rps).toString().padStart(6)} req/s  ${us.toFixed(1).padStart(6)} µs CPU/req  non-2xx ${res.non2xx}  load ${loadavg}`,
    );
  }
}
process.exit(0);
