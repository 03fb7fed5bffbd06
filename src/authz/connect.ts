/**
 * The connect link of `upstream_auth` services (docs/upstream-auth.md): `GET /connect/{service}` sends the
 * person through the service's identity provider again (state, nonce, PKCE as for a sign-in) and keeps the
 * provider's tokens for whoever signed in there, under their own user id. The link carries nothing but the
 * service: it is not pre-authenticated and cannot attach one person's provider account to another's user
 * (MCP elicitation, URL mode: the user who completes it is identified by the sign-in itself).
 *
 * The provider redirects to the gateway's one callback (`/oauth/callback`); interactions.ts hands the
 * states it does not know to `finishConnect`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import { checkPolicy } from '../kernel/policy.js';
import type { UpstreamChecks, UpstreamIdp, UpstreamTokenResponse } from '../upstream/index.js';
import { UpstreamError } from '../upstream/index.js';
import { messagePage, sendPage } from './html.js';

const CONNECT_PREFIX = 'gw:connect-state:';

interface ConnectAttempt {
  service: string;
  checks: UpstreamChecks;
}

function notFound(reply: FastifyReply): void {
  reply.hijack();
  sendPage(
    reply.raw,
    404,
    'Unknown service',
    messagePage('Unknown service', 'This gateway has no service with that name that needs an account to be connected.'),
  );
}

export function registerConnectRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
  upstream: UpstreamIdp | undefined,
  callbackUrl: string,
): void {
  const credentials = ctx.credentials;
  if (!credentials || !upstream) return;
  app.get<{ Params: { service: string } }>('/connect/:service', { onRequest: ctx.limits.guard('authorize') }, async (req, reply) => {
    const service = ctx.services.get(req.params.service);
    if (!service?.config.upstream_auth || service.config.oauth_provider !== upstream.name) return notFound(reply);
    let start;
    try {
      start = await upstream.start(callbackUrl);
    } catch (err) {
      reply.hijack();
      const e = err instanceof UpstreamError ? err : new UpstreamError('server_error', 'the sign-in could not be started', { cause: err });
      ctx.log.warn({ provider: upstream.name, reason: upstream.health.reason }, `connect: upstream sign-in failed to start: ${e.message}`);
      const p = e.page(upstream.name);
      return sendPage(reply.raw, e.httpStatus, p.heading, messagePage(p.heading, p.message));
    }
    await ctx.store.set(CONNECT_PREFIX + start.checks.state, { service: service.id, checks: start.checks } satisfies ConnectAttempt, {
      ttlSeconds: 900,
    });
    reply.hijack();
    reply.raw.writeHead(303, { location: start.url.href, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
    reply.raw.end();
  });
}

/**
 * The provider's redirect for a connect attempt (single use: the stored state is taken). Resolves to false
 * when `state` is not a connect attempt, so the caller answers as before.
 */
export async function finishConnect(
  ctx: GatewayContext,
  upstream: UpstreamIdp | undefined,
  req: FastifyRequest,
  reply: FastifyReply,
  state: string,
  callbackUrl: string,
): Promise<boolean> {
  if (!ctx.credentials || !upstream) return false;
  const attempt = await ctx.store.take<ConnectAttempt>(CONNECT_PREFIX + state);
  if (!attempt) return false;
  reply.hijack();
  const service = ctx.services.get(attempt.service);
  const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
  let kept: UpstreamTokenResponse | undefined;
  let profile;
  try {
    profile = await upstream.finish(new URL(callbackUrl + query), attempt.checks, (t) => (kept = t));
  } catch (err) {
    const e = err instanceof UpstreamError ? err : new UpstreamError('server_error', 'the sign-in could not be completed', { cause: err });
    ctx.log.warn({ provider: upstream.name, reason: upstream.health.reason }, `connect: upstream sign-in failed: ${e.message}`);
    const p = e.page(upstream.name);
    sendPage(reply.raw, e.httpStatus, p.heading, messagePage(p.heading, p.message));
    return true;
  }
  const decision = checkPolicy(service?.policy, {
    id: profile.id,
    email: profile.email,
    emailVerified: profile.emailVerified,
    groups: profile.groups,
  });
  if (!service || !decision.allowed || !kept) {
    const heading = 'Not connected';
    const why = !decision.allowed
      ? `Your account is not allowed to use ${service?.name ?? 'this service'} by its access policy.`
      : 'The identity provider returned no token to keep.';
    sendPage(reply.raw, 403, heading, messagePage(heading, why));
    return true;
  }
  await ctx.credentials.saveSignIn(upstream.name, profile.id, kept, 'connect');
  const heading = 'Account connected';
  sendPage(
    reply.raw,
    200,
    heading,
    messagePage(heading, `Your ${upstream.name} account is connected for ${service.name}. Return to your application and try again.`),
  );
  return true;
}
