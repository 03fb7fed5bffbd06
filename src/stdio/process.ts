/**
 * `LocalProcess`: one running (or restartable) local MCP server and the JSON-RPC multiplexing over its
 * stdin/stdout. Several HTTP requests, and in the legacy era several sessions of the same user (or of
 * everyone, for a shared process), use one process at once, so:
 *
 * - request ids are rewritten to ids unique in this process (`#seq`) and restored on the response, and
 *   `_meta.progressToken` likewise, so two clients that both use id 1 or progress token 1 never collide;
 * - a response goes to the HTTP request that sent its id; a progress notification to the request that
 *   owns its token; another notification to the only request in flight, else to the sessions' GET streams;
 *   a server-to-client request to the only request in flight (or, on a per-user process, the latest one),
 *   and the client's answer is accepted only from the session it was sent to;
 * - legacy era: the first client's `initialize` is forwarded once the process started; later sessions get
 *   the same InitializeResult from the gateway, and their `notifications/initialized` is not repeated. After
 *   a crash the gateway replays that `initialize` to the new process, so sessions survive a restart.
 *
 * Lifecycle: started by the first request; a crash fails every request in flight with a JSON-RPC error
 * (GW_ERR_STDIO_EXITED) and the next request restarts it after a backoff (RESTART_BACKOFF_MS, doubling);
 * stopped after `idle_timeout` without requests, and at shutdown.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { StdioSpec } from '../config/services.js';
import type { VerifiedUser } from '../kernel/claims.js';
import { proxyError, type ProxyError } from '../proxy/respond.js';
import { StdioChild, type ExitReason } from './child.js';
import { childEnv } from './env.js';
import type { StdioMetrics } from './metrics.js';

export type Era = 'legacy' | 'modern';
type Id = string | number;

/** One HTTP request waiting for its JSON-RPC response (src/stdio/http.ts implements it). */
export interface Call {
  readonly clientId: Id;
  readonly session: Session | undefined;
  /** The client's own `_meta.progressToken`, restored on progress notifications. */
  progressToken: Id | undefined;
  /** A message related to this request (a notification or a server request); false when it cannot carry it. */
  deliver(msg: Record<string, unknown>): boolean;
  /** The response, with the client's id restored. */
  finish(msg: Record<string, unknown>): void;
  fail(err: ProxyError): void;
  /** The client went away before the response. */
  readonly closed: boolean;
}

/** Where a legacy session's server messages go outside any request: its GET stream. */
export interface SessionStream {
  deliver(msg: Record<string, unknown>): boolean;
  close(): void;
}

export interface Session {
  readonly id: string;
  readonly userId: string | undefined;
  readonly process: LocalProcess;
  stream: SessionStream | undefined;
}

export interface ProcessOptions {
  serviceId: string;
  spec: StdioSpec;
  era: Era;
  /** The verified user a per-user process runs for; undefined for a shared one. */
  user: VerifiedUser | undefined;
  maxLineBytes: number;
  /** How long a start (spawn, and the initialize replay) may take. */
  startTimeoutMs: number;
  log: FastifyBaseLogger;
  metrics: StdioMetrics;
  /** Called once the process is stopped for good (idle, shutdown): the manager forgets it. */
  onRetired(p: LocalProcess): void;
  /**
   * Variables obtained for this user and service right before each start, set after the identity
   * (`childEnv`'s `extra`). Extension point: the upstream token of a service with `upstream_auth`.
   */
  extraEnv?: () => Promise<Readonly<Record<string, string>>>;
}

/** Restart delays after consecutive crashes: 250 ms doubling to 30 s; reset after RESET_AFTER_MS of uptime. */
const RESTART_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const RESET_AFTER_MS = 30_000;
/** Flood guard: output no request asked for, per FLOOD_WINDOW_MS, beyond this many times the line limit. */
const FLOOD_FACTOR = 4;
const FLOOD_WINDOW_MS = 10_000;
/** Bytes queued on the child's stdin (it does not read) before requests are refused. */
const STDIN_BACKLOG_LIMIT = 8 * 1024 * 1024;

