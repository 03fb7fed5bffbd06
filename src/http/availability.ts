/**
 * Storage availability while running (docs/operations-multi-instance.md, "When Redis fails").
 *
 * - `StorageMonitor` knows whether the storage back-end is usable: it calls `store.health()` every
 *   `intervalMs` (1 s) and is told at once when a store operation fails with GW_ERR_STORE_UNAVAILABLE
 *   (through `instrumentStore`). Going down marks the revocation list unhealthy at once (so a fail-closed
 *   proxy answers 503 without waiting for its next poll); coming back re-reads the revocation markers
 *   before anything is trusted again. It keeps `mcp_gateway_storage_up{backend}` current.
 * - `instrumentStore` wraps the store that the rest of the gateway uses: every failed operation is counted
 *   in `mcp_gateway_storage_errors_total{operation}` and reported to the monitor. Values pass untouched.
 * - `registerAvailabilityGuard` adds a global onRequest hook: while storage is down, the OAuth and
 *   sign-in endpoints (`/oauth/*` except the JWKS, `/interaction/*`) answer
 *   `503 {"error":"temporarily_unavailable"}` with `Retry-After` instead of failing half-way. The proxy is
 *   not guarded here: it keeps its own revocation fail mode (closed: 503; open: issued tokens keep working).
 *
 * Writes attempted during an outage are refused (the store throws, nothing is queued: the Redis client
 * runs with `enableOfflineQueue: false`), so nothing is half-written; everything recovers without a restart
 * when the back-end is back.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isGatewayError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { ListedRecord, SetOptions, Store, StoredRecord, StoreHealth } from '../storage/store.js';
import { sendError } from './errors.js';

export interface StorageMonitorOptions {
  intervalMs?: number;
  metrics?: Metrics;
  /** Logs state changes (never secrets: store health details are already redacted by the back-ends). */
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Storage went down (first failure or failed health check). */
  onDown?: () => void;
  /** Storage answered again after being down. */
  onUp?: () => void | Promise<void>;
}

export class StorageMonitor {
  readonly #store: Store;
  readonly #opts: StorageMonitorOptions;
  #up = true;
  #last: StoreHealth | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<StoreHealth> | undefined;

  /** A synchronous connection probe, when the back-end has one (Redis: the client's state). */
  readonly #probe: (() => boolean) | undefined;

  constructor(store: Store, options: StorageMonitorOptions = {}) {
    this.#store = store;
    this.#opts = options;
    const client = (store as { redisClient?: { status?: string } }).redisClient;
    this.#probe = client ? () => client.status === 'ready' : undefined;
  }

