/**
 * The gateway's HTTP application: `createGateway(config)` builds one fastify instance carrying the
 * authorization server (src/authz), the MCP proxy (src/proxy) and the operational routes, on a shared
 * GatewayContext. Tests start it on port 0.
 *
 * The dependency rule (docs/architecture.md, Dependency rules; checked by test/docs/architecture.test.ts): this
 * folder is the composition root and may import every other; src/authz (which issues tokens) and src/proxy
 * (which verifies them) share only src/kernel (the token claims, keys, policy, challenge, revocation list,
 * Origin rule) and import neither each other nor src/http; src/kernel imports only config, errors,
 * observability and storage. No two folders import each other.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { GatewayConfig } from '../config/schema.js';
import { resolveServices } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import { KeyManager } from '../kernel/keys.js';
import { RevocationList } from '../kernel/revocation.js';
import { createStore, type StoreFactoryOptions } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { AccessLog, loggerOptions } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { AuditLog } from '../observability/audit.js';
import { registerErrorHandling } from './errors.js';
import { registerOAuthCors } from './cors.js';
import { registerOperationalRoutes } from './operational-routes.js';
import { registerAuthorizationServer } from '../authz/index.js';
import { registerProxy } from '../proxy/index.js';
import { registerAdminConsole } from '../admin/index.js';
import { StdioServices } from '../stdio/index.js';
import { instrumentStore, registerAvailabilityGuard, StorageMonitor } from './availability.js';
import { RateLimits, registerRateLimits } from './rate-limit.js';
import { registerOAuthTracing } from './tracing.js';
import { VERSION } from '../version.js';
import { CredentialBroker } from '../credentials/broker.js';
import { installProxyFastPath } from './proxy-fast-path.js';

export interface GatewayOptions {
  /** Use this store instead of building one from `config.storage` (the caller keeps ownership). */
  store?: Store;
  /** Where log lines go (default stdout). Tests pass a stream to inspect them. */
  logStream?: NodeJS.WritableStream;
  /** Disable logging entirely. */
  silent?: boolean;
  storeOptions?: StoreFactoryOptions;
  /** The configuration file this configuration was loaded from (the console's `check-config` view). */
  configPath?: string;
}

/** The context as the composition root built it: the full availability monitor and rate limits. */
export interface HttpContext extends GatewayContext {
  availability: StorageMonitor;
  limits: RateLimits;
}

export interface Gateway {
  app: FastifyInstance;
  ctx: HttpContext;
  /** Starts listening on config.host/config.port; resolves to the bound base URL. */
  listen(): Promise<string>;
  /** Graceful stop: stop accepting, let in-flight requests finish up to the grace period, release storage. */
  close(): Promise<void>;
}

