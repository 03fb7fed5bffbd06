/**
 * `workers: 2` on SQLite (src/cli/workers.ts), run as an operator does: the real CLI. Both workers serve the
 * port; a token signed in through them works on both; after its grant is revoked it is refused by both
 * within a second; SIGTERM to the primary stops every process. `memory` with workers is refused at start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from '../helpers/gateway.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { runCli } from '../helpers/cli.js';
import { problems } from '../helpers/config.js';

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

/** One request on a connection of its own (the cluster hands each new connection to the next worker). */
function once(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: { connection: 'close', ...init.headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

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

describe('workers', () => {
  it('two workers on SQLite: both serve, a revoked grant is refused by both within a second, SIGTERM stops every process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-workers-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const backend = await startEchoBackend();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const cfg = writeConfig(dir, port, {
      workers: 2,
      storage: { type: 'sqlite', sqlite: { path: join(dir, 'gw.db') } },
      mcp_services: { svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' } },
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
    const workers = childrenOf(child.pid!);
    expect(workers).toHaveLength(2);

    // Both workers answer (their metrics carry their worker label).
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const m = await once(`${base}/metrics`);
      const w = /worker="(\d+)"/.exec(m.body)?.[1];
      if (w) seen.add(w);
    }
    expect([...seen].sort()).toEqual(['1', '2']);

    // Sign in through the cluster (registration, consent, code and token requests land on either worker).
    const { tokens, provider } = await obtainToken(base, 'svc', { devLogin: { name: 'Alice', email: 'alice@example.com' } });
    const call = () =>
      once(`${base}/svc/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${tokens.access_token}`,
        },
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      });
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
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await expect.poll(() => workers.filter(alive), { timeout: 10_000 }).toEqual([]);
    expect(stderr).toContain('shutting down 2 workers');
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
