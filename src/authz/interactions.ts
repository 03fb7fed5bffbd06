/**
 * The sign-in interaction (docs/authorization.md), ordered per the MCP security best practices
 * (confused deputy, MUST): consent is asked BEFORE the person is sent to the upstream IdP.
 *
 * 1. GET  /interaction/:uid           login prompt → consent page; consent prompt (known user) →
 *                                     remembered / just-approved consent is applied, else the page.
 * 2. POST /interaction/:uid/decision  Approve → upstream IdP (state, nonce, PKCE kept server-side);
 *                                     Deny → `access_denied` to the client.
 *    GET/POST /interaction/:uid/provider  when the service accepts several providers: the chooser
 *                                     (provider-choice.ts) between Approve and the upstream IdP.
 * 3. GET  /oauth/callback             the fixed upstream redirect_uri → /interaction/:uid/callback
 *                                     (so the interaction's path-scoped cookie is sent).
 * 4. GET  /interaction/:uid/callback  code exchange, profile stored, access policy, login finished.
 * 5. POST /interaction/:uid/abort     after an error page: returns the OAuth error to the client.
 * Development sign-in (`dev` provider) instead of steps 3–4, after Approve:
 *    GET/POST /interaction/:uid/dev-login  the local form (dev-login.ts), then the same completion.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { InteractionResults } from 'oidc-provider';
import type { ResolvedService } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import {
  DevSignIn,
  UpstreamError,
  type UpstreamChecks,
  type UpstreamIdp,
  type UpstreamRegistry,
  type UpstreamTokenResponse,
} from '../upstream/index.js';
import { startFailure } from '../upstream/http.js';
import type { UpstreamProfile } from '../upstream/profile.js';
import { loadAccount, saveAccount } from './accounts.js';
import { consentPage, consentRemembered, csrfToken, csrfValid, rememberConsent, rememberedScopes, type Approval } from './consent.js';
import { finishConnect, registerConnectRoutes } from './connect.js';
import { DEV_LOGIN_PREFIX, registerDevLoginRoutes } from './dev-login.js';
import { upstreamFormTarget } from './form-targets.js';
import { messagePage, sendFormRefused, sendPage } from './html.js';
import { checkServiceAccess, providerOfUserId } from '../kernel/policy.js';
import { CHOICE_PREFIX, chooserPage, choiceCookie, rememberedChoice } from './provider-choice.js';
import type { ProviderHost } from './provider-host.js';
import { REFUSALS, upstreamRefusal, type Refusal } from './refusals.js';
import { serviceForResource } from './resource-servers.js';

type Details = Awaited<ReturnType<ProviderHost['provider']['interactionDetails']>>;

interface UpstreamAttempt {
  uid: string;
  checks: UpstreamChecks;
  approval: Approval;
  /** Set by the console's own sign-in (src/admin/sign-in.ts): the path /oauth/callback resumes at instead. */
  resume?: string;
  /** The provider the person was sent to (absent in attempts stored before several providers existed). */
  provider?: string;
}

const ATTEMPT_PREFIX = 'gw:upstream-state:';
const OAUTH_ERRORS = new Set(['access_denied', 'server_error', 'temporarily_unavailable']);

/** States are ours (random, URL-safe); anything else is unknown without touching storage (no 500 on odd bytes). */
function isStateValue(state: unknown): state is string {
  return typeof state === 'string' && /^[\x21-\x7e]{1,256}$/.test(state);
}

/** The one upstream redirect URI serves the console's sign-in too: only its own fixed path is honoured. */
const consoleResume = (resume: unknown) => (resume === '/admin/callback' ? resume : undefined);

