/**
 * Real redis-server processes for tests: standalone, Cluster (3 masters) and Sentinel (1 master + 1
 * sentinel), each on free loopback ports, in a temp folder removed on stop. Everything started here is
 * killed by `stop()` and, as a safety net, when the test process exits.
 *
 * If the binary is missing, `describeRedis` skips with a loud warning, unless `GW_REQUIRE_REDIS=1`
 * (CI), in which case the suite fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { storageSchema } from '../../src/config/schema.js';
import { freePort } from './ports.js';

const BIN = process.env.GW_REDIS_SERVER ?? 'redis-server';
const CLI = process.env.GW_REDIS_CLI ?? 'redis-cli';

let available: boolean | undefined;
export function redisAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync(BIN, ['--version'], { encoding: 'utf8' });
    available = r.status === 0 && /Redis server/.test(r.stdout);
  }
  return available;
}

/** `describe` when redis-server exists; a loud skip otherwise; a failure when GW_REQUIRE_REDIS=1. */
export function describeRedis(name: string, body: () => void): void {
  if (redisAvailable()) {
    describe(name, body);
    return;
  }
  if (process.env.GW_REQUIRE_REDIS === '1') {
    describe(name, () => {
      it('needs redis-server (GW_REQUIRE_REDIS=1)', () => {
        throw new Error(`redis-server binary "${BIN}" not found, and GW_REQUIRE_REDIS=1 requires the Redis tests to run`);
      });
    });
    return;
  }
  console.warn(
    `\n!!!!! SKIPPING Redis tests "${name}": redis-server binary "${BIN}" not found. Set GW_REQUIRE_REDIS=1 to make this a failure. !!!!!\n`,
  );
  describe.skip(name, body);
}

export { freePort };

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends one command (RESP-encoded; split on spaces) over a raw socket and returns the raw reply. */
export function rawCommand(port: number, command: string | string[], timeoutMs = 1000): Promise<string> {
  const args = typeof command === 'string' ? command.split(' ') : command;
  const wire = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(buf);
    };
    const timer = setTimeout(() => done(buf ? undefined : new Error('timeout')), timeoutMs);
    sock.on('error', (e) => done(e));
    sock.on('connect', () => sock.write(wire));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.endsWith('\r\n')) done();
    });
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function spawnRedis(args: string[], cwd: string): ChildProcess {
  const child = spawn(BIN, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.stderr?.resume();
  return child;
}

async function killProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await exited;
}

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes', '--appendfsync', 'always']. */
  args?: string[];
  /** Require this password (`requirepass`). */
  password?: string;
}

/** One standalone redis-server; `kill()` + `start()` restarts it on the same port and data folder. */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;
  #options: RedisServerOptions;

  private constructor(port: number, dir: string, options: RedisServerOptions) {
    this.port = port;
    this.dir = dir;
    this.#options = options;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'gw-redis-')), options);
    try {
      await s.start();
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--dir',
      this.dir,
    ];
    if (this.#options.password) args.push('--requirepass', this.#options.password);
    args.push(...(this.#options.args ?? []));
    this.#child = spawnRedis(args, this.dir);
    const auth = this.#options.password ? ['AUTH', this.#options.password] : undefined;
    await waitFor(async () => {
      if (auth) return (await rawCommand(this.port, auth)).startsWith('+OK');
      return (await rawCommand(this.port, 'PING')).startsWith('+PONG');
    }, `redis-server on port ${this.port}`);
  }

  /** SIGSTOP: the process hangs with its sockets open (a network black hole); `resume()` undoes it. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  /** SIGKILL: the abrupt outage. */
  async kill(): Promise<void> {
    this.#child?.kill('SIGCONT');
    await killProcess(this.#child, 'SIGKILL');
    this.#child = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Three masters, 0 replicas, slots spread by `redis-cli --cluster create`. */
export class RedisCluster {
  readonly ports: number[];
  readonly dir: string;
  #children: ChildProcess[] = [];

  private constructor(ports: number[], dir: string) {
    this.ports = ports;
    this.dir = dir;
  }

  get nodes(): { host: string; port: number }[] {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }));
  }

  static async start(): Promise<RedisCluster> {
    const ports: number[] = [];
    // Cluster bus ports are port + 10000: pick ports whose bus port is also free.
    while (ports.length < 3) {
      const p = await freePort();
      if (p + 10000 > 65535 || ports.includes(p) || !(await portFree(p + 10000))) continue;
      ports.push(p);
    }
    const c = new RedisCluster(ports, mkdtempSync(join(tmpdir(), 'gw-redis-cluster-')));
    for (const port of ports) {
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--dir',
        c.dir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '5000',
      ];
      c.#children.push(spawnRedis(args, c.dir));
    }
    try {
      await c.#boot();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  async #boot(): Promise<void> {
    const ports = this.ports;
    for (const port of ports) await waitFor(async () => (await rawCommand(port, 'PING')).startsWith('+PONG'), `cluster node ${port}`);
    const create = spawnSync(
      CLI,
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`);
    for (const port of ports)
      await waitFor(async () => (await rawCommand(port, 'CLUSTER INFO')).includes('cluster_state:ok'), `cluster state ok on ${port}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.#children.map((ch) => killProcess(ch)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One master and one sentinel monitoring it under `name`. */
export class RedisSentinel {
  readonly name = 'gwmaster';
  readonly masterPort: number;
  readonly sentinelPort: number;
  readonly dir: string;
  #children: ChildProcess[] = [];

  private constructor(masterPort: number, sentinelPort: number, dir: string) {
    this.masterPort = masterPort;
    this.sentinelPort = sentinelPort;
    this.dir = dir;
  }

  get sentinels(): { host: string; port: number }[] {
    return [{ host: '127.0.0.1', port: this.sentinelPort }];
  }

  static async start(): Promise<RedisSentinel> {
    const s = new RedisSentinel(await freePort(), await freePort(), mkdtempSync(join(tmpdir(), 'gw-redis-sentinel-')));
    try {
      await s.#boot();
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  async #boot(): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- a one-letter name keeps the long spawn lines below readable
    const s = this;
    s.#children.push(
      spawnRedis(['--port', String(s.masterPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', s.dir], s.dir),
    );
    await waitFor(async () => (await rawCommand(s.masterPort, 'PING')).startsWith('+PONG'), 'sentinel master');
    const conf = join(s.dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${s.sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${s.dir}`,
        `sentinel monitor ${s.name} 127.0.0.1 ${s.masterPort} 1`,
        `sentinel down-after-milliseconds ${s.name} 5000`,
        '',
      ].join('\n'),
    );
    s.#children.push(spawnRedis([conf, '--sentinel'], s.dir));
    await waitFor(
      async () => (await rawCommand(s.sentinelPort, `SENTINEL get-master-addr-by-name ${s.name}`)).includes(String(s.masterPort)),
      'sentinel to know the master',
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.#children.map((ch) => killProcess(ch)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A parsed `storage` config for Redis with test-friendly timeouts and no background sweep. */
export function redisConfig(redis: Record<string, unknown>) {
  return storageSchema.parse({ type: 'redis', redis: { socket_timeout: 2, socket_connect_timeout: 2, sweep_interval: 0, ...redis } });
}
