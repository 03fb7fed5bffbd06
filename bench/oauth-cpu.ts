/**
 * Gateway CPU time per OAuth request (issue 17 item 6): refresh grants and RFC 7591 registrations,
 * robust on a shared machine because it counts the gateway process's own CPU time (/proc/<pid>/stat,
 * user + system) over each run, not wall-clock throughput alone.
 *
 * Processes: the gateway as users run it (compiled dist/ through bin/, one process, rate limits on with
 * limits the run cannot reach, logging at info to a pipe this process drains), the upstream test IdP in
 * this process (idle while measuring), refresh chains driven from this process with undici (each chain
 * rotating its own token, as bench/run.ts does), registrations from autocannon in its own process
 * (bench/load.ts). A warm-up run precedes the measured rounds.
 *
 * Usage: tsx bench/oauth-cpu.ts [memory|sqlite ...] [--root DIR ...]
 *   --root DIR: measure another checkout's dist/ too (built there first), interleaved round by round, so a
 *   before/after comparison shares the machine's load. BENCH_ROUNDS (6), BENCH_DURATION (3 s),
 *   BENCH_ONLY=refresh|registration, BENCH_PROFILE=1 writes a CPU profile of each gateway to bench/results/profiles/ on exit.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../test/helpers/gateway.js';
import { benchToken, refreshChains, registrationLoad, startBenchIdp, UNREACHABLE_RATE_LIMITS } from './flow.js';
import { processCpuSeconds as cpuSeconds } from './idle-streams.js';
import { waitFor } from './processes.js';

const ROOT = new URL('..', import.meta.url).pathname;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const DURATION = Number(process.env.BENCH_DURATION ?? 3);
const CHAINS = 8;
/** BENCH_ONLY=refresh|registration: measure (and profile) one of the two. */
const ONLY = process.env.BENCH_ONLY;

const args = process.argv.slice(2);
const roots = [ROOT];
const storages: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--root') roots.push(resolve(args[++i]!));
  else storages.push(args[i]!);
}
if (storages.length === 0) storages.push('memory', 'sqlite');

const tmp = mkdtempSync(join(tmpdir(), 'gw-oauth-cpu-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

interface Gw {
  root: string;
  storage: string;
  issuer: string;
  pid: number;
  child: ChildProcess;
}

async function startGateway(root: string, storage: string, idp: Awaited<ReturnType<typeof startBenchIdp>>, n: number): Promise<Gw> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  idp.allowGateway(issuer);
  const file = join(tmp, `gw${n}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      host: '127.0.0.1',
      port,
      issuer,
      session_secret: 'bench-session-secret-bench-session-secret-0123',
      oauth_providers: {
        corp: { issuer: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret, allow_insecure_http: true },
      },
      mcp_services: { bench: { name: 'Bench', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'corp', scopes: ['mcp:tools'] } },
      storage: storage === 'sqlite' ? { type: 'sqlite', sqlite: { path: join(tmp, `gw${n}.db`) } } : { type: 'memory' },
      rate_limits: UNREACHABLE_RATE_LIMITS,
    }),
  );
  const profile = process.env.BENCH_PROFILE
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${join(ROOT, 'bench/results/profiles')}`,
        `--cpu-prof-name=oauth-${n}-${storage}-${ONLY ?? 'both'}.cpuprofile`,
      ]
    : [];
  const child = spawn(process.execPath, [...profile, join(root, 'bin/mcp-oauth-gateway.js'), '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  await waitFor(child, /listening on/, 60_000);
  return { root, storage, issuer, pid: child.pid!, child };
}

function registrations(issuer: string, duration: number): Promise<{ total: number; non2xx: number }> {
  const opts = registrationLoad(issuer, duration);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/load.ts'), JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return waitFor(child, /(\{.*\})\n/, (duration + 60) * 1000).then((m) => JSON.parse(m[1]!) as { total: number; non2xx: number });
}

interface Sample {
  us: number;
  rps: number;
  errors: number;
}

/** Gateway CPU µs per request and requests per second of one run. */
async function measure(pid: number, run: () => Promise<{ count: number; errors: number }>): Promise<Sample> {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  const { count, errors } = await run();
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - c0;
  return { us: (cpu * 1e6) / count, rps: count / wall, errors };
}

const f = (x: number) => x.toFixed(0).padStart(5);
const loadAvg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  for (const root of roots)
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], {
      stdio: 'inherit',
    });
  const idp = await startBenchIdp();
  const load0 = loadAvg();
  const results: string[] = [];
  let n = 0;
  for (const storage of storages) {
    const gws: Gw[] = [];
    for (const root of roots) gws.push(await startGateway(root, storage, idp, n++));
    const chains = new Map<Gw, Awaited<ReturnType<typeof benchToken>>[]>();
    for (const gw of gws) {
      const starts = [];
      for (let i = 0; i < CHAINS; i++) starts.push(await benchToken(gw.issuer, 'bench'));
      chains.set(gw, starts);
    }
    const refresh = new Map<Gw, Sample[]>(gws.map((g) => [g, []]));
    const register = new Map<Gw, Sample[]>(gws.map((g) => [g, []]));
    const usNow = () => Number(process.hrtime.bigint() / 1000n);
    let windowFrom = 0;
    for (let round = 0; round <= ROUNDS; round++) {
      if (round === 1) windowFrom = usNow();
      // Round 0 warms the JIT and the stores; it is not counted.
      const seconds = round === 0 ? 2 : DURATION;
      for (const gw of gws) {
        const r = await measure(gw.pid, async () => {
          if (ONLY === 'registration') return { count: 1, errors: 0 };
          const out = await refreshChains(gw.issuer, chains.get(gw)!, seconds);
          return { count: out.done, errors: out.errors };
        });
        const g = await measure(gw.pid, async () => {
          if (ONLY === 'refresh') return { count: 1, errors: 0 };
          const out = await registrations(gw.issuer, seconds);
          return { count: out.total, errors: out.non2xx };
        });
        if (r.errors || g.errors) throw new Error(`errors in the run: refresh ${r.errors}, registration ${g.errors}`);
        if (round > 0) {
          refresh.get(gw)!.push(r);
          register.get(gw)!.push(g);
        }
      }
    }
    if (process.env.BENCH_PROFILE) console.log(`${storage}: profile window FROM_US=${windowFrom} TO_US=${usNow()}`);
    for (const gw of gws) {
      const row = (name: string, xs: Sample[]) => {
        const us = xs.map((x) => x.us);
        const rps = xs.map((x) => x.rps);
        return `${storage.padEnd(6)} ${name.padEnd(12)} CPU/req min ${f(Math.min(...us))} median ${f(median(us))} µs   req/s max ${f(Math.max(...rps))} median ${f(median(rps))}   ${gw.root === ROOT ? 'this tree' : gw.root}`;
      };
      if (ONLY !== 'registration') results.push(row('refresh', refresh.get(gw)!));
      if (ONLY !== 'refresh') results.push(row('registration', register.get(gw)!));
    }
    for (const gw of gws) {
      gw.child.kill('SIGTERM');
      await new Promise((r) => gw.child.once('exit', r));
    }
  }
  await idp.close();
  // Other work on the machine only adds CPU time per request (caches, SMT siblings): the minimum is the least disturbed round.
  console.log(`\nNode ${process.version}; load average ${load0} → ${loadAvg()}; ${ROUNDS} rounds of ${DURATION} s, gateways interleaved`);
  for (const r of results) console.log(r);
  process.exit(0);
}

await main();