  /**
   * `up`, plus the back-end's synchronous probe: closes the window between a lost connection and the
   * next periodic check, so a request is refused with our 503 instead of failing inside oidc-provider.
   */
  admits(): boolean {
    if (!this.#up) return false;
    if (this.#probe === undefined || this.#probe()) return true;
    this.#markDown('connection lost');
    return false;
  }

  /** Whether storage is usable right now (as far as this process knows). */
  get up(): boolean {
    return this.#up;
  }

  /** The last health answer (undefined before the first check). */
  get last(): StoreHealth | undefined {
    return this.#last;
  }

  /** True when the store is the explicit in-memory stand-in for an unreachable Redis (`fallback: memory`). */
  get degraded(): boolean {
    return this.#last?.detail?.startsWith('DEGRADED:') === true || this.#store.backend.includes('fallback');
  }

  async start(): Promise<void> {
    const h = await this.check();
    if (this.degraded)
      this.#opts.log?.warn(
        { backend: h.backend, detail: h.detail },
        'storage is DEGRADED: running on the in-memory fallback; /ready answers 503 until the gateway is restarted with Redis reachable',
      );
    const ms = this.#opts.intervalMs ?? 1000;
    this.#timer = setInterval(() => void this.check(), ms);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Runs (or joins) one health check and updates the state. */
  check(): Promise<StoreHealth> {
    this.#checking ??= (async () => {
      try {
        let h: StoreHealth;
        try {
          h = await this.#store.health();
        } catch (err) {
          // health() must not throw; if a back-end does anyway, that is a failed check.
          h = { ok: false, backend: this.#store.backend, detail: (err as Error)?.message ?? 'health check failed' };
        }
        this.#last = h;
        this.#opts.metrics?.storageUp.set({ backend: h.backend }, h.ok ? 1 : 0);
        this.#opts.metrics?.storageDegraded.set(this.degraded ? 1 : 0);
        if (h.ok) await this.#markUp();
        else this.#markDown(h.detail ?? 'health check failed');
        return h;
      } finally {
        this.#checking = undefined;
      }
    })();
    return this.#checking;
  }

  /** A store operation failed; `operation` is the Store method name (bounded label set). */
  reportFailure(operation: string, err: unknown): void {
    this.#opts.metrics?.storageErrors.inc({ operation });
    if (isGatewayError(err) && err.code === 'GW_ERR_STORE_UNAVAILABLE') this.#markDown(err.message);
  }

  #markDown(reason: string): void {
    if (!this.#up) return;
    this.#up = false;
    this.#opts.metrics?.storageUp.set({ backend: this.#store.backend }, 0);
    this.#opts.log?.warn({ backend: this.#store.backend, reason }, 'storage unavailable: OAuth endpoints answer 503 until it is back');
    this.#opts.onDown?.();
  }

  async #markUp(): Promise<void> {
    if (this.#up) return;
    // Recovery hooks first (re-read revocation markers), then admit traffic again.
    try {
      await this.#opts.onUp?.();
    } catch {
      /* the next check retries */
    }
    this.#up = true;
    this.#opts.log?.info({ backend: this.#store.backend }, 'storage available again');
  }
}

/**
 * The store seen by the rest of the gateway: the same contract, with failures counted and reported.
 * `health` and `close` pass through (the monitor calls `health` itself; `close` belongs to the owner).
 */
export function instrumentStore(store: Store, onFailure: (operation: string, err: unknown) => void): Store {
  const wrap =
    <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args);
      } catch (err) {
        // TypeErrors are caller bugs (invalid key, unserialisable value), not storage failures.
        if (!(err instanceof TypeError)) onFailure(operation, err);
        throw err;
      }
    };
  const s = store;
  const wrapped: Store = {
    get backend() {
      return s.backend;
    },
    get: wrap('get', <T>(key: string): Promise<StoredRecord<T> | undefined> => s.get<T>(key)) as Store['get'],
    set: wrap('set', (key: string, value: unknown, options?: SetOptions) => s.set(key, value, options)),
    setIfAbsent: wrap('setIfAbsent', (key: string, value: unknown, options?: SetOptions) => s.setIfAbsent(key, value, options)),
    delete: wrap('delete', (key: string) => s.delete(key)),
    consume: wrap('consume', (key: string) => s.consume(key)),
    take: wrap('take', <T>(key: string): Promise<T | undefined> => s.take<T>(key)) as Store['take'],
    listByIndex: wrap('listByIndex', (tag: string) => s.listByIndex(tag)),
    deleteByIndex: wrap('deleteByIndex', (tag: string) => s.deleteByIndex(tag)),
    list: wrap('list', <T>(prefix: string, options?: { limit?: number }): Promise<ListedRecord<T>[]> =>
      s.list<T>(prefix, options),
    ) as Store['list'],
    health: () => s.health(),
    close: () => s.close(),
  };
  if (s.publish) wrapped.publish = wrap('publish', (channel: string, message: string) => s.publish!(channel, message));
  if (s.subscribe)
    wrapped.subscribe = wrap('subscribe', (channel: string, handler: (message: string) => void) => s.subscribe!(channel, handler));
  return wrapped;
}

/** Routes that need storage: the authorization server and the sign-in pages. The JWKS is served from memory. */
export function needsStorage(url: string): boolean {
  if (url.startsWith('/oauth/')) return !url.startsWith('/oauth/jwks');
  return url.startsWith('/interaction/');
}

/**
 * The registry's GW_ERR_STORE_UNAVAILABLE (RFC 6749 §4.1.2.1 `temporarily_unavailable`, its Retry-After),
 * the answer the proxy gives for the same outage; never with internal detail.
 */
export function sendStorageUnavailable(reply: FastifyReply): FastifyReply {
  return sendError(reply, 'GW_ERR_STORE_UNAVAILABLE', 'The authorization server storage is unavailable, try again later');
}

/** Global onRequest hook (register before the authz routes: global hooks run before route-level ones). */
export function registerAvailabilityGuard(app: FastifyInstance, monitor: StorageMonitor): void {
  // Callback style: no promise per request on the fast path (every proxied request passes here).
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    if (!needsStorage(request.url) || monitor.admits()) return done();
    sendStorageUnavailable(reply);
  });
}
