/**
 * Multi-instance test rig: gateway processes started through the real CLI (tsx loader), and a tiny
 * HTTP load balancer in the test process that forwards each request to instance A or B as the test
 * steers it (Host is passed through, X-Forwarded-For appended, bodies and responses streamed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export interface CliRun {
  child: ChildProcess;
  /** Everything printed so far (stdout + stderr). */
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MCP_CONFIG_PATH: '', ...env },
  });
  live.add(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  return { child, output: () => out, exited };
}

/** Waits until `text` was printed; rejects with the output if the process exits first or time runs out. */
export async function waitForText(run: CliRun, text: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let exited = false;
  void run.exited.then(() => (exited = true));
  while (!run.output().includes(text)) {
    if (exited) throw new Error(`process exited before printing '${text}':\n${run.output()}`);
    if (Date.now() > until) throw new Error(`no '${text}' within ${timeoutMs} ms:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. Safe to call twice or on an exited process. */
export async function stopProcess(run: CliRun | undefined, graceMs = 3000): Promise<void> {
  if (!run || run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill('SIGTERM');
  const timer = setTimeout(() => run.child.kill('SIGKILL'), graceMs);
  await run.exited;
  clearTimeout(timer);
}

export type Target = 'A' | 'B';

export interface Balancer {
  url: string;
  /** Instance ports; set once the gateways run. */
  ports: Record<Target, number>;
  /** Picks the instance for a request (default: `target`). */
  pick: ((req: IncomingMessage) => Target) | undefined;
  target: Target;
  /** Every forwarded request: instance, method, path without query. */
  log: Array<{ to: Target; method: string; path: string }>;
  close(): Promise<void>;
}

export async function startBalancer(): Promise<Balancer> {
  const lb: Balancer = { url: '', ports: { A: 0, B: 0 }, pick: undefined, target: 'A', log: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const to = lb.pick?.(req) ?? lb.target;
    lb.log.push({ to, method: req.method ?? '', path: (req.url ?? '').split('?')[0]! });
    const headers = { ...req.headers };
    const socketIp = req.socket.remoteAddress ?? '';
    headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${String(headers['x-forwarded-for'])}, ${socketIp}` : socketIp;
    const up = httpRequest({ host: '127.0.0.1', port: lb.ports[to], method: req.method, path: req.url, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"error":"bad_gateway"}');
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  lb.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  lb.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return lb;
}

/** Polls `check` every `everyMs` until it is true; resolves to the elapsed milliseconds. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return Math.round(performance.now() - started);
    if (performance.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
