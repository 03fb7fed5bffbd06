/**
 * The connect link of `upstream_auth` services (docs/upstream-auth.md): `GET /connect/{service}` sends the
 * person through the service's identity provider again (state, nonce, PKCE as for a sign-in) and keeps the
 * provider's tokens for whoever signed in there, under their own user id. The link carries nothing but the
 * service: it is not pre-authenticated and cannot attach one person's provider account to another's user
 * (MCP elicitation, URL mode: the user who completes it is identified by the sign-in itself).
 *
 * The provider redirects to the gateway's one callback (`/oauth/callback`); interactions.ts hands the
 * states it does not know to `finishConnect`.
 *
 * mode: oauth (the backend has its own authorization server): the sign-in at the gateway's provider comes
 * first and says who the user is; then the person is sent to the backend's authorization server (PKCE,
 * `resource` = the backend URL, src/upstream/backend-oauth.ts), which redirects to `/connect/callback`, and
 * the tokens are kept for that user and service. So the person who completes it is always the user the
 * tokens are stored for (MCP elicitation, URL mode: verify the user who opens the URL).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import { checkPolicy } from '../kernel/policy.js';
import type { UpstreamChecks, UpstreamIdp, UpstreamTokenResponse } from '../upstream/index.js';
import { BackendOAuth, UpstreamError, type BackendChecks, type BackendClient } from '../upstream/index.js';
import { messagePage, sendPage } from './html.js';

const CONNECT_PREFIX = 'gw:connect-state:';
const BACKEND_PREFIX = 'gw:connect-backend:';
/** A client the gateway registered (RFC 7591) at a backend's authorization server, per service. */
const CLIENT_PREFIX = 'gw:upstream-client:';

interface BackendAttempt {
  service: string;
  user: string;
  checks: BackendChecks;
}

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

/** The redirecting provider a service's connect link signs the person in with: its one `oauth_provider`. */
export type ConnectProviders = (name: string) => UpstreamIdp | undefined;

function connectProvider(ctx: GatewayContext, providers: ConnectProviders, serviceId: string | undefined): UpstreamIdp | undefined {
  const service = serviceId === undefined ? undefined : ctx.services.get(serviceId);
  const name = service?.config.upstream_auth ? service.config.oauth_provider : undefined;
  // upstream_auth names exactly one provider (src/config/rules.ts, upstreamAuthProblems).
  return typeof name === 'string' ? providers(name) : undefined;
}

export function registerConnectRoutes(app: FastifyInstance, ctx: GatewayContext, providers: ConnectProviders, callbackUrl: string): void {
  const credentials = ctx.credentials;
  if (!credentials) return;
  const backendCallback = `${ctx.issuer}/connect/callback`;
  for (const service of ctx.services.values()) {
    const auth = service.config.upstream_auth;
    if (auth?.mode !== 'oauth') continue;
    const key = CLIENT_PREFIX + service.id;
    credentials.useBackend(
      service.id,
      new BackendOAuth({
        serviceId: service.id,
        serviceName: service.name,
        resource: service.backend.href,
        redirectUri: backendCallback,
        clientId: auth.client_id,
        clientSecret: auth.client_secret,
        scopes: auth.scopes,
        registration: {
          load: async () => (await ctx.store.get<BackendClient>(key))?.value,
          // First writer wins across instances; the others use its client.
          save: async (client) =>
            (await ctx.store.setIfAbsent(key, client)) ? client : ((await ctx.store.get<BackendClient>(key))?.value ?? client),
        },
      }),
    );
  }
  app.get<{ Querystring: { state?: string } }>('/connect/callback', { onRequest: ctx.limits.guard('authorize') }, async (req, reply) => {
    reply.hijack();
    const state = req.query.state;
    const attempt =
      typeof state === 'string' && /^[\x21-\x7e]{1,256}$/.test(state)
        ? await ctx.store.take<BackendAttempt>(BACKEND_PREFIX + state)
        : undefined;
    const backend = attempt ? credentials.backend(attempt.service) : undefined;
    const service = attempt ? ctx.services.get(attempt.service) : undefined;
    if (!attempt || !backend || !service) {
      return sendPage(
        reply.raw,
        400,
        'Connection expired',
        messagePage('Connection expired', 'This link is unknown or has expired. Start again from the application.'),
      );
    }
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
    try {
      await credentials.saveBackend(service.id, attempt.user, await backend.finish(new URL(backendCallback + query), attempt.checks));
    } catch (err) {
      ctx.log.warn({ service: service.id, reason: (err as Error).message }, 'connect: the backend authorization failed');
      const heading = 'Not connected';
      return sendPage(
        reply.raw,
        502,
        heading,
        messagePage(
          heading,
          `${service.name} did not complete the authorization (${(err as Error).message}). Start again from the application.`,
        ),
      );
    }
    const heading = 'Account connected';
    sendPage(
      reply.raw,
      200,
      heading,
      messagePage(heading, `Your account is connected for ${service.name}. Return to your application and try again.`),
    );
  });
  app.get<{ Params: { service: string } }>('/connect/:service', { onRequest: ctx.limits.guard('authorize') }, async (req, reply) => {
    const service = ctx.services.get(req.params.service);
    const upstream = connectProvider(ctx, providers, req.params.service);
    if (!service || !upstream) return notFound(reply);
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
  providers: ConnectProviders,
  req: FastifyRequest,
  reply: FastifyReply,
  state: string,
  callbackUrl: string,
): Promise<boolean> {
  if (!ctx.credentials) return false;
  const attempt = await ctx.store.take<ConnectAttempt>(CONNECT_PREFIX + state);
  if (!attempt) return false;
  reply.hijack();
  const service = ctx.services.get(attempt.service);
  const upstream = connectProvider(ctx, providers, attempt.service);
  if (!upstream) {
    sendPage(
      reply.raw,
      400,
      'Sign-in expired',
      messagePage('Sign-in expired', 'This connect link no longer matches the configuration. Start again from the application.'),
    );
    return true;
  }
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
  if (service && decision.allowed && service.config.upstream_auth?.mode === 'oauth') {
    // Now that the user is known: the backend's own authorization, for this user only.
    const backend = ctx.credentials.backend(service.id);
    let start;
    try {
      if (!backend) throw new Error('no backend client');
      start = await backend.start();
    } catch (err) {
      ctx.log.warn({ service: service.id, reason: (err as Error).message }, 'connect: the backend authorization could not start');
      const heading = 'Not connected';
      sendPage(
        reply.raw,
        502,
        heading,
        messagePage(heading, `${service.name}'s authorization server could not be reached. Try again later.`),
      );
      return true;
    }
    await ctx.store.set(
      BACKEND_PREFIX + start.checks.state,
      { service: service.id, user: profile.id, checks: start.checks } satisfies BackendAttempt,
      {
        ttlSeconds: 900,
      },
    );
    reply.raw.writeHead(303, { location: start.url.href, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
    reply.raw.end();
    return true;
  }
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
