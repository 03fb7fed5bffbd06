/**
 * The OAuth 2.1 authorization server (oidc-provider 9) mounted on the gateway's fastify instance at the
 * root issuer (RFC 8414 §3: metadata at the origin root; docs/authorization.md): only the provider's own paths are handed to it, from a route-level
 * onRequest hook (before fastify parses the body), so nothing else is swallowed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { GatewayContext } from '../context.js';
import { sendError } from '../kernel/error-reply.js';
import { announceUpstreams, UpstreamRegistry } from '../upstream/index.js';
import { registerInteractionRoutes } from './interactions.js';
import { registerMetadataRoutes } from './metadata.js';
import { allScopes, ROUTES } from './provider.js';
import { ProviderHost } from './provider-host.js';
import { registrationHandler } from './registration.js';
import { readBody, replayWithBody } from './replay.js';
import { wrapStructuredToken } from './structured-tokens.js';

/** oidc-provider's own body limit (shared/selective_body.js). */
const PROVIDER_BODY_LIMIT = 56 * 1024;

const METHODS: HTTPMethods[] = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'];

/** The provider's routes; `/*` variants cover `/oauth/authorize/:uid` (resume), `/oauth/register/:id` and `/oauth/logout/confirm`. */
function providerPaths(ctx: GatewayContext): string[] {
  const paths: string[] = [
    ROUTES.authorization,
    `${ROUTES.authorization}/*`,
    ROUTES.token,
    ROUTES.revocation,
    ROUTES.introspection,
    ROUTES.jwks,
    ROUTES.end_session,
    `${ROUTES.end_session}/*`,
  ];
  // POST /oauth/register is checked first (registration.ts); RFC 7592 reads go straight through.
  if (ctx.config.registration.mode !== 'off') paths.push(`${ROUTES.registration}/*`);
  return paths;
}

/** The endpoints where a JWT access token is wrapped for oidc-provider (structured-tokens.ts, P4). */
const TOKEN_LOOKUP_PATHS = new Set<string>([ROUTES.revocation, ROUTES.introspection]);

/**
 * RFC 7009 / RFC 7662 form posts carrying a JWT `token`: replayed with the token wrapped; other requests
 * as they are. Undefined: the (undeclared, chunked) body is over oidc-provider's limit.
 */
async function withStructuredToken(req: FastifyRequest): Promise<IncomingMessage | undefined> {
  const path = req.url.split('?', 1)[0]!;
  if (
    req.method !== 'POST' ||
    !TOKEN_LOOKUP_PATHS.has(path) ||
    !String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
  )
    return req.raw;
  const body = await readBody(req.raw, PROVIDER_BODY_LIMIT);
  if (body === undefined) return undefined;
  const params = new URLSearchParams(body.toString('utf8'));
  if (!wrapStructuredToken(params)) return replayWithBody(req.raw, body, String(req.headers['content-type']));
  return replayWithBody(req.raw, Buffer.from(params.toString(), 'utf8'), String(req.headers['content-type']));
}

const urlEncoded = (_req: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => {
  done(null, Object.fromEntries(new URLSearchParams(body)));
};

export async function registerAuthorizationServer(app: FastifyInstance, ctx: GatewayContext): Promise<void> {
  const host = new ProviderHost(ctx);
  host.startKeyPolling();
  app.addHook('onClose', async () => host.stop());
  const upstreams = new UpstreamRegistry(ctx.config);
  const redirecting = upstreams.redirecting;
  if (redirecting[0]) ctx.upstream = redirecting[0].health;
  if (redirecting.length > 1) ctx.upstreams = redirecting.map((u) => u.health);
  void announceUpstreams(ctx.config, upstreams, ctx.log);
  // upstream_auth (src/credentials): refresh and exchange at each provider's own token endpoint.
  for (const u of redirecting) ctx.credentials?.useProvider(u.name, u.tokenEndpoint);
  // CORS and Origin checks of these endpoints are registered by the composition root before this
  // (src/http/cors.ts registerOAuthCors, from src/http/app.ts): the authorization server never imports src/http.

  const handOver = async (req: FastifyRequest, reply: FastifyReply) => {
    // oidc-provider reads at most 56 KiB of a form body and answers a larger one with 400 "failed to parse
    // the request body". A declared oversized body is refused up front with the right status, unread.
    // The registry's one answer for an oversized body (src/errors.ts), unread: close the connection after it.
    const tooLarge = () => sendError(reply.header('connection', 'close'), 'GW_ERR_BODY_TOO_LARGE');
    if (Number(req.headers['content-length'] ?? 0) > PROVIDER_BODY_LIMIT) return tooLarge();
    const raw = await withStructuredToken(req);
    if (raw === undefined) return tooLarge();
    reply.hijack();
    await host.callback(raw, reply.raw);
  };
  // Rate limits are declared with the routes they protect (docs/operations-multi-instance.md): the first
  // route-level hook, before oidc-provider is handed the request. The resume URL is not limited.
  const limited = ctx.limits.guard.bind(ctx.limits);
  const bucketOf = (url: string) =>
    url === ROUTES.token
      ? 'token'
      : url === ROUTES.authorization
        ? 'authorize'
        : url.startsWith(ROUTES.registration)
          ? 'register'
          : undefined;
  for (const url of providerPaths(ctx)) {
    const bucket = bucketOf(url);
    app.route({ method: METHODS, url, onRequest: bucket ? [limited(bucket), handOver] : handOver, handler: async () => undefined });
  }

  if (ctx.config.registration.mode !== 'off') {
    app.route({
      method: ['OPTIONS', 'GET'],
      url: ROUTES.registration,
      onRequest: [limited('register'), handOver],
      handler: async () => undefined,
    });
    app.post(
      ROUTES.registration,
      { bodyLimit: 64 * 1024, onRequest: limited('register') },
      registrationHandler(
        () => host.callback as (req: IncomingMessage, res: ServerResponse) => Promise<void>,
        allScopes(ctx).filter((s) => s !== 'openid'),
      ),
    );
  } else {
    // registration.mode: off. Not advertised in the metadata; a client that tries anyway learns why.
    app.route({
      method: ['GET', 'POST'],
      url: ROUTES.registration,
      onRequest: limited('register'),
      handler: async (_req, reply) => sendError(reply, 'GW_ERR_REGISTRATION_DISABLED'),
    });
  }
  registerMetadataRoutes(app, ctx);

  // Form posts (consent, abort) are parsed only in this scope; the proxy keeps raw bodies.
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, urlEncoded);
    registerInteractionRoutes(scope, ctx, host, upstreams);
  });
}
