/**
 * The OAuth endpoints' spans (src/observability/tracing.ts): one global onRequest hook, registered only
 * when `telemetry` is configured, that starts a span for the OAuth and interaction paths and leaves at
 * once for every other path (the proxy starts its own spans).
 */
import type { FastifyInstance } from 'fastify';
import { oauthRoute, type Tracing } from '../observability/tracing.js';

export function registerOAuthTracing(app: FastifyInstance, tracing: Tracing): void {
  app.addHook('onRequest', (req, reply, done) => {
    const url = req.raw.url ?? '/';
    if (url.startsWith('/oauth/') || url.startsWith('/interaction/')) {
      const q = url.indexOf('?');
      const route = oauthRoute(q === -1 ? url : url.slice(0, q));
      if (route) tracing.oauth(req.raw, reply.raw, route);
    }
    done();
  });
}