export function registerInteractionRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
  host: ProviderHost,
  upstreams: UpstreamRegistry,
): void {
  const devSignIn = upstreams.names.map((n) => upstreams.get(n)).find((s): s is DevSignIn => s instanceof DevSignIn);
  const callbackUrl = `${ctx.issuer}/oauth/callback`;
  /** A redirecting provider by name (undefined for the development form or an unknown name). */
  const redirecting = (name: string | undefined): UpstreamIdp | undefined => {
    const s = name === undefined ? undefined : upstreams.get(name);
    return s && !('local' in s) ? s : undefined;
  };
  // The provider a failing reply was dealing with, for the guard's log line and page.
  const providerFor = new WeakMap<FastifyReply, UpstreamIdp>();

  // ---- named steps -------------------------------------------------------------------------------
  // The interaction each reply serves, so that every page can list its client's redirect URI in the
  // CSP form-action (html.ts pageHeaders: Chromium checks it on the redirects after a form post).
  const served = new WeakMap<FastifyReply, Details>();
  const detailsOf = async (req: FastifyRequest, reply: FastifyReply) => {
    const details = await host.provider.interactionDetails(req.raw, reply.raw);
    served.set(reply, details);
    return details;
  };
  const redirectOf = (details: Details | undefined) => (details ? String(details.params.redirect_uri ?? '') : undefined);
  const origins = new Map(upstreams.redirecting.map((u) => [u.name, upstreamFormTarget(u, callbackUrl)]));
  /** Whether the signed-in person of this interaction may use the service without signing in again (its provider is offered). */
  const sessionUser = (details: Details, service: ResolvedService): string | undefined => {
    const user = details.prompt.name === 'consent' ? details.session?.accountId : undefined;
    const provider = user === undefined ? undefined : providerOfUserId(user);
    return provider !== undefined && service.providers.includes(provider) ? user : undefined;
  };
  /**
   * Where Approve sends a person who still has to sign in: the IdP's authorization origin when the service
   * has one provider; with several, the chooser (the gateway itself).
   */
  const upstreamTarget = (details: Details, service: ResolvedService) =>
    !sessionUser(details, service) && service.signInProviders.length === 1 ? origins.get(service.signInProviders[0]!)?.() : undefined;

  const finish = (req: FastifyRequest, reply: FastifyReply, result: InteractionResults, merge = false) =>
    host.provider.interactionFinished(req.raw as IncomingMessage, reply.raw as ServerResponse, result, { mergeWithLastSubmission: merge });

  function requested(details: Details): { service: ResolvedService | undefined; resource: string; scopes: string[]; offline: boolean } {
    const raw = details.params.resource;
    const resource = Array.isArray(raw) ? String(raw[0] ?? '') : String(raw ?? '');
    const service = serviceForResource(ctx, resource);
    const asked = String(details.params.scope ?? '')
      .split(' ')
      .filter(Boolean);
    const scopes = service ? asked.filter((s) => service.scopes.includes(s)) : [];
    return { service, resource, scopes, offline: asked.includes('offline_access') };
  }

  async function showConsent(
    reply: FastifyReply,
    details: Details,
    service: ResolvedService,
    scopes: string[],
    offline: boolean,
  ): Promise<void> {
    const clientId = String(details.params.client_id);
    const client = await host.provider.Client.find(clientId);
    // Step-up (a known person asking for more): the page asks only for the scopes not approved before.
    const user = details.session?.accountId;
    const approved = user ? (await rememberedScopes(ctx, user, clientId, service.id)).filter((s) => scopes.includes(s)) : [];
    const redirect = URL.parse(String(details.params.redirect_uri ?? ''));
    const html = consentPage({
      uid: details.uid,
      csrf: csrfToken(ctx, details.uid),
      clientId,
      clientName: client?.clientName ?? clientId,
      redirectHost: redirect ? `${redirect.protocol}//${redirect.host}` : 'unknown',
      service,
      scopes,
      approved,
      offline,
    });
    sendPage(reply.raw, 200, `Allow access to ${service.name}?`, html, [redirectOf(details), await upstreamTarget(details, service)]);
  }

  /** An error page whose button sends the OAuth error back to the client (never a silent dead end). */
  function errorPage(
    reply: FastifyReply,
    uid: string,
    status: number,
    heading: string,
    message: string,
    error: string,
    rule: Refusal = upstreamRefusal(error),
  ): void {
    const action = `/interaction/${uid}/abort?error=${encodeURIComponent(error)}&rule=${rule}`;
    const body = messagePage(heading, message, { action, csrf: csrfToken(ctx, uid), label: 'Return to the application' });
    sendPage(reply.raw, status, heading, body, [redirectOf(served.get(reply))]);
  }

  /** Access policy of the service (users, emails, domains, groups). */
  async function policyAllows(
    reply: FastifyReply,
    uid: string,
    service: ResolvedService,
    userId: string,
    clientId: string,
  ): Promise<boolean> {
    const profile = await loadAccount(ctx, userId);
    const decision = checkServiceAccess(service, {
      id: userId,
      provider: profile?.provider,
      email: profile?.email,
      emailVerified: profile?.emailVerified,
      groups: profile?.groups,
    });
    if (decision.allowed) return true;
    ctx.metrics.policyDenials.inc({ service: service.id, stage: 'sign_in' });
    ctx.audit.emit('policy.denied', { user: userId, client_id: clientId, service: service.id, reason: decision.reason });
    errorPage(
      reply,
      uid,
      403,
      'Access not allowed',
      `Your account is not allowed to use ${service.name}: its access policy does not include you. Ask the administrator for access.`,
      'access_denied',
      'policy',
    );
    return false;
  }

  /** Builds/extends the grant from what the provider says is missing, then finishes the consent prompt. */
  async function grantConsent(req: FastifyRequest, reply: FastifyReply, details: Details, accountId: string): Promise<void> {
    const provider = host.provider;
    const clientId = String(details.params.client_id);
    const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
      grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    await finish(req, reply, { consent: { grantId } }, true);
  }

  const seeOther = (reply: FastifyReply, location: string): void => {
    reply.raw.writeHead(303, { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
    reply.raw.end();
  };

  /**
   * After Approve: to the service's one provider, or (several) to the chooser, the approval waiting
   * server-side for the person's choice; `provider` is that choice.
   */
  async function startUpstream(reply: FastifyReply, uid: string, approval: Approval, provider?: string): Promise<void> {
    const allowed = serviceForResource(ctx, approval.resource)?.signInProviders ?? [];
    if (provider === undefined) {
      if (allowed.length > 1) {
        await ctx.store.set(CHOICE_PREFIX + uid, approval, { ttlSeconds: 900 });
        return seeOther(reply, `/interaction/${encodeURIComponent(uid)}/provider`);
      }
      provider = allowed[0];
    }
    const signIn = provider === undefined ? undefined : upstreams.get(provider);
    if (signIn instanceof DevSignIn) {
      // Consent first (as for a real IdP); the approval waits server-side for the form, single use.
      await ctx.store.set(DEV_LOGIN_PREFIX + uid, approval, { ttlSeconds: 900 });
      return seeOther(reply, `/interaction/${encodeURIComponent(uid)}/dev-login`);
    }
    const upstream = redirecting(provider);
    if (!upstream) throw new UpstreamError('server_error', 'no identity provider is configured (oauth_providers)');
    providerFor.set(reply, upstream);
    const { url, checks } = await upstream.start(callbackUrl).catch((err: unknown) => {
      throw startFailure(err); // the guard shows it with the return button
    });
    await ctx.store.set(ATTEMPT_PREFIX + checks.state, { uid, checks, approval, provider: upstream.name } satisfies UpstreamAttempt, {
      ttlSeconds: 900,
    });
    seeOther(reply, url.href);
  }

  /** After a successful sign-in: profile kept, access policy checked, login finished with the approval. */
  async function completeSignIn(
    req: FastifyRequest,
    reply: FastifyReply,
    uid: string,
    profile: UpstreamProfile,
    approval: Approval,
    amr: string,
  ): Promise<void> {
    await saveAccount(ctx, profile);
    ctx.metrics.signIns.inc({ outcome: 'success' });
    ctx.audit.emit('sign_in.success', { user: profile.id, client_id: approval.clientId, provider: profile.provider });
    const service = serviceForResource(ctx, approval.resource);
    if (service && !(await policyAllows(reply, uid, service, profile.id, approval.clientId))) return;
    const result = { login: { accountId: profile.id, amr: [amr] }, gwApproval: approval } as InteractionResults;
    return finish(req, reply, result);
  }

  /** Hijacked handlers answer every failure themselves: an HTML page, 4xx for request errors, never a hang. */
  const guard =
    <R extends FastifyRequest>(handler: (req: R, reply: FastifyReply) => Promise<unknown>) =>
    async (req: R, reply: FastifyReply): Promise<void> => {
      try {
        await handler(req, reply);
      } catch (err) {
        const uid = (req.params as { uid?: unknown } | undefined)?.uid;
        if (err instanceof UpstreamError && typeof uid === 'string' && !reply.raw.headersSent) {
          // The provider is unusable (unreachable, bad answer): say so, and let the client learn it too.
          const upstream = providerFor.get(reply);
          ctx.metrics.signIns.inc({ outcome: 'failure' });
          ctx.log.warn(
            { err: err.cause ?? err, provider: upstream?.name, reason: upstream?.health.reason },
            `upstream sign-in failed: ${err.message}`,
          );
          if (!reply.sent) reply.hijack();
          const page = err.page(upstream?.name ?? 'not configured');
          return errorPage(reply, uid, err.httpStatus, page.heading, page.message, err.oauthError);
        }
        const e = err as Error & { statusCode?: number; error_description?: string; expose?: boolean };
        const status = e.statusCode && e.statusCode < 500 ? e.statusCode : 500;
        if (status >= 500) ctx.log.error({ err }, 'interaction failed');
        if (!reply.sent) reply.hijack();
        if (reply.raw.headersSent) return void reply.raw.end();
        const message = status < 500 ? (e.error_description ?? 'This sign-in is unknown or has expired.') : 'An internal error occurred.';
        sendPage(reply.raw, status, 'Sign-in error', messagePage('Sign-in error', `${message} Start again from the application.`));
      }
    };

  // ---- routes ------------------------------------------------------------------------------------
  app.get<{ Params: { uid: string } }>(
    '/interaction/:uid',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      const { service, scopes, offline, resource } = requested(details);
      if (!service)
        return errorPage(
          reply,
          details.uid,
          400,
          'Unknown service',
          'The application asked for a service this gateway does not offer.',
          'access_denied',
          'unknown_service',
        );
      const clientId = String(details.params.client_id);
      const user = sessionUser(details, service);
      if (user !== undefined) {
        if (!(await policyAllows(reply, details.uid, service, user, clientId))) return;
        const approved = (details.lastSubmission as { gwApproval?: Approval } | undefined)?.gwApproval;
        const justApproved =
          approved?.clientId === clientId && approved.resource === resource && scopes.every((s) => approved.scopes.includes(s));
        // OIDC Core §3.1.2.1: `prompt=consent` asks for consent again, whatever was remembered (P9).
        const consentRequested = String(details.params.prompt ?? '')
          .split(' ')
          .includes('consent');
        if (justApproved || (!consentRequested && (await consentRemembered(ctx, user, clientId, service.id, scopes)))) {
          if (justApproved) await rememberConsent(ctx, user, clientId, service.id, scopes);
          return grantConsent(req, reply, details, user);
        }
      }
      return showConsent(reply, details, service, scopes, offline);
    }),
  );

  app.post<{ Params: { uid: string }; Body: Record<string, string> }>(
    '/interaction/:uid/decision',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      if (details.uid !== req.params.uid || !csrfValid(ctx, details.uid, req.body?.csrf)) {
        return sendFormRefused(reply.raw);
      }
      const { service, scopes, resource } = requested(details);
      const clientId = String(details.params.client_id);
      const user = service ? sessionUser(details, service) : details.session?.accountId;
      if (req.body?.action !== 'approve' || !service) {
        ctx.audit.emit('consent.denied', { client_id: clientId, service: service?.id, user });
        return finish(req, reply, { error: 'access_denied', error_description: 'The user denied the request' });
      }
      ctx.audit.emit('consent.granted', { client_id: clientId, service: service.id, user });
      if (user !== undefined) {
        if (!(await policyAllows(reply, details.uid, service, user, clientId))) return;
        await rememberConsent(ctx, user, clientId, service.id, scopes);
        return grantConsent(req, reply, details, user);
      }
      return startUpstream(reply, details.uid, { clientId, resource, scopes });
    }),
  );

  /** The approval waiting for the chooser, and the service's providers, or an error page (expired / none). */
  async function pendingChoice(reply: FastifyReply, details: Details) {
    const approval = (await ctx.store.get<Approval>(CHOICE_PREFIX + details.uid))?.value;
    const service = approval ? serviceForResource(ctx, approval.resource) : undefined;
    if (!approval || !service || service.signInProviders.length < 2) {
      errorPage(reply, details.uid, 400, 'Sign-in expired', REFUSALS.expired(), 'access_denied', 'expired');
      return undefined;
    }
    return { approval, service };
  }

  app.get<{ Params: { uid: string } }>(
    '/interaction/:uid/provider',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      const pending = await pendingChoice(reply, details);
      if (!pending) return;
      const { service } = pending;
      const html = chooserPage({
        uid: details.uid,
        csrf: csrfToken(ctx, details.uid),
        serviceName: service.name,
        providers: service.signInProviders.map((name) => ({ name, label: upstreams.label(name) })),
        remembered: rememberedChoice(req.headers.cookie, ctx.issuer, service.signInProviders),
      });
      // Each button answers 303 to its provider (Chromium checks form-action on those redirects: html.ts).
      const targets = await Promise.all(service.signInProviders.map((name) => origins.get(name)?.()));
      sendPage(reply.raw, 200, 'Choose how to sign in', html, [redirectOf(details), ...targets]);
    }),
  );

  app.post<{ Params: { uid: string }; Body: Record<string, string> }>(
    '/interaction/:uid/provider',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      if (details.uid !== req.params.uid || !csrfValid(ctx, details.uid, req.body?.csrf)) {
        return sendFormRefused(reply.raw);
      }
      const pending = await pendingChoice(reply, details);
      if (!pending) return;
      const choice = String(req.body?.provider ?? '');
      if (!pending.service.signInProviders.includes(choice)) {
        return sendPage(
          reply.raw,
          400,
          'Unknown sign-in',
          messagePage('Unknown sign-in', `${pending.service.name} does not accept this sign-in. Go back and choose one of the buttons.`),
        );
      }
      reply.raw.setHeader('set-cookie', choiceCookie(ctx.issuer, choice));
      return startUpstream(reply, details.uid, pending.approval, choice);
    }),
  );

  app.get<{ Querystring: { state?: string } }>(
    '/oauth/callback',
    guard(async (req, reply) => {
      const state = req.query.state;
      const attempt = isStateValue(state) ? await ctx.store.get<UpstreamAttempt>(ATTEMPT_PREFIX + state) : undefined;
      if (!attempt) {
        // A connect link of an upstream_auth service (connect.ts) comes back here too.
        if (isStateValue(state) && (await finishConnect(ctx, redirecting, req, reply, state, callbackUrl))) return;
        reply.hijack();
        return sendPage(
          reply.raw,
          400,
          'Sign-in expired',
          messagePage('Sign-in expired', 'This sign-in link is unknown or has expired. Start again from the application.'),
        );
      }
      const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
      return reply
        .code(303)
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .redirect(
          `${consoleResume(attempt.value.resume) ?? `/interaction/${encodeURIComponent(attempt.value.uid)}/callback`}${query}`,
          303,
        );
    }),
  );

  app.get<{ Params: { uid: string }; Querystring: { state?: string } }>(
    '/interaction/:uid/callback',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      // Single use: the stored state, nonce and verifier are taken, so a replayed callback fails.
      const state = req.query.state;
      const attempt = isStateValue(state) ? await ctx.store.take<UpstreamAttempt>(ATTEMPT_PREFIX + state) : undefined;
      const upstream = redirecting(attempt?.provider ?? upstreams.redirecting[0]?.name);
      if (!attempt || attempt.uid !== details.uid || !upstream) {
        return errorPage(
          reply,
          details.uid,
          400,
          'Sign-in failed',
          'The sign-in response did not match this sign-in attempt.',
          'access_denied',
          'mismatch',
        );
      }
      const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
      let profile;
      let kept: UpstreamTokenResponse | undefined;
      try {
        profile = await upstream.finish(new URL(callbackUrl + query), attempt.checks, (t) => (kept = t));
      } catch (err) {
        const e =
          err instanceof UpstreamError ? err : new UpstreamError('server_error', 'the sign-in could not be completed', { cause: err });
        ctx.metrics.signIns.inc({ outcome: 'failure' });
        ctx.audit.emit('sign_in.failure', { client_id: attempt.approval.clientId, reason: e.message });
        ctx.log.warn(
          { err: e.cause ?? e, provider: upstream.name, reason: upstream.health.reason },
          `upstream sign-in failed: ${e.message}`,
        );
        const page = e.page(upstream.name);
        return errorPage(reply, details.uid, e.httpStatus, page.heading, page.message, e.oauthError);
      }
      // upstream_auth: the provider's tokens, encrypted, for the services that act as the user (src/credentials).
      if (kept && ctx.credentials?.keepsSignInTokens(upstream.name))
        await ctx.credentials.saveSignIn(upstream.name, profile.id, kept, 'sign_in');
      return completeSignIn(req, reply, details.uid, profile, attempt.approval, 'ext');
    }),
  );

  registerConnectRoutes(app, ctx, redirecting, callbackUrl);
  if (devSignIn) registerDevLoginRoutes(app, ctx, devSignIn, { detailsOf, guard, errorPage, completeSignIn });

  app.post<{ Params: { uid: string }; Querystring: { error?: string; rule?: string }; Body: Record<string, string> }>(
    '/interaction/:uid/abort',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      if (!csrfValid(ctx, details.uid, req.body?.csrf)) {
        return sendFormRefused(reply.raw);
      }
      const error = OAUTH_ERRORS.has(String(req.query.error)) ? String(req.query.error) : 'access_denied';
      const rule = Object.hasOwn(REFUSALS, String(req.query.rule)) ? (String(req.query.rule) as Refusal) : upstreamRefusal(error);
      const { service } = requested(details);
      return finish(req, reply, { error, error_description: REFUSALS[rule](service?.id ?? 'unknown') });
    }),
  );
}