export async function createGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const app = Fastify({
    logger: options.silent ? false : loggerOptions(config, options.logStream),
    // fastify accepts a hop count too; its types only list string | boolean | string[].
    trustProxy: config.trust_proxy as boolean | string[],
    genReqId: () => randomUUID(),
    // One access line per request, at completion (src/observability/logger.ts).
    logController: new AccessLog(),
    bodyLimit: 1024 * 1024,
    // Header limits: Node's defaults (16 KiB total) stay in force.
    return503OnClosing: true,
    // Receiving a request (headers and body) must finish within 2 minutes: a client trickling a body
    // forever would otherwise hold its socket (fastify's default is no limit). Responses, such as
    // long-lived SSE streams, are not limited by this.
    requestTimeout: 120_000,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
  });

  // Slow-header clients (slowloris): the whole header block within 15 s (Node's default is 60 s).
  app.server.headersTimeout = 15_000;

  // What is started here is stopped from ONE list, in reverse order: on close, and on a refused start.
  const started = new Started();
  const rawStore = options.store ?? (await createStore(config.storage, options.storeOptions));
  if (!options.store) started.add(() => rawStore.close());
  // Everything below sees the instrumented store: failures are counted and reported to the monitor.
  let availability: StorageMonitor | undefined;
  const store = instrumentStore(rawStore, (op, err) => availability?.reportFailure(op, err));
  try {
    const metrics = new Metrics();
    started.add(() => metrics.close());
    const keys = await KeyManager.load(store, config.keys);
    keys.onRestored = (kids, written) =>
      app.log.warn(
        { kids, written },
        'storage had lost signing keys this instance still uses (storage restarted or failed over without its data?); wrote them back and adopted the stored key set',
      );
    const revocations = await started.start(new RevocationList(store, config.tokens.access_token_ttl + 60));
    availability = await started.start(
      new StorageMonitor(rawStore, { metrics, log: app.log, onDown: () => revocations.markUnhealthy(), onUp: () => revocations.refresh() }),
    );
    const limits = await started.start(
      new RateLimits(config.rate_limits, {
        redis: (rawStore as { redisClient?: unknown }).redisClient,
        keyPrefix: `${config.storage.redis?.key_prefix ?? 'gw:'}ratelimit:`,
        pubsub: store,
        metrics,
        onError: (operation) => metrics.storageErrors.inc({ operation }),
      }),
    );
    // `telemetry`: the OpenTelemetry SDK is loaded only when configured; its buffered spans are exported on close.
    const tracing = config.telemetry ? new (await import('../observability/tracing.js')).Tracing(config.telemetry, VERSION) : undefined;
    if (tracing) started.add(() => tracing.shutdown());
    const ctx: HttpContext = {
      config,
      issuer: config.issuer.replace(/\/+$/, ''),
      services: resolveServices(config),
      store,
      keys,
      revocations,
      log: app.log,
      metrics,
      audit: new AuditLog(app.log),
      availability,
      limits,
      ...(tracing ? { tracing } : {}),
    };
    const credentials = CredentialBroker.fromConfig({ config, issuer: ctx.issuer, store, audit: ctx.audit, metrics, log: app.log });
    if (credentials) {
      ctx.credentials = credentials;
      // A revoked grant (here, or learnt from another instance) takes its user's upstream tokens with it
      // (src/kernel/revocation.ts revokeGrant): drop this instance's recent reads at once.
      revocations.onRevoked(() => credentials.tokens.forgetAll());
    }

    registerErrorHandling(app);
    // First of the onRequest hooks, so that refusals by the ones below (503, 429) are traced too.
    if (tracing) registerOAuthTracing(app, tracing);
    // Global onRequest hooks, before any route: 503 while storage is down, then the rate limits.
    registerAvailabilityGuard(app, availability);
    registerRateLimits(app, { trustProxy: config.trust_proxy });
    registerOperationalRoutes(app, ctx);
    // Before any authorization-server route: CORS preflights and Origin checks for discovery, registration,
    // token, revocation (src/http/cors.ts).
    registerOAuthCors(app, ctx);
    await registerAuthorizationServer(app, ctx);
    // Local (stdio) services, when the configuration has any: the proxy hands them over and stops them on close.
    const serveProxy = await registerProxy(app, ctx, StdioServices.create(ctx));
    // `/{id}/mcp` straight from node:http to the proxy, in front of fastify's routing (src/http/proxy-fast-path.ts).
    installProxyFastPath(app, serveProxy, ctx.services.keys());
    // The operator console (`admin`); registers nothing when it is off.
    await registerAdminConsole(app, ctx, { configPath: options.configPath });

    app.addHook('onClose', () => started.stopAll());

    let closing: Promise<void> | undefined;
    return {
      app,
      ctx,
      async listen() {
        const address = await app.listen({ host: config.host, port: config.port });
        return address.replace('[::1]', 'localhost');
      },
      close() {
        closing ??= closeWithGrace(app, config.limits.shutdown_grace * 1000);
        return closing;
      },
    };
  } catch (err) {
    // A refused start (bad provider settings, the dev sign-in on a public address) leaves nothing running.
    await app.close().catch(() => undefined);
    await started.stopAll();
    throw err;
  }
}

/** A component createGateway starts: it owns its own start and stop. */
interface Lifecycle {
  start(): Promise<unknown> | unknown;
  stop(): Promise<unknown> | unknown;
}

/** The components started so far, stopped in reverse order exactly once (a stop that fails is logged by its owner). */
class Started {
  readonly #stops: Array<() => Promise<unknown> | unknown> = [];

  async start<T extends Lifecycle>(component: T): Promise<T> {
    await component.start();
    this.#stops.push(() => component.stop());
    return component;
  }

  add(stop: () => Promise<unknown> | unknown): void {
    this.#stops.push(stop);
  }

  async stopAll(): Promise<void> {
    for (const stop of this.#stops.splice(0).reverse())
      await Promise.resolve()
        .then(stop)
        .catch(() => undefined);
  }
}

async function closeWithGrace(app: FastifyInstance, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  // Keep-alive connections whose response finished after close() began are idle now: close them as they
  // become idle, so close() ends when the in-flight work is done rather than at the grace deadline.
  const sweeper = setInterval(() => app.server.closeIdleConnections?.(), 250);
  sweeper.unref();
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      // Past the deadline: cut the remaining connections (long-lived streams) so close() can finish.
      app.server.closeAllConnections?.();
      resolve();
    }, graceMs);
    timer.unref();
  });
  try {
    await Promise.race([app.close(), deadline.then(() => app.close())]);
  } finally {
    clearInterval(sweeper);
    if (timer) clearTimeout(timer);
  }
}
