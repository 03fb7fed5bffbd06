/**
 * Operational routes: liveness, readiness, the service catalogue (seed shapes), Prometheus metrics.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';
import { VERSION } from '../version.js';

export function registerOperationalRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  // Liveness: the process answers. Storage state is reported but does not fail liveness.
  app.get('/health', async () => {
    const storage = await ctx.store.health();
    ctx.metrics.storageUp.set({ backend: storage.backend }, storage.ok ? 1 : 0);
    return {
      status: storage.ok ? 'healthy' : 'degraded',
      timestamp: Date.now() / 1000,
      version: VERSION,
      storage: { healthy: storage.ok, backend_type: ctx.config.storage.type, backend: storage.backend, ...(storage.detail ? { detail: storage.detail } : {}) },
    };
  });

  // Readiness: 503 while storage is unreachable, so a load balancer takes the instance out.
  app.get('/ready', async (_request, reply) => {
    const storage = await ctx.store.health();
    ctx.metrics.storageUp.set({ backend: storage.backend }, storage.ok ? 1 : 0);
    const ready = storage.ok && storage.backend === backendName(ctx.config.storage.type);
    if (!ready) void reply.code(503).header('retry-after', '5');
    return {
      status: ready ? 'ready' : 'not_ready',
      storage: { healthy: storage.ok, configured: ctx.config.storage.type, backend: storage.backend, ...(storage.detail ? { detail: storage.detail } : {}) },
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
    if (!s) return reply.code(404).send({ error: 'not_found', error_description: 'Service not found' });
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
    const body = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(body);
  });
}

function backendName(type: string): string {
  return type;
}
