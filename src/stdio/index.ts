/**
 * Local (stdio) MCP servers as services (docs/stdio.md): `StdioServices` keeps, per `command` service,
 * the processes (one per user and protocol era, or one shared per era) and the legacy sessions opened on
 * them, enforces `max_processes`, and stops everything at shutdown (process groups, no orphans). The HTTP
 * side of each request is in http.ts, the JSON-RPC multiplexing in process.ts, the process in child.ts.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { STDIO_UPSTREAM_TOKEN_ENV } from '../config/rules.js';
import type { StdioSpec } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import type { VerifiedUser } from '../kernel/claims.js';
import type { LocalExchange, LocalServices } from '../proxy/index.js';
import { proxyError, sendProxyError, type ProxyError } from '../proxy/respond.js';
import { handleExchange } from './http.js';
import { LocalProcess, type Era, type Session } from './process.js';
import { StdioMetrics } from './metrics.js';

export const STDIO_SESSION_PREFIX = 'gw:stdio-session:';
const SESSION_TTL_S = 86_400;

const LIMIT = proxyError('GW_ERR_STDIO_LIMIT');
const INTERNAL = proxyError('GW_ERR_INTERNAL');

interface ServiceProcesses {
  spec: StdioSpec;
  processes: Map<string, LocalProcess>;
  /** upstream_auth: the newest upstream token seen per process key, read when the process (re)starts. */
  upstreamTokens: Map<string, string>;
}

export class StdioServices implements LocalServices {
  /** Names this gateway instance in session records, so another instance can say where a session lives. */
  readonly instanceId = randomUUID();
  readonly #ctx: GatewayContext;
  readonly #services = new Map<string, ServiceProcesses>();
  readonly #sessions = new Map<string, Session>();
  readonly #metrics: StdioMetrics;
  readonly #onExit = () => this.#killAll();
  #closed = false;

  /** The bridge for the configuration's `command` services, or undefined when there are none. */
  static create(ctx: GatewayContext): StdioServices | undefined {
    return [...ctx.services.values()].some((s) => s.stdio !== undefined) ? new StdioServices(ctx) : undefined;
  }

