/**
 * The OAuth 2.1 authorization server (oidc-provider 9) mounted on the gateway's fastify instance at the
 * root issuer (stack-notes §5.2): only the provider's own paths are handed to it, from a route-level
 * onRequest hook (before fastify parses the body), so nothing else is swallowed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { GatewayContext } from '../context.js';
import { announceUpstream, createUpstream } from '../upstream/index.js';
import { registerInteractionRoutes } from './interactions.js';
import { registerMetadataRoutes } from './metadata.js';
import { ROUTES } from './provider.js';
import { ProviderHost } from './provider-host.js';
import { registrationHandler } from './registration.js';

export { rotateSigningKey } from './key-rotation.js';
export { buildBearerChallenge } from './challenge.js';
export { checkPolicy } from './policy.js';

/** oidc-provider's own body limit (shared/selective_body.js). */
const PROVIDER_BODY_LIMIT = 56 * 1024;

const METHODS: HTTPMethods[] = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'];

/** The provider's routes; `/*` variants cover `/oauth/authorize/:uid` (resume) and `/oauth/register/:id`. */
function providerPaths(ctx: GatewayContext): string[] {
  const paths: string[] = [ROUTES.authorization, `${ROUTES.authorization}/*`, ROUTES.token, ROUTES.revocation, ROUTES.introspection, ROUTES.jwks];
  // POST /oauth/register is checked first (registration.ts); RFC 7592 reads go straight through.
  if (ctx.config.registration.mode !== 'off') paths.push(`${ROUTES.registration}/*`);
  return paths;
}

const urlEncoded = (_req: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => {
  done(null, Object.fromEntries(new URLSearchParams(body)));
};

export async function registerAuthorizationServer(app: FastifyInstance, ctx: GatewayContext): Promise<void> {
  const host = new ProviderHost(ctx);
  host.startKeyPolling();
  app.addHook('onClose', async () => host.stop());
  const upstream = createUpstream(ctx.config);
  if (upstream && !('local' in upstream)) ctx.upstream = upstream.health;
  void announceUpstream(ctx.config, upstream, ctx.log);

  const handOver = async (req: FastifyRequest, reply: FastifyReply) => {
    // oidc-provider reads at most 56 KiB of a form body and answers a larger one with 400 "failed to parse
    // the request body". A declared oversized body is refused up front with the right status, unread.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > PROVIDER_BODY_LIMIT) {
      return reply.code(413).header('cache-control', 'no-store').header('connection', 'close').send({ error: 'invalid_request', error_description: 'request body too large' });
    }
    reply.hijack();
    await host.callback(req.raw, reply.raw);
  };
  for (const url of providerPaths(ctx)) {
    app.route({ method: METHODS, url, onRequest: handOver, handler: async () => undefined });
  }

  if (ctx.config.registration.mode !== 'off') {
    app.route({ method: ['OPTIONS', 'GET'], url: ROUTES.registration, onRequest: handOver, handler: async () => undefined });
    app.post(ROUTES.registration, { bodyLimit: 64 * 1024 }, registrationHandler(() => host.callback as (req: IncomingMessage, res: ServerResponse) => Promise<void>));
  } else {
    // registration.mode: off. Not advertised in the metadata; a client that tries anyway learns why.
    app.route({
      method: ['GET', 'POST'],
      url: ROUTES.registration,
      handler: async (_req, reply) =>
        reply.code(404).header('cache-control', 'no-store').send({ error: 'invalid_request', error_description: 'dynamic client registration is disabled on this gateway; use a pre-registered client or a client ID metadata document' }),
    });
  }
  registerMetadataRoutes(app, ctx);

  // Form posts (consent, abort) are parsed only in this scope; the proxy keeps raw bodies.
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, urlEncoded);
    registerInteractionRoutes(scope, ctx, host, upstream);
  });
}
