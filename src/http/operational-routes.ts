/**
 * Operational routes: liveness, readiness, the service catalogue (seed shapes), Prometheus metrics.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';
import { ERROR_CODES } from '../errors.js';
import type { StoreHealth } from '../storage/store.js';
import { VERSION } from '../version.js';
import { sendError } from './errors.js';

export function registerOperationalRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  // Liveness: the process answers. Storage state is reported but does not fail liveness.
  app.get('/health', async () => {
    const storage = await ctx.availability.check();
    return {
      status: storage.ok && !ctx.availability.degraded ? 'healthy' : 'degraded',
      timestamp: Date.now() / 1000,
      version: VERSION,
      storage: storageView(ctx, storage),
    };
  });

  // Readiness: 503 while storage is unreachable, so a load balancer takes the instance out. Also 503 on
  // the `fallback: memory` stand-in (docs/storage.md: a configured back-end that cannot be reached fails
  // readiness); that instance still serves whoever reaches it directly. See docs/operations-multi-instance.md.
  app.get('/ready', async (_request, reply) => {
    const storage = await ctx.availability.check();
    const degraded = ctx.availability.degraded;
    const ready = storage.ok && !degraded;
    // Not a refusal (the body is the readiness report), but the same wait the storage outage answers with.
    if (!ready) void reply.code(503).header('retry-after', String(ERROR_CODES.GW_ERR_STORE_UNAVAILABLE.retryAfter));
    return {
      status: ready ? 'ready' : degraded ? 'degraded' : 'not_ready',
      storage: { ...storageView(ctx, storage), configured: ctx.config.storage.type },
      revocation: { healthy: ctx.revocations.healthy, pubsub: ctx.revocations.subscribed },
      rate_limits: { enabled: ctx.limits.enabled, counters: ctx.limits.kind },
      // Reported, not counted against readiness: an identity provider outage is shared by every instance,
      // and taking them all out of the load balancer would also stop the requests of people already
      // signed in (their tokens do not need the provider). Monitor `identity_provider.state` instead.
      ...(ctx.upstream ? { identity_provider: ctx.upstream.view() } : {}),
      ...(ctx.upstreams ? { identity_providers: ctx.upstreams.map((u) => u.view()) } : {}),
    };
  });

  app.get('/services', async () => {
    const services: Record<string, unknown> = {};
    for (const s of ctx.services.values()) {
      services[s.id] = { name: s.name, url: s.canonicalUri, auth_required: s.authRequired, scopes: s.scopes };
    }
    return { services };
  });

  app.get<{ Params: { id: string } }>('/services/:id', async (request, reply) => {
    const s = ctx.services.get(request.params.id);
    if (!s) return sendError(reply, 'GW_ERR_NOT_FOUND', 'Service not found');
    return {
      id: s.id,
      name: s.name,
      url: s.canonicalUri,
      auth_required: s.authRequired,
      scopes: s.scopes,
      oauth_provider: s.config.oauth_provider ?? null,
      resource_metadata: s.resourceMetadataUrl,
    };
  });

  app.get('/metrics', async (_request, reply) => {
    // With `workers` > 1, every worker's metrics (src/observability/cluster-metrics.ts).
    const body = await ctx.metrics.scrape();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(body);
  });
}

function storageView(ctx: GatewayContext, h: StoreHealth) {
  return {
    healthy: h.ok,
    backend_type: ctx.config.storage.type,
    backend: h.backend,
    degraded: ctx.availability.degraded,
    // No `detail`: it can name hosts, ports or paths, and these routes are unauthenticated (the detail is
    // logged by the storage monitor when the state changes).
  };
}
