/**
 * Instructions per proxied request, counted by valgrind's callgrind: unlike req/s or CPU time, the count
 * does not depend on what else the machine runs, so two versions can be compared on a busy machine.
 * The server runs under valgrind (collection off), takes a warm-up, then collection is switched on for a
 * fixed number of requests; the main thread's total (the event loop: V8's compiler threads are left out,
 * they are still optimising at this speed) divided by the requests is the figure.
 * Usage: tsx bench/callgrind.ts [targets: bare,bare-id,gateway,old] [other source root]
 *   bare-id: the bare proxy doing the gateway's header work only (BARE_IDENTITY in bench/bare-proxy.ts).
 *   CG_WARMUP (3000), CG_REQUESTS (2000), CG_CONNECTIONS (8); BENCH_DIST=1 measures the compiled gateway.
 * Needs valgrind (`apt-get install valgrind`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const which = (process.argv[2] ?? 'bare,gateway').split(',');
const other = process.argv[3];
const WARMUP = Number(process.env.CG_WARMUP ?? 3000);
const REQUESTS = Number(process.env.CG_REQUESTS ?? 2000);
const CONNECTIONS = Number(process.env.CG_CONNECTIONS ?? 8);
const out = mkdtempSync(join(tmpdir(), 'callgrind-'));
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

function start(cmd: string, args: string[], env: Record<string, string> = {}): Promise<[ChildProcess, number, string]> {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } });
  children.push(c);
  return new Promise((resolve, reject) => {
    c.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
    c.stdout!.on('data', (d: Buffer) => {
      const m = /READY (\d+) ?(\S*)/.exec(d.toString());
      if (m) resolve([c, Number(m[1]), m[2] ?? '']);
    });
  });
}
const underValgrind = (name: string, script: string, args: string[], env: Record<string, string> = {}) =>
  start(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      '--separate-threads=yes',
      `--callgrind-out-file=${join(out, name)}.%p`,
      process.execPath,
      '--import',
      'tsx',
      join(ROOT, script),
      ...args,
    ],
    env,
  );
const load = (url: string, headers: Record<string, string>, amount: number) =>
  new Promise<{ total: number; non2xx: number }>((resolve) => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } });
    const c = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench/load.ts'), JSON.stringify({ url, headers, body, amount, connections: CONNECTIONS })],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let text = '';
    c.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    c.on('exit', () => resolve(JSON.parse(text.trim()) as { total: number; non2xx: number }));
  });
/** The main thread's instruction total of a finished run (`<file>-01`: callgrind numbers threads from 1). */
function mainThreadInstructions(name: string, pid: number): number {
  const file = readdirSync(out).find((f) => f === `${name}.${pid}-01`);
  if (!file) throw new Error(`no callgrind output for ${name} (${pid}) in ${out}`);
  const m = /^totals: (\d+)/m.exec(readFileSync(join(out, file), 'utf8'));
  return Number(m?.[1] ?? NaN);
}

const [, backendPort] = await start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/backend.ts')]);
const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
// The bare proxy gets a request of the same size as the gateways' (a Bearer token of their tokens' length,
// relayed as is; put a gateway first to take its length, else 700 characters).
let tokenLength = 700;
for (const name of which) {
  const [proc, port, token] =
    name === 'bare' || name === 'bare-id'
      ? await underValgrind(
          name,
          'bench/bare-proxy.ts',
          [`http://127.0.0.1:${backendPort}`],
          name === 'bare-id' ? { BARE_IDENTITY: '1' } : {},
        )
      : await underValgrind(name, 'bench/gateway-child.ts', [String(backendPort), ...(name === 'old' ? [other!] : [])]);
  if (token) tokenLength = token.length;
  const bare = name.startsWith('bare');
  const url = bare ? `http://127.0.0.1:${port}/mcp` : `http://127.0.0.1:${port}/bench/mcp`;
  const headers = { ...base, authorization: `Bearer ${bare ? 'x'.repeat(tokenLength) : token}` };
  const warm = await load(url, headers, WARMUP);
  execFileSync('callgrind_control', ['-i', 'on', String(proc.pid)], { stdio: 'ignore' });
  const run = await load(url, headers, REQUESTS);
  // A refused or failed request takes another path: such a run does not measure the proxy path.
  if (run.non2xx + warm.non2xx > 0)
    console.log(`${name}: ${run.non2xx + warm.non2xx} requests were not 2xx; the figure below is not comparable`);
  execFileSync('callgrind_control', ['-i', 'off', String(proc.pid)], { stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  await exited;
  const ir = mainThreadInstructions(name, proc.pid!);
  console.log(
    `${name.padEnd(8)} ${Math.round(ir / run.total)
      .toLocaleString('en')
      .padStart(9)} instructions/request (main thread; ${run.total} requests, non-2xx ${run.non2xx + warm.non2xx})`,
  );
}
process.exit(0);