  constructor(ctx: GatewayContext) {
    this.#ctx = ctx;
    this.#metrics = new StdioMetrics(ctx.metrics.registry);
    for (const s of ctx.services.values())
      if (s.stdio !== undefined) this.#services.set(s.id, { spec: s.stdio, processes: new Map(), upstreamTokens: new Map() });
    // Last resort when the gateway exits without close() (an uncaught error): no process group outlives it.
    // (On SIGKILL nothing runs; the servers then see their stdin close, which the stdio transport says ends them.)
    process.on('exit', this.#onExit);
  }

  get log() {
    return this.#ctx.log;
  }

  get store() {
    return this.#ctx.store;
  }

  get metrics() {
    return this.#ctx.metrics;
  }

  handle(exchange: LocalExchange): void {
    handleExchange(this, exchange).catch((err: unknown) => {
      this.#ctx.log.error({ service: exchange.serviceId, err: { message: (err as Error)?.message } }, 'stdio: unexpected failure');
      sendProxyError(exchange.res, false, INTERNAL, exchange.cors);
    });
  }

  spec(serviceId: string): StdioSpec | undefined {
    return this.#services.get(serviceId)?.spec;
  }

  /** The process for this user (or the shared one) in this era: existing, or new within `max_processes`. */
  processFor(serviceId: string, era: Era, user: VerifiedUser | undefined, ex: LocalExchange): LocalProcess | ProxyError {
    const svc = this.#services.get(serviceId)!;
    const owner = svc.spec.perUser ? user : undefined;
    const key = `${era}\n${owner?.id ?? ''}`;
    if (owner !== undefined && ex.upstreamToken !== undefined) svc.upstreamTokens.set(key, ex.upstreamToken);
    const existing = svc.processes.get(key);
    if (existing !== undefined && !existing.retired) return existing;
    if (this.#closed) return proxyError('GW_ERR_STDIO_EXITED', { description: 'The gateway is shutting down' });
    if (svc.processes.size >= svc.spec.maxProcesses) {
      this.#ctx.log.warn({ service: serviceId, max_processes: svc.spec.maxProcesses }, 'stdio: max_processes reached, request refused');
      return LIMIT;
    }
    const p = new LocalProcess(key, {
      serviceId,
      spec: svc.spec,
      era,
      user: owner,
      maxLineBytes: ex.maxRequestBytes,
      startTimeoutMs: ex.timeoutMs,
      log: this.#ctx.log,
      metrics: this.#metrics,
      onRetired: (gone) => this.#retired(serviceId, gone),
      // upstream_auth (per-user processes only): the token valid when the process starts (docs/stdio.md).
      ...(owner !== undefined && ex.upstreamToken !== undefined
        ? { extraEnv: async () => ({ [STDIO_UPSTREAM_TOKEN_ENV]: svc.upstreamTokens.get(key) ?? '' }) }
        : {}),
    });
    svc.processes.set(key, p);
    return p;
  }

  /** A new legacy session on `process` for `userId`; recorded in storage so other instances can point here. */
  async createSession(serviceId: string, process: LocalProcess, userId: string | undefined): Promise<Session> {
    // MCP transports, session management: globally unique and cryptographically secure, visible ASCII.
    const id = randomBytes(24).toString('base64url');
    const session: Session = { id, userId, process, stream: undefined };
    this.#sessions.set(id, session);
    process.sessions.add(session);
    await this.#ctx.store
      .set(sessionKey(serviceId, id), { instance: this.instanceId }, { ttlSeconds: SESSION_TTL_S })
      .catch((err: unknown) =>
        this.#ctx.log.warn({ service: serviceId, err: { message: (err as Error)?.message } }, 'stdio: session record not written'),
      );
    return session;
  }

  /**
   * The session `id` of `serviceId` for `userId`: a local one owned by that user, `unknown` (never issued,
   * ended, or another user's: answered alike), or `elsewhere` (it lives on another gateway instance).
   */
  async findSession(serviceId: string, id: string, userId: string | undefined): Promise<Session | 'unknown' | 'elsewhere'> {
    const local = this.#sessions.get(id);
    if (local !== undefined) {
      if (local.userId !== userId || local.process.opts.serviceId !== serviceId || local.process.retired) return 'unknown';
      return local;
    }
    if (id.length > 256) return 'unknown';
    const rec = await this.#ctx.store.get<{ instance?: unknown }>(sessionKey(serviceId, id)).catch(() => undefined);
    const instance = rec?.value?.instance;
    return typeof instance === 'string' && instance !== this.instanceId ? 'elsewhere' : 'unknown';
  }

  async endSession(serviceId: string, session: Session): Promise<void> {
    this.#forget(session);
    await this.#ctx.store.delete(sessionKey(serviceId, session.id)).catch(() => undefined);
  }

  #forget(session: Session): void {
    this.#sessions.delete(session.id);
    session.process.sessions.delete(session);
    session.stream?.close();
  }

  #retired(serviceId: string, p: LocalProcess): void {
    const svc = this.#services.get(serviceId);
    if (svc?.processes.get(p.key) === p) {
      svc.processes.delete(p.key);
      svc.upstreamTokens.delete(p.key);
    }
    for (const s of [...p.sessions]) {
      this.#forget(s);
      void this.#ctx.store.delete(sessionKey(serviceId, s.id)).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#services.values()].flatMap((s) => [...s.processes.values()]);
    await Promise.allSettled(all.map((p) => p.retire('shutdown')));
    process.off('exit', this.#onExit);
  }

  #killAll(): void {
    for (const s of this.#services.values()) for (const p of s.processes.values()) p.killNow();
  }
}

/** Session ids are stored hashed (storage never holds a usable id), scoped to the service. */
function sessionKey(serviceId: string, id: string): string {
  return `${STDIO_SESSION_PREFIX}${serviceId}:${createHash('sha256').update(id).digest('hex')}`;
}