const EXITED = proxyError('GW_ERR_STDIO_EXITED');
const NOT_STARTED = proxyError('GW_ERR_STDIO_EXITED', { description: 'The local MCP server could not be started' });
const STOPPED = proxyError('GW_ERR_STDIO_EXITED', {
  description: 'The local MCP server was stopped (the gateway is shutting down or it was idle)',
});
const NOT_READING = proxyError('GW_ERR_STDIO_EXITED', { description: 'The local MCP server does not read its input' });

const PROGRESS = 'notifications/progress';
const RPC_NO_CLIENT = -32603;

export class LocalProcess {
  readonly key: string;
  readonly opts: ProcessOptions;
  #child: StdioChild | undefined;
  #starting: Promise<void> | undefined;
  #seq = 0;
  readonly #calls = new Map<number, Call>();
  /** Server-to-client request ids → the session they were sent to (legacy). */
  readonly #serverRequests = new Map<Id, Session | undefined>();
  readonly sessions = new Set<Session>();
  /** Legacy: the first client's initialize (replayed after a restart) and its result (given to later sessions). */
  #init: { params: unknown; result: unknown } | undefined;
  #initWaiters: Array<() => void> | undefined;
  #initializedSent = false;
  #crashes = 0;
  #restartAt = 0;
  #lastActivity = Date.now();
  #idleTimer: NodeJS.Timeout | undefined;
  #retired = false;
  #floodWindow = 0;
  #floodBytes = 0;
  /** The internal id of the initialize replay in flight, and its resolver. */
  #replay: { id: number; done(ok: boolean): void } | undefined;
  /** The child counted in the running-processes gauge (spawned), until it exits. */
  #counted: StdioChild | undefined;

  constructor(key: string, opts: ProcessOptions) {
    this.key = key;
    this.opts = opts;
    this.#armIdle();
  }

  get running(): boolean {
    return this.#child?.running === true;
  }

  get pid(): number | undefined {
    return this.#child?.running ? this.#child.pid : undefined;
  }

  get inFlight(): number {
    return this.#calls.size;
  }

  get retired(): boolean {
    return this.#retired;
  }

  touch(): void {
    this.#lastActivity = Date.now();
  }

  /** Sends a client request; its answer reaches `call`. Never throws: failures go to `call.fail`. */
  async request(call: Call, msg: Record<string, unknown>): Promise<void> {
    this.touch();
    const err = await this.#ensureRunning();
    if (err !== undefined) return call.fail(err);
    if (msg.method === 'initialize' && this.opts.era === 'legacy') return this.#initialize(call, msg);
    this.#send(call, msg);
  }

