/**
 * `npm run bench`: measures the gateway against calling the backend directly and against nginx
 * `proxy_pass` to the same backend, on loopback. Not part of `npm test`.
 *
 * Processes: backend (bench/backend.ts), gateway (the real CLI with a generated config), nginx (when
 * installed), the upstream OpenID provider (in this process, idle during measurements), and every load
 * generator in its own process (bench/load.ts, bench/streams.ts).
 *
 * Writes bench/results/latest.json and prints a table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { freePort } from '../test/helpers/gateway.js';
import { benchToken, benchRefreshTokens, registrationLoad, startBenchIdp, UNREACHABLE_RATE_LIMITS, type BenchIdp } from './flow.js';
import { waitFor } from './processes.js';
import { childPids, describeIdleStreams, measureIdleStreams, processCpuSeconds, type HeldStreams } from './idle-streams.js';

const ROOT = new URL('..', import.meta.url).pathname;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 9500);
/** Idle streams through the 2-worker gateway: about 5,000 per worker, within the 20,000-descriptor limit of each. */
const STREAMS_WORKERS = Number(process.env.BENCH_STREAMS_WORKERS ?? 10_000);
/** BENCH_TRACING=1: a second gateway with `telemetry` on (sample ratio BENCH_TRACING_RATIO, default 1), measured in the same rounds. */
const TRACING = process.env.BENCH_TRACING === '1';
const TRACING_RATIO = Number(process.env.BENCH_TRACING_RATIO ?? 1);
const children: ChildProcess[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'gw-bench-'));

let nginxPid: number | undefined;
/** Processes stopped with SIGTERM (a cluster primary stops its workers; SIGKILL would leave them to notice alone). */
const termPids = new Set<number>();

