/**
 * `workers: 2` on SQLite (src/cli/workers.ts), run as an operator does: the real CLI. Both workers serve the
 * port; a token signed in through them works on both; after its grant is revoked it is refused by both
 * within a second; SIGTERM to the primary stops every process. A scrape on either worker answers for both
 * (src/observability/cluster-metrics.ts), and within its time bound when one does not answer. `memory`
 * with workers is refused at start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from '../helpers/gateway.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { BrowserDriver, obtainToken } from '../helpers/oauth-client.js';
import { ALICE, gatewayProvider, startUpstreamIdp } from '../helpers/upstream-idp.js';
import { runCli } from '../helpers/cli.js';
import { problems } from '../helpers/config.js';
import { ownerOf } from '../helpers/sockets.js';

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

interface Init {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * One request: on a connection of its own (the cluster hands each new connection to the next worker), or on
 * `agent`'s one kept-alive connection. `localPort` is the client's side of the connection it used.
 */
function send(url: string, init: Init = {}, agent?: Agent): Promise<{ status: number; body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const headers = agent ? { ...init.headers } : { connection: 'close', ...init.headers };
    const req = request(url, { method: init.method ?? 'GET', headers, agent: agent ?? false }, (res) => {
      let body = '';
      const localPort = res.socket.localPort!;
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, localPort }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
const once = (url: string, init: Init = {}) => send(url, init);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Worker pids: the cluster's children of the primary, from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function writeConfig(dir: string, port: number, extra: Record<string, unknown>): string {
  const file = join(dir, 'gateway.json');
  writeFileSync(
    file,
    JSON.stringify({
      host: '127.0.0.1',
      port,
      issuer: `http://127.0.0.1:${port}`,
      session_secret: 'workers-test-session-secret-0123456789abcdefgh',
      oauth_providers: { dev: {} },
      limits: { shutdown_grace: 2 },
      ...extra,
    }),
  );
  return file;
}

interface Cluster {
  base: string;
  port: number;
  child: ChildProcess;
  /** The worker pids. */
  workers: number[];
  stderr(): string;
}

/**
 * The real CLI with `workers: 2` on SQLite and one service `svc` (an echo backend); cleanup registered.
 * `extra` replaces top-level keys of the configuration (the port is `port` when given).
 */
async function startCluster(extra: Record<string, unknown> = {}, port?: number): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-workers-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const backend = await startEchoBackend();
  port ??= await freePort();
  const cfg = writeConfig(dir, port, {
    workers: 2,
    storage: { type: 'sqlite', sqlite: { path: join(dir, 'gw.db') } },
    mcp_services: { svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' } },
    ...extra,
  });
  const child: ChildProcess = spawn(process.execPath, ['--import', TSX, CLI, '--config', cfg], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    for (const pid of childrenOf(child.pid!)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  await expect.poll(() => stderr, { timeout: 60_000, interval: 100 }).toContain('2 worker processes');
  return { base: `http://127.0.0.1:${port}`, port, child, workers: childrenOf(child.pid!), stderr: () => stderr };
}

/** A kept-alive connection on each worker, found from /proc: worker pid → an agent with that one connection. */
async function connectionPerWorker(c: Cluster): Promise<Map<number, Agent>> {
  const byWorker = new Map<number, Agent>();
  for (let i = 0; i < 20 && byWorker.size < c.workers.length; i++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    const { localPort } = await send(`${c.base}/health`, {}, agent);
    const owner = ownerOf(c.port, localPort, c.workers);
    if (owner !== undefined && !byWorker.has(owner)) byWorker.set(owner, agent);
    else agent.destroy();
  }
  return byWorker;
}

/** The value of one series (`name{labels}`, labels as printed) in a Prometheus text scrape; 0 when absent. */
function sample(scrape: string, series: string): number {
  const line = scrape.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const ping = (token: string) => ({
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
  },
  body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
});

/** SIGTERM to the primary: it and every worker exit, the primary with 0. */
async function stopCluster(c: Cluster): Promise<void> {
  const exited = new Promise<number | null>((r) => c.child.once('exit', (code) => r(code)));
  c.child.kill('SIGTERM');
  expect(await exited).toBe(0);
  await expect.poll(() => c.workers.filter(alive), { timeout: 10_000 }).toEqual([]);
  expect(c.stderr()).toContain('shutting down 2 workers');
}

describe('workers', () => {
  it('two workers on SQLite: both serve, a revoked grant is refused by both within a second, SIGTERM stops every process', async () => {
    const cluster = await startCluster();
    const { base, workers } = cluster;
    expect(workers).toHaveLength(2);

    // Both workers answer: a connection held by each (from /proc).
    expect([...(await connectionPerWorker(cluster)).keys()].sort()).toEqual([...workers].sort());

    // Sign in through the cluster (registration, consent, code and token requests land on either worker).
    const { tokens, provider } = await obtainToken(base, 'svc', { devLogin: { name: 'Alice', email: 'alice@example.com' } });
    const call = () => once(`${base}/svc/mcp`, ping(tokens.access_token));
    const before = await Promise.all(Array.from({ length: 6 }, call));
    expect(before.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);

    const revoke = await once(`${base}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token!, client_id: provider.clientInformation()!.client_id }).toString(),
    });
    expect(revoke.status).toBe(200);
    const revokedAt = Date.now();
    // Every worker refuses it: six consecutive fresh connections (round-robin over both) all get 401. The
    // time counted is when the first such batch was sent (the revocation list polls storage every second).
    let refusedAfter = Number.POSITIVE_INFINITY;
    while (Date.now() - revokedAt < 5_000) {
      const sent = Date.now();
      const statuses = (await Promise.all(Array.from({ length: 6 }, call))).map((r) => r.status);
      expect(
        statuses.every((s) => s === 200 || s === 401),
        String(statuses),
      ).toBe(true);
      if (statuses.every((s) => s === 401)) {
        refusedAfter = sent - revokedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(refusedAfter).toBeLessThan(1_500);

    // Graceful shutdown: the primary and both workers exit.
    await stopCluster(cluster);
  }, 120_000);

  it('metrics: a scrape on either worker sums both workers; a worker that does not answer within 2 s is left out and named', async () => {
    const cluster = await startCluster();
    const { base, workers } = cluster;
    const [w1, w2] = [...workers].sort((a, b) => a - b) as [number, number];
    const conns = await connectionPerWorker(cluster);
    const on1 = conns.get(w1)!;
    const on2 = conns.get(w2)!;
    expect(on1 && on2).toBeTruthy();
    const { tokens } = await obtainToken(base, 'svc', { devLogin: { name: 'Alice', email: 'alice@example.com' } });
    const scrape = async (agent: Agent) => {
      const r = await send(`${base}/metrics`, {}, agent);
      expect(r.status).toBe(200);
      return r.body;
    };
    const OK = 'mcp_gateway_proxy_requests_total{service="svc",status="200"}';
    const COUNT = 'mcp_gateway_proxy_duration_seconds_count{service="svc"}';
    const before = await scrape(on1);
    expect(sample(before, OK)).toBe(0);

    // 3 requests on worker 1's connection, 5 on worker 2's: each worker alone counts 3 or 5.
    for (let i = 0; i < 3; i++) expect((await send(`${base}/svc/mcp`, ping(tokens.access_token), on1)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await send(`${base}/svc/mcp`, ping(tokens.access_token), on2)).status).toBe(200);
    for (const agent of [on1, on2]) {
      const after = await scrape(agent);
      // Counters and histograms are summed over the workers, and carry no worker label.
      expect(sample(after, OK)).toBe(8);
      expect(sample(after, COUNT) - sample(before, COUNT)).toBe(8);
      expect(sample(after, 'mcp_gateway_proxy_duration_seconds_bucket{le="+Inf",service="svc"}') - sample(before, COUNT)).toBe(8);
      expect(after).not.toMatch(/^mcp_gateway_proxy_[a-z_]+\{[^}]*worker=/m);
      // Gauges as declared: storage is up when it is up for every worker (min), not 2.
      expect(sample(after, 'mcp_gateway_storage_up{backend="sqlite"}')).toBe(1);
      // Process-level series stay one per worker (the start time too, which prom-client would omit).
      for (const w of ['1', '2']) {
        expect(sample(after, `mcp_gateway_process_resident_memory_bytes{worker="${w}"}`)).toBeGreaterThan(0);
        expect(sample(after, `mcp_gateway_process_start_time_seconds{worker="${w}"}`)).toBeGreaterThan(0);
        expect(sample(after, `mcp_gateway_worker_up{worker="${w}"}`)).toBe(1);
      }
    }

    // Worker 2 stopped (SIGSTOP): a scrape on worker 1 answers after the 2 s bound, with worker 1's share and
    // worker 2 named as missing; it does not hang.
    process.kill(w2, 'SIGSTOP');
    const t0 = Date.now();
    const partial = await scrape(on1);
    const took = Date.now() - t0;
    process.kill(w2, 'SIGCONT');
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(took).toBeLessThan(3_000);
    expect(sample(partial, 'mcp_gateway_worker_up{worker="1"}')).toBe(1);
    expect(sample(partial, 'mcp_gateway_worker_up{worker="2"}')).toBe(0);
    expect(sample(partial, OK)).toBe(3);
    expect(partial).not.toContain('mcp_gateway_process_resident_memory_bytes{worker="2"}');

    // Resumed, its late answer to the old round is dropped, and the next scrape is whole again.
    await expect
      .poll(async () => {
        const s = await scrape(on2);
        return [sample(s, OK), sample(s, 'mcp_gateway_worker_up{worker="2"}')];
      })
      .toEqual([8, 1]);
    await stopCluster(cluster);
  }, 120_000);

  it('console: the Services and Activity pages on either worker count both workers; a silent worker is named', async () => {
    const idp = await startUpstreamIdp([ALICE]);
    const port = await freePort();
    const cluster = await startCluster(
      {
        oauth_providers: { myidp: gatewayProvider(idp, ['openid', 'email', 'profile']) },
        mcp_services: { svc: { name: 'svc', url: (await startEchoBackend()).url, oauth_provider: 'myidp' } },
        admin: { users: ['myidp:alice'] },
      },
      port,
    );
    const { base, workers } = cluster;
    idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${base}/oauth/callback`] });
    const [w1, w2] = [...workers].sort((a, b) => a - b) as [number, number];
    const conns = await connectionPerWorker(cluster);
    const on1 = conns.get(w1)!;
    const on2 = conns.get(w2)!;
    expect(on1 && on2).toBeTruthy();

    // The console sign-in (its requests land on either worker; the session is in SQLite).
    idp.nextUser = ALICE;
    const browser = new BrowserDriver();
    const walk = await browser.walk(new URL(`${base}/admin/login`), `${base}/admin/services`);
    expect(walk.redirect?.pathname, walk.finalPage?.body).toBe('/admin/services');
    const cookie = browser.cookieHeader(new URL(base));
    const page = async (path: string, agent: Agent) => {
      const r = await send(`${base}${path}`, { headers: { cookie } }, agent);
      expect(r.status, r.body).toBe(200);
      return r.body;
    };

    // Each worker alone sees its share: a registration and 3 refused MCP requests on worker 1's connection,
    // a registration and 5 on worker 2's.
    const register = (name: string, agent: Agent) =>
      send(
        `${base}/oauth/register`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            client_name: name,
            redirect_uris: ['http://127.0.0.1:33418/callback'],
            token_endpoint_auth_method: 'none',
          }),
        },
        agent,
      );
    const one = JSON.parse((await register('Client on worker one', on1)).body) as { client_id: string };
    const two = JSON.parse((await register('Client on worker two', on2)).body) as { client_id: string };
    const unauthenticated = { ...ping(''), headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } };
    for (let i = 0; i < 3; i++) expect((await send(`${base}/svc/mcp`, unauthenticated, on1)).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await send(`${base}/svc/mcp`, unauthenticated, on2)).status).toBe(401);

    /** The cells of the svc row: Service, Backend, Health, Open streams, Requests / min, Errors / min, Policy. */
    const svcRow = (html: string) => {
      const row = /<tr>(?:(?!<\/tr>).)*\/svc\/mcp(?:(?!<\/tr>).)*<\/tr>/s.exec(html)?.[0] ?? '';
      return [...row.matchAll(/<td>(.*?)<\/td>/gs)].map((m) => m[1]);
    };
    for (const agent of [on1, on2]) {
      const activity = await page('/admin/activity?event=client.registered', agent);
      expect(activity).toContain(one.client_id);
      expect(activity).toContain(two.client_id);
      expect(activity).toContain('all 2 workers');
      const services = await page('/admin/services', agent);
      // Requests: the 3 and the 5, summed; none was a 5xx.
      expect(svcRow(services).slice(3, 6)).toEqual(['0', '8', '0']);
      expect(services).toContain('all 2 workers');
    }

    // Worker 2 stopped: worker 1's page comes after the 2 s bound with its own share, naming worker 2.
    process.kill(w2, 'SIGSTOP');
    let partial: string;
    try {
      partial = await page('/admin/activity?event=client.registered', on1);
    } finally {
      process.kill(w2, 'SIGCONT');
    }
    expect(partial).toContain(one.client_id);
    expect(partial).not.toContain(two.client_id);
    expect(partial).toContain('1 of 2 workers: worker 2 did not answer in time');
    await stopCluster(cluster);
  }, 120_000);

  it('the rule: workers other than 1 with memory storage, reported at the workers key with its line', () => {
    const base = [
      'host: 127.0.0.1',
      'issuer: http://127.0.0.1:8080',
      'session_secret: workers-test-session-secret-0123456789abcdefgh',
      'oauth_providers: { dev: {} }',
      'storage: { type: memory }',
    ].join('\n');
    expect(problems(`${base}\nworkers: 2\n`)).toEqual([
      expect.objectContaining({ path: 'workers', line: 6, message: expect.stringContaining('use storage type sqlite') }),
    ]);
    expect(problems(`${base}\nworkers: auto\n`).map((p) => p.path)).toEqual(['workers']);
  });

  it('workers with memory storage is refused by check-config with the key and the fix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-workers-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = writeConfig(dir, await freePort(), { workers: 'auto', storage: { type: 'memory' } });
    const r = await runCli(['check-config', '--config', cfg]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('workers');
    expect(r.stdout + r.stderr).toContain('cannot share storage type memory');
  });
});