  #send(call: Call, msg: Record<string, unknown>): void {
    const child = this.#child;
    if (child === undefined || !child.running) return call.fail(EXITED);
    if (child.stdinBacklog > STDIN_BACKLOG_LIMIT) return call.fail(NOT_READING);
    const id = ++this.#seq;
    const params = msg.params;
    if (params !== null && typeof params === 'object' && !Array.isArray(params)) {
      const meta = (params as { _meta?: unknown })._meta;
      if (meta !== null && typeof meta === 'object' && !Array.isArray(meta) && 'progressToken' in meta) {
        const token = (meta as { progressToken?: unknown }).progressToken;
        if (typeof token === 'string' || typeof token === 'number') {
          call.progressToken = token;
          (meta as { progressToken: Id }).progressToken = id;
        }
      }
    }
    this.#calls.set(id, call);
    msg.id = id;
    child.write(msg);
  }

  /** The client went away (2026-07-28: that is cancellation): the server is told, the answer will be dropped. */
  cancel(call: Call): void {
    for (const [id, c] of this.#calls) {
      if (c !== call) continue;
      this.#calls.delete(id);
      this.#child?.write({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: id, reason: 'The client closed the request' },
      });
      return;
    }
  }

  /** A client notification. `notifications/cancelled` is mapped to the process's id of that client's request. */
  notify(msg: Record<string, unknown>, session: Session | undefined): void {
    this.touch();
    const child = this.#child;
    if (child === undefined || !child.running) return;
    if (msg.method === 'notifications/initialized') {
      if (this.#initializedSent || this.#init === undefined) return;
      this.#initializedSent = true;
    } else if (msg.method === 'notifications/cancelled') {
      const params = msg.params as { requestId?: unknown } | undefined;
      const target = params?.requestId;
      let found: number | undefined;
      for (const [id, c] of this.#calls) if (c.session === session && c.clientId === target) found = id;
      if (found === undefined) return;
      (params as { requestId: Id }).requestId = found;
    }
    child.write(msg);
  }

  /** A client's answer to a server-to-client request: accepted only from the session it was sent to. */
  respond(msg: Record<string, unknown>, session: Session | undefined): boolean {
    const id = msg.id as Id;
    if (!this.#serverRequests.has(id) || this.#serverRequests.get(id) !== session) return false;
    this.#serverRequests.delete(id);
    this.touch();
    return this.#child?.write(msg) ?? false;
  }

  /** Legacy initialize: forwarded for the first session, answered from the first result for the next ones. */
  async #initialize(call: Call, msg: Record<string, unknown>): Promise<void> {
    while (this.#initWaiters !== undefined && this.#init === undefined) await new Promise<void>((r) => this.#initWaiters!.push(r));
    if (this.#init !== undefined) {
      return call.finish({ jsonrpc: '2.0', id: call.clientId, result: this.#init.result });
    }
    this.#initWaiters = [];
    const params = msg.params;
    const first: Call = {
      clientId: call.clientId,
      session: call.session,
      progressToken: undefined,
      get closed() {
        return call.closed;
      },
      deliver: (m) => call.deliver(m),
      fail: (e) => {
        this.#releaseInit();
        call.fail(e);
      },
      finish: (m) => {
        if (m.result !== undefined) this.#init = { params, result: m.result };
        this.#releaseInit();
        call.finish(m);
      },
    };
    this.#send(first, msg);
  }

  #releaseInit(): void {
    const waiters = this.#initWaiters ?? [];
    this.#initWaiters = undefined;
    for (const w of waiters) w();
  }

  /** Starts the process when needed; resolves to the error to answer, or undefined once it runs. */
  async #ensureRunning(): Promise<ProxyError | undefined> {
    if (this.#retired) return STOPPED;
    if (this.#child?.running) return undefined;
    if (this.#starting === undefined) this.#starting = this.#start().finally(() => (this.#starting = undefined));
    try {
      await this.#starting;
      return this.#child?.running ? undefined : NOT_STARTED;
    } catch (err) {
      return err as ProxyError;
    }
  }

  async #start(): Promise<void> {
    const wait = this.#restartAt - Date.now();
    if (wait > 0) {
      if (wait > this.opts.startTimeoutMs)
        throw proxyError('GW_ERR_STDIO_EXITED', {
          description: `The local MCP server keeps exiting; it is restarted in ${Math.ceil(wait / 1000)} s`,
          headers: { 'retry-after': String(Math.ceil(wait / 1000)) },
        });
      await new Promise((r) => setTimeout(r, wait));
      if (this.#retired) throw STOPPED;
    }
    const { spec, serviceId, user, log, metrics } = this.opts;
    let extra: Readonly<Record<string, string>> = {};
    try {
      extra = (await this.opts.extraEnv?.()) ?? {};
    } catch (err) {
      log.error(
        { service: serviceId, user: user?.id, err: { message: (err as Error)?.message } },
        'stdio: the environment could not be prepared',
      );
      throw NOT_STARTED;
    }
    const child = new StdioChild(
      spec.command,
      { env: childEnv(spec, user, extra), cwd: spec.cwd, maxLineBytes: this.opts.maxLineBytes },
      {
        message: (m, bytes) => this.#onMessage(child, m, bytes),
        invalidLine: (bytes) => this.#unasked(child, bytes),
        stderr: (line) => log.warn({ service: serviceId, user: user?.id, pid: child.pid, stderr: redact(line) }, 'stdio: server stderr'),
        exit: (info) => this.#onExit(child, info),
      },
    );
    this.#child = child;
    this.#initializedSent = false;
    try {
      await child.spawned;
    } catch (err) {
      log.error(
        { service: serviceId, user: user?.id, command: spec.command[0], err: { code: (err as NodeJS.ErrnoException).code } },
        'stdio: the server could not be started',
      );
      throw NOT_STARTED;
    }
    metrics.started(serviceId);
    this.#counted = child;
    log.info({ service: serviceId, user: user?.id, pid: child.pid, era: this.opts.era }, 'stdio: server started');
    if (this.#init !== undefined) await this.#replayInitialize(child);
  }

  /** After a restart: the first client's initialize and initialized again, so existing sessions go on. */
  async #replayInitialize(child: StdioChild): Promise<void> {
    const id = ++this.#seq;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.opts.startTimeoutMs);
      timer.unref();
      this.#replay = {
        id,
        done: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
      };
      child.write({ jsonrpc: '2.0', id, method: 'initialize', params: this.#init!.params });
    });
    this.#replay = undefined;
    if (!ok || !child.running) {
      void child.stop('start_failed', 'it did not answer initialize');
      throw NOT_STARTED;
    }
    child.write({ jsonrpc: '2.0', method: 'notifications/initialized' });
    this.#initializedSent = true;
  }

  #onMessage(child: StdioChild, msg: Record<string, unknown>, bytes: number): void {
    if (child !== this.#child) return;
    const method = msg.method;
    if (typeof method !== 'string') {
      // A response: to the request that sent its id (restored to the client's id).
      const id = msg.id;
      if (this.#replay !== undefined && id === this.#replay.id) return this.#replay.done(msg.result !== undefined);
      const call = typeof id === 'number' ? this.#calls.get(id) : undefined;
      if (call === undefined) return this.#unasked(child, bytes);
      this.#calls.delete(id as number);
      msg.id = call.clientId;
      this.touch();
      if (!call.closed) call.finish(msg);
      return;
    }
    if (msg.id !== undefined && msg.id !== null) return this.#serverRequest(child, msg);
    if (method === PROGRESS) {
      const params = msg.params as { progressToken?: unknown } | undefined;
      const token = params?.progressToken;
      const call = typeof token === 'number' ? this.#calls.get(token) : undefined;
      if (call === undefined || call.progressToken === undefined) return this.#unasked(child, bytes);
      params!.progressToken = call.progressToken;
      if (!call.closed) call.deliver(msg);
      return;
    }
    this.#notification(child, msg, bytes);
  }

  /** A server notification outside progress: the only request in flight, else the sessions' GET streams. */
  #notification(child: StdioChild, msg: Record<string, unknown>, bytes: number): void {
    const only = this.#onlyCall();
    if (only !== undefined && !only.closed && only.deliver(msg)) return;
    // A shared process serves several people: only list changes (server state, no one's data) go to all.
    const broadcast = this.opts.user !== undefined || (typeof msg.method === 'string' && msg.method.endsWith('/list_changed'));
    let delivered = false;
    if (broadcast) for (const s of this.sessions) if (s.stream?.deliver(msg)) delivered = true;
    if (!delivered) this.#unasked(child, bytes);
  }

  /** A server-to-client request (sampling, elicitation, roots): to one client, or answered with an error. */
  #serverRequest(child: StdioChild, msg: Record<string, unknown>): void {
    const id = msg.id as Id;
    let target: Call | undefined = this.#onlyCall();
    // On a per-user process every client is the same person: the latest request is the likely origin.
    if (target === undefined && this.opts.user !== undefined && this.#calls.size > 0) target = [...this.#calls.values()].at(-1);
    if (this.opts.era === 'legacy') {
      if (target !== undefined && !target.closed && target.deliver(msg)) {
        this.#serverRequests.set(id, target.session);
        return;
      }
      if (target === undefined && this.opts.user !== undefined) {
        for (const s of this.sessions) {
          if (s.stream?.deliver(msg)) {
            this.#serverRequests.set(id, s);
            return;
          }
        }
      }
    }
    // 2026-07-28 has no server-to-client requests (MCP transports: servers use InputRequiredResult instead).
    child.write({ jsonrpc: '2.0', id, error: { code: RPC_NO_CLIENT, message: 'No client can answer this request through the gateway' } });
  }

  #onlyCall(): Call | undefined {
    if (this.#calls.size !== 1) return undefined;
    return this.#calls.values().next().value;
  }

  /** Output nobody asked for (invalid lines, unknown ids, notifications with no listener): the flood guard counts it. */
  #unasked(child: StdioChild, bytes: number): void {
    const now = Date.now();
    if (now - this.#floodWindow > FLOOD_WINDOW_MS) {
      this.#floodWindow = now;
      this.#floodBytes = 0;
    }
    this.#floodBytes += bytes + 1;
    if (this.#floodBytes > FLOOD_FACTOR * this.opts.maxLineBytes)
      child.guard(
        'output_flood',
        `it wrote more than ${FLOOD_FACTOR * this.opts.maxLineBytes} bytes nobody asked for within ${FLOOD_WINDOW_MS / 1000} s`,
      );
  }

  #onExit(child: StdioChild, info: { reason: ExitReason; code: number | null; signal: string | null; detail: string | undefined }): void {
    if (child !== this.#child) return;
    const { serviceId, user, log, metrics } = this.opts;
    const expected = info.reason === 'idle' || info.reason === 'shutdown' || info.reason === 'replaced';
    const lived = Date.now() - child.startedAt;
    if (!expected) {
      if (lived > RESET_AFTER_MS) this.#crashes = 0;
      this.#crashes++;
      this.#restartAt = Date.now() + Math.min(MAX_BACKOFF_MS, RESTART_BACKOFF_MS * 2 ** (this.#crashes - 1));
      metrics.crashed(serviceId, info.reason);
    }
    if (this.#counted === child) {
      this.#counted = undefined;
      metrics.stopped(serviceId);
    }
    const line = {
      service: serviceId,
      user: user?.id,
      pid: child.pid,
      reason: info.reason,
      code: info.code,
      signal: info.signal,
      detail: info.detail,
    };
    if (expected) log.info(line, 'stdio: server stopped');
    else log.warn(line, 'stdio: server exited');
    const err = expected
      ? STOPPED
      : info.detail !== undefined && info.reason !== 'start_failed'
        ? proxyError('GW_ERR_STDIO_EXITED', { description: `The local MCP server was stopped: ${info.detail}` })
        : EXITED;
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    this.#serverRequests.clear();
    this.#replay?.done(false);
    for (const call of calls) if (!call.closed) call.fail(err);
  }

  #armIdle(): void {
    const idle = this.opts.spec.idleTimeoutMs;
    const due = Math.max(50, this.#lastActivity + idle - Date.now());
    this.#idleTimer = setTimeout(() => {
      if (this.#retired) return;
      if (this.#calls.size === 0 && Date.now() - this.#lastActivity >= idle) {
        void this.retire('idle');
        return;
      }
      this.#armIdle();
    }, due);
    this.#idleTimer.unref();
  }

  /** Stops the process for good (idle, shutdown): its sessions end, the manager forgets it. */
  async retire(reason: 'idle' | 'shutdown'): Promise<void> {
    if (this.#retired) return;
    this.#retired = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    for (const s of this.sessions) s.stream?.close();
    this.opts.onRetired(this);
    await this.#child?.stop(reason);
  }

  /** Synchronous last resort at process exit. */
  killNow(): void {
    this.#child?.killNow();
  }
}

/** stderr goes to the log: bearer tokens, JWTs and `secret=`/`token=`/`password=` values never do. */
export function redact(line: string): string {
  return line
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*/gi, '$1 [redacted]')
    .replace(/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '[redacted-jwt]')
    .replace(/\b([\w-]*(?:token|secret|password|passwd|api[_-]?key)[\w-]*)(["']?\s*[:=]\s*["']?)[^\s"'&,;]+/gi, '$1$2[redacted]');
}