function cleanup(): void {
  // nginx: SIGTERM to the master stops its workers too (SIGKILL would orphan them).
  if (nginxPid) process.kill(nginxPid, 'SIGTERM');
  for (const c of children) if (c.pid !== nginxPid) c.kill(termPids.has(c.pid!) ? 'SIGTERM' : 'SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function tsx(script: string, args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(ROOT, script), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

async function runLoad(opts: Record<string, unknown>): Promise<LoadResult> {
  const child = tsx('bench/load.ts', [JSON.stringify(opts)]);
  const m = await waitFor(child, /(\{.*\})\n/, (Number(opts.duration ?? DURATION) + 30) * 1000);
  return JSON.parse(m[1]!) as LoadResult;
}

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  total: number;
  non2xx: number;
  errors: number;
  /** CPU time of the measured server process per request, in microseconds (robust to other load). */
  cpuUsPerReq?: number;
  /** 1-minute load average at the end of the round. */
  load?: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/** CPU seconds (user + system) a process and its children have used so far, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // Its worker processes too (`workers: 2`): the children of the primary.
    return processCpuSeconds(pid) + childPids(pid).reduce((a, k) => a + cpuSeconds(k), 0);
  } catch {
    return NaN;
  }
}

/** The 1-minute load average: other work on the machine, stated with every number. */
const loadAvg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/** Opens `n` idle streams in a process of its own (bench/streams.ts; one socket per stream there). */
async function holdStreams(url: string, n: number, headers: Record<string, string>): Promise<HeldStreams> {
  const holder = tsx('bench/streams.ts', [JSON.stringify({ url, n, headers })]);
  const opened = await waitFor(holder, /OPEN (\d+) FAILED (\d+) CPU (\d+)/, 300_000);
  return { open: Number(opened[1]), failed: Number(opened[2]), cpuSeconds: Number(opened[3]) / 1e6, stop: () => holder.kill('SIGTERM') };
}

async function startNginx(backendPort: number): Promise<number | undefined> {
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  if (!bin) return undefined;
  const port = await freePort();
  const dir = join(tmp, 'nginx');
  execFileSync('mkdir', ['-p', join(dir, 'logs')]);
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const child = spawn(bin, ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  nginxPid = child.pid;
  for (let i = 0; i < 50; i++) {
    try {
      const r = await request(`http://127.0.0.1:${port}/mcp`, { method: 'POST', body: '{}' });
      await r.body.dump();
      return port;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('nginx did not start');
}

async function sseLag(
  url: string,
  headers: Record<string, string>,
  n = 200,
  interval = 10,
): Promise<{ max: number; p99: number; p50: number }> {
  const res = await request(`${url}?sse=${n}&interval=${interval}`, {
    method: 'GET',
    headers: { accept: 'text/event-stream', ...headers },
  });
  if (res.statusCode !== 200) throw new Error(`SSE status ${res.statusCode}`);
  const lags: number[] = [];
  let buf = '';
  for await (const chunk of res.body) {
    const now = performance.timeOrigin + performance.now();
    buf += (chunk as Buffer).toString();
    let idx: number;
    while ((idx = buf.indexOf('\n\n')) !== -1) {
      const ev = buf.slice(0, idx);
      buf = buf.slice(idx + 2);
      const t = /"t":([\d.]+)/.exec(ev)?.[1];
      if (t) lags.push(now - Number(t));
    }
  }
  return { max: Math.max(...lags), p99: pct(lags, 99), p50: pct(lags, 50) };
}

async function firstByte(url: string, headers: Record<string, string>, body: string, n = 300): Promise<{ p50: number; p99: number }> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await request(url, { method: 'POST', headers, body });
    xs.push(performance.now() - t0);
    await res.body.dump();
  }
  return { p50: pct(xs, 50), p99: pct(xs, 99) };
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadStart = loadAvg();
  const backend = tsx('bench/backend.ts', []);
  const backendPort = Number((await waitFor(backend, /READY (\d+)/))[1]);
  const direct = `http://127.0.0.1:${backendPort}/mcp`;

  const idp: BenchIdp = await startBenchIdp();
  const gwPort = await freePort();
  const issuer = `http://127.0.0.1:${gwPort}`;
  idp.allowGateway(issuer);
  const gatewayConfig = (
    port: number,
    iss: string,
    storage: Record<string, unknown>,
    workers: number,
    name: string,
    extra: Record<string, unknown> = {},
  ) => {
    const file = join(tmp, name);
    writeFileSync(
      file,
      JSON.stringify({
        host: '127.0.0.1',
        port,
        issuer: iss,
        workers,
        session_secret: 'bench-session-secret-bench-session-secret-0123',
        oauth_providers: {
          corp: { issuer: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret, allow_insecure_http: true },
        },
        mcp_services: {
          bench: { name: 'Bench', url: direct, oauth_provider: 'corp', scopes: ['mcp:tools'] },
          // The same backend behind tool-level rules (docs/authorization.md): the proxy reads and decides every body.
          'bench-tools': {
            name: 'Bench with tool rules',
            url: direct,
            oauth_provider: 'corp',
            scopes: ['mcp:tools', 'mcp:admin'],
            required_scopes: ['mcp:tools'],
            tools: {
              default: 'deny',
              rules: { echo: { scopes: ['mcp:tools'] }, 'admin_*': { groups: ['admins'], scopes: ['mcp:admin'] }, danger: { deny: true } },
            },
          },
        },
        storage,
        // Rate limiting stays on (its hooks are part of the measured path), with limits the benchmark cannot reach.
        rate_limits: UNREACHABLE_RATE_LIMITS,
        limits: { max_concurrent_per_service: 20000 },
        ...(process.env.BENCH_LOG_LEVEL ? { logging: { level: process.env.BENCH_LOG_LEVEL } } : {}),
        ...extra,
      }),
    );
    return file;
  };
  const cfgFile = gatewayConfig(gwPort, issuer, { type: 'memory' }, 1, 'gateway.json');
  // The same gateway with `workers: 2` (SQLite in WAL mode: memory cannot be shared by processes).
  const gw2Port = await freePort();
  const issuer2 = `http://127.0.0.1:${gw2Port}`;
  idp.allowGateway(issuer2);
  const cfg2File = gatewayConfig(gw2Port, issuer2, { type: 'sqlite', sqlite: { path: join(tmp, 'gw2.db') } }, 2, 'gateway2.json');
  // BENCH_PROFILE=1: CPU profile of the gateway (written on exit to bench/results/profiles/).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/results/profiles')}`] : [];
  // The gateway runs the way users run it (`npm start`: compiled dist/), rebuilt first so it is current.
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  const gateway = spawn(process.execPath, [...profile, join(ROOT, 'bin/mcp-oauth-gateway.js'), '--config', cfgFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(gateway);
  await waitFor(gateway, /listening on/);
  const gwUrl = `${issuer}/bench/mcp`;
  const gateway2 = spawn(process.execPath, [join(ROOT, 'bin/mcp-oauth-gateway.js'), '--config', cfg2File], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(gateway2);
  termPids.add(gateway2.pid!);
  await waitFor(gateway2, /2 worker processes/, 60_000);
  const gw2Url = `${issuer2}/bench/mcp`;
  const token2 = await benchToken(issuer2, 'bench');

  const token = await benchToken(issuer, 'bench');
  const auth = { authorization: `Bearer ${token.accessToken}` };

  // BENCH_TRACING=1: the same gateway (1 worker, memory) with tracing on, exporting to an OTLP/HTTP sink
  // in this process (it counts the spans it receives and discards them).
  const otlp = { requests: 0, spans: 0 };
  let traced: { url: string; auth: Record<string, string>; pid: number | undefined } | undefined;
  if (TRACING) {
    const sink = createServer((req, res) => {
      let spans = 0;
      req.on('data', (c: Buffer) => (spans += c.toString('latin1').split('"spanId"').length - 1));
      req.on('end', () => {
        otlp.requests++;
        otlp.spans += spans;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const tracedPort = await freePort();
    const tracedIssuer = `http://127.0.0.1:${tracedPort}`;
    idp.allowGateway(tracedIssuer);
    const tracedCfg = gatewayConfig(tracedPort, tracedIssuer, { type: 'memory' }, 1, 'traced.json', {
      telemetry: { otlp_endpoint: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`, sample_ratio: TRACING_RATIO },
    });
    const tracedChild = spawn(process.execPath, [join(ROOT, 'bin/mcp-oauth-gateway.js'), '--config', tracedCfg], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(tracedChild);
    await waitFor(tracedChild, /listening on/);
    const tracedToken = await benchToken(tracedIssuer, 'bench');
    traced = { url: `${tracedIssuer}/bench/mcp`, auth: { authorization: `Bearer ${tracedToken.accessToken}` }, pid: tracedChild.pid };
  }

  // Tool rules: the `bench-tools` service of the 1-worker gateway (same backend, same body).
  const toolsToken = await benchToken(issuer, 'bench-tools');
  const toolsUrl = `${issuer}/bench-tools/mcp`;
  const toolsAuth = { authorization: `Bearer ${toolsToken.accessToken}` };
  const nginxPort = await startNginx(backendPort);
  // The platform's limit: a bare node:http → undici proxy (bench/bare-proxy.ts), no authentication.
  const bare = tsx('bench/bare-proxy.ts', [`http://127.0.0.1:${backendPort}`]);
  const barePort = Number((await waitFor(bare, /READY (\d+)/))[1]);
  const bareUrl = `http://127.0.0.1:${barePort}/mcp`;
  const nginxUrl = nginxPort ? `http://127.0.0.1:${nginxPort}/mcp` : undefined;

  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } });
  const jsonHeaders = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
  };

  // Sanity: the gateway really validates (a request without the token is refused).
  const unauth = await request(gwUrl, { method: 'POST', headers: jsonHeaders, body });
  await unauth.body.dump();
  if (unauth.statusCode !== 401) throw new Error(`expected 401 without a token, got ${unauth.statusCode}`);

  type Target = [name: string, url: string, headers: Record<string, string>, pid: number | undefined];
  // Every target gets the same request bytes, the gateway's Bearer token included: the direct, nginx and
  // bare rows then pay for receiving (and relaying) the same ~0.7 KB header the gateway must parse.
  const clientHeaders = { ...jsonHeaders, ...auth };
  const targets: Target[] = [
    ['direct', direct, clientHeaders, backend.pid],
    ...(nginxUrl ? ([['nginx', nginxUrl, clientHeaders, nginxPid]] as Target[]) : []),
    ['bare', bareUrl, clientHeaders, bare.pid],
    ['gateway', gwUrl, clientHeaders, gateway.pid],
    ['gateway2', gw2Url, { ...jsonHeaders, authorization: `Bearer ${token2.accessToken}` }, gateway2.pid],
    ...(traced ? ([['traced', traced.url, { ...jsonHeaders, ...traced.auth }, traced.pid]] as Target[]) : []),
    ['gw+rules', toolsUrl, { ...jsonHeaders, ...toolsAuth }, gateway.pid],
  ];
  // Warm-up (JIT, connection pools).
  for (const [, url, headers] of targets) await runLoad({ url, headers, body, duration: 2, connections: CONNECTIONS });
  const rounds: Record<string, LoadResult[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, url, headers, pid] of targets) {
      const cpu0 = cpuSeconds(pid);
      const res = await runLoad({ url, headers, body, duration: DURATION, connections: CONNECTIONS });
      res.cpuUsPerReq = ((cpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, res.total);
      res.load = loadAvg();
      (rounds[name] ??= []).push(res);
      process.stderr.write(
        `round ${r + 1} ${name}: ${Math.round(res.rps)} req/s p50 ${res.p50} ms p99 ${res.p99} ms non-2xx ${res.non2xx}, ${res.cpuUsPerReq.toFixed(0)} µs CPU/req, load ${res.load}\n`,
      );
    }
  }
  const summary = Object.fromEntries(
    Object.entries(rounds).map(([name, rs]) => [
      name,
      {
        rps: median(rs.map((x) => x.rps)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
        cpuUsPerReq: median(rs.map((x) => x.cpuUsPerReq ?? NaN)),
        rounds: rs,
      },
    ]),
  ) as Record<string, { rps: number; p50: number; p99: number; non2xx: number; cpuUsPerReq: number }>;

  // The gateway's own refusals: 401s per second to a client without a token (keep-alive on refusals).
  const refusals = await runLoad({ url: gwUrl, headers: jsonHeaders, body, duration: DURATION, connections: CONNECTIONS });

  const lagDirect = await sseLag(direct, {});
  const lagGateway = await sseLag(gwUrl, auth);
  const ttfbDirect = await firstByte(direct, jsonHeaders, body);
  const ttfbGateway = await firstByte(gwUrl, { ...jsonHeaders, ...auth }, body);
  const ttfbTraced = traced ? await firstByte(traced.url, { ...jsonHeaders, ...traced.auth }, body) : undefined;
  const ttfbRules = await firstByte(toolsUrl, { ...jsonHeaders, ...toolsAuth }, body);
  // The per-request CPU of tool rules, in its own process without the network (bench/tool-rules.ts).
  const toolRules = JSON.parse((await waitFor(tsx('bench/tool-rules.ts', []), /(\{.*\})\n/, 120_000))[1]!) as {
    callUs: number;
    listJsonUs: number;
    listSseUs: number;
    listBytes: number;
  };

  // Token endpoint (refresh grant, each chain rotating its own token) and registration throughput.
  const refresh = await benchRefreshTokens(issuer, 'bench', 8, DURATION);
  const registration = await runLoad(registrationLoad(issuer, DURATION));

  // Idle SSE streams: memory of the gateway's processes before and after; 1 worker, then 2 workers.
  const idleStreams = (url: string, headers: Record<string, string>, n: number, pid: number, iss: string) =>
    measureIdleStreams({
      url: `${url}?idle=1`,
      headers,
      n,
      pid,
      port: Number(new URL(iss).port),
      backendStats: `http://127.0.0.1:${backendPort}/stats`,
      metricsUrl: `${iss}/metrics`,
      hold: holdStreams,
    });
  const streams = await idleStreams(gwUrl, auth, STREAMS, gateway.pid!, issuer);
  const streamsWorkers = await idleStreams(
    gw2Url,
    { authorization: `Bearer ${token2.accessToken}` },
    STREAMS_WORKERS,
    gateway2.pid!,
    issuer2,
  );

  const g = summary.gateway!;
  const d = summary.direct!;
  const n = summary.nginx;
  const b = summary.bare!;
  const g2 = summary.gateway2!;
  const gr = summary['gw+rules']!;
  const t = summary.traced;
  const results = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGb: Math.round(totalmem() / 2 ** 30), node: process.version },
    settings: { rounds: ROUNDS, duration: DURATION, connections: CONNECTIONS },
    throughput: summary,
    ratios: {
      gatewayToDirect: g.rps / d.rps,
      gatewayToNginx: n ? g.rps / n.rps : null,
      gatewayToBare: g.rps / b.rps,
      bareToNginx: n ? b.rps / n.rps : null,
      /** CPU per request, bare / gateway: the throughput ratio the gateway would reach on an idle machine. */
      cpuBareToGateway: b.cpuUsPerReq / g.cpuUsPerReq,
      /** Throughput with 2 workers / 1 worker (the load generator, the backend and both workers share 2 cores). */
      twoWorkersToOne: g2.rps / g.rps,
      /** Throughput of the service with tool rules / the same gateway's service without them. */
      rulesToGateway: gr.rps / g.rps,
    },
    loadAverage: { start: loadStart, end: loadAvg() },
    overheadMs: { p50: g.p50 - d.p50, p99: g.p99 - d.p99 },
    firstByteMs: {
      direct: ttfbDirect,
      gateway: ttfbGateway,
      overheadP50: ttfbGateway.p50 - ttfbDirect.p50,
      overheadP99: ttfbGateway.p99 - ttfbDirect.p99,
      rules: ttfbRules,
    },
    toolRules,
    sseLagMs: { direct: lagDirect, gateway: lagGateway },
    ...(traced && t && ttfbTraced
      ? {
          tracing: {
            sampleRatio: TRACING_RATIO,
            tracedToGateway: t.rps / g.rps,
            /** Medians over the rounds, from /proc (the same figure as the rows' CPU µs/req). */
            cpuMicrosecondsPerRequest: { gateway: g.cpuUsPerReq, traced: t.cpuUsPerReq },
            firstByteMs: ttfbTraced,
            overheadP50: ttfbTraced.p50 - ttfbGateway.p50,
            overheadP99: ttfbTraced.p99 - ttfbGateway.p99,
            otlp,
          },
        }
      : {}),
    refusalsPerSecond: refusals.rps,
    refreshPerSecond: refresh.perSecond,
    refreshErrors: refresh.errors,
    registrationPerSecond: registration.rps,
    registrationNon2xx: registration.non2xx,
    idleStreams: streams,
    idleStreamsWorkers: streamsWorkers,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
  };
  writeFileSync(join(ROOT, 'bench/results/latest.json'), `${JSON.stringify(results, null, 2)}\n`);

  const f = (x: number, d = 2) => x.toFixed(d);
  const lines = [
    `machine: ${results.machine.cpus} CPU (${results.machine.cpu}), Node ${results.machine.node}; ${ROUNDS} rounds x ${DURATION}s, ${CONNECTIONS} connections; load average ${results.loadAverage.start} at start, ${results.loadAverage.end} at end`,
    '',
    'target   | req/s    | p50 ms | p99 ms | CPU µs/req',
    '---------|----------|--------|--------|-----------',
    ...Object.entries(summary).map(
      ([k, v]) =>
        `${k.padEnd(8)} | ${f(v.rps, 0).padStart(8)} | ${f(v.p50, 1).padStart(6)} | ${f(v.p99, 1).padStart(6)} | ${f(v.cpuUsPerReq, 0).padStart(10)}`,
    ),
    '',
    `gateway/bare ${f(results.ratios.gatewayToBare)} (CPU per request bare/gateway ${f(results.ratios.cpuBareToGateway)}); gateway/nginx ${results.ratios.gatewayToNginx === null ? 'n/a (nginx not installed: apt-get install nginx-light)' : f(results.ratios.gatewayToNginx)}; bare/nginx ${results.ratios.bareToNginx === null ? 'n/a' : f(results.ratios.bareToNginx)}; gateway/direct ${f(results.ratios.gatewayToDirect)}`,
    `gateway with 2 workers (SQLite) / 1 worker (memory): ${f(results.ratios.twoWorkersToOne)} (on 2 cores shared with the load generator and the backend)`,
    `tool rules (body read and decided, service with rules) / gateway without rules: throughput ${f(results.ratios.rulesToGateway)}, p50 ${gr.p50 >= g.p50 ? '+' : ''}${f(gr.p50 - g.p50, 1)} ms, CPU per request ${f(gr.cpuUsPerReq, 0)} µs vs ${f(g.cpuUsPerReq, 0)} µs`,
    `tool rules, sequential: p50 ${f(ttfbRules.p50)} / p99 ${f(ttfbRules.p99)} ms (gateway without rules p50 ${f(ttfbGateway.p50)} / p99 ${f(ttfbGateway.p99)} ms); CPU per tools/call ${f(toolRules.callUs, 1)} µs, per filtered tools/list of ${toolRules.listBytes} bytes ${f(toolRules.listJsonUs, 0)} µs (JSON) / ${f(toolRules.listSseUs, 0)} µs (SSE)`,
    `latency overhead under load: p50 ${f(results.overheadMs.p50, 1)} ms, p99 ${f(results.overheadMs.p99, 1)} ms`,
    `sequential request latency: direct p50 ${f(ttfbDirect.p50)} / p99 ${f(ttfbDirect.p99)} ms; gateway p50 ${f(ttfbGateway.p50)} / p99 ${f(ttfbGateway.p99)} ms (overhead p50 ${f(results.firstByteMs.overheadP50)} ms, p99 ${f(results.firstByteMs.overheadP99)} ms)`,
    ...(traced && t && ttfbTraced
      ? [
          `tracing on (sample ratio ${TRACING_RATIO}): gateway CPU per request ${f(g.cpuUsPerReq, 0)} µs off, ${f(t.cpuUsPerReq, 0)} µs on; traced/gateway throughput ${f(t.rps / g.rps)}; sequential p50 ${f(ttfbTraced.p50)} / p99 ${f(ttfbTraced.p99)} ms (vs ${f(ttfbGateway.p50)} / ${f(ttfbGateway.p99)}); OTLP sink received ${otlp.spans} spans in ${otlp.requests} exports`,
        ]
      : []),
    `SSE relay lag: gateway p50 ${f(lagGateway.p50)} p99 ${f(lagGateway.p99)} max ${f(lagGateway.max)} ms (direct max ${f(lagDirect.max)} ms)`,
    `401 refusals (no token): ${f(refusals.rps, 0)}/s`,
    `token endpoint (refresh grant): ${f(refresh.perSecond, 0)}/s (${refresh.errors} errors); registration: ${f(registration.rps, 0)}/s (${registration.non2xx} non-2xx)`,
    describeIdleStreams('1 worker (memory)', streams),
    describeIdleStreams('2 workers (SQLite)', streamsWorkers),
    '',
    `results: bench/results/latest.json (${results.elapsedSeconds}s)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await idp.close();
  if (profile.length) {
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGTERM');
    await exited;
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
