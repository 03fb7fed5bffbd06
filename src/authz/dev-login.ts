/**
 * The development sign-in form (`oauth_providers: { dev: {} }`, src/upstream/dev.ts): shown AFTER the
 * consent page, in place of the upstream redirect. Same protections as the consent page: CSRF token bound
 * to the interaction (with its own purpose), the page security headers (html.ts), single-use approval.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import type { DevSignIn } from '../upstream/dev.js';
import type { UpstreamProfile } from '../upstream/profile.js';
import { csrfToken, csrfValid, type Approval } from './consent.js';
import { escapeHtml, sendFormRefused, sendPage } from './html.js';
import type { Refusal } from './refusals.js';
import { serviceForResource } from './resource-servers.js';

/** The approval given on the consent page, kept server-side until the form is submitted (single use). */
export const DEV_LOGIN_PREFIX = 'gw:dev-login:';

const purpose = (uid: string) => `dev-login:${uid}`;

/**
 * The form's redirect chain ends at the client's redirect URI (validated by oidc-provider against the
 * registration): CSP form-action lists it, as Chromium checks form-action on every redirect (html.ts).
 */
const formTargets = (details: { params: Record<string, unknown> }) => [String(details.params.redirect_uri ?? '')];

export const devLoginCsrf = (ctx: GatewayContext, uid: string) => csrfToken(ctx, purpose(uid));
export const devLoginCsrfValid = (ctx: GatewayContext, uid: string, token: unknown) => csrfValid(ctx, purpose(uid), token);

export interface DevLoginView {
  uid: string;
  csrf: string;
  serviceName: string;
  values?: { name?: string; email?: string; groups?: string };
  error?: string;
}

export function devLoginPage(v: DevLoginView): string {
  const val = (k: 'name' | 'email' | 'groups') => escapeHtml(v.values?.[k] ?? '');
  return `<h1>Development sign-in — not for production</h1>
<p role="note"><strong>This gateway uses the development sign-in provider.</strong> There is no password: whoever opens this page chooses who they are. It only runs on a loopback address.</p>
${v.error ? `<p role="alert" class="error">${escapeHtml(v.error)}</p>` : ''}
<p>Sign in to use <strong>${escapeHtml(v.serviceName)}</strong> as:</p>
<form method="post" action="/interaction/${escapeHtml(v.uid)}/dev-login">
<input type="hidden" name="csrf" value="${escapeHtml(v.csrf)}">
<p><label for="dev-name">Name</label><br><input id="dev-name" name="name" value="${val('name')}" required maxlength="100" autocomplete="name"></p>
<p><label for="dev-email">Email</label><br><input id="dev-email" type="email" name="email" value="${val('email')}" required maxlength="254" autocomplete="email"></p>
<p><label for="dev-groups">Groups (optional, comma-separated)</label><br><input id="dev-groups" name="groups" value="${val('groups')}" maxlength="1400"></p>
<div class="actions"><button class="primary" type="submit">Sign in</button></div></form>`;
}

/** The interaction steps the form shares with the upstream sign-in (src/authz/interactions.ts). */
export interface InteractionKit {
  detailsOf(req: FastifyRequest, reply: FastifyReply): Promise<{ uid: string; params: Record<string, unknown> }>;
  guard<R extends FastifyRequest>(
    handler: (req: R, reply: FastifyReply) => Promise<unknown>,
  ): (req: R, reply: FastifyReply) => Promise<void>;
  errorPage(reply: FastifyReply, uid: string, status: number, heading: string, message: string, error: string, rule?: Refusal): void;
  completeSignIn(
    req: FastifyRequest,
    reply: FastifyReply,
    uid: string,
    profile: UpstreamProfile,
    approval: Approval,
    amr: string,
  ): Promise<void>;
}

/** GET shows the form (after Approve only); POST checks CSRF and input, then completes the sign-in once. */
export function registerDevLoginRoutes(app: FastifyInstance, ctx: GatewayContext, signIn: DevSignIn, kit: InteractionKit): void {
  const { detailsOf, guard, errorPage, completeSignIn } = kit;
  const serviceName = (resource: string) => serviceForResource(ctx, resource)?.name ?? 'the service';
  // The dev form is reached only after the consent page approved the request; without that approval (expired, or
  // the form opened directly) the sign-in goes back to the client as access_denied.
  const approvalExpired = (reply: Parameters<typeof errorPage>[0], uid: string) =>
    errorPage(reply, uid, 400, 'Sign-in expired', 'Approve the request on the consent page first.', 'access_denied', 'expired');
  app.get<{ Params: { uid: string } }>(
    '/interaction/:uid/dev-login',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      const approval = await ctx.store.get<Approval>(DEV_LOGIN_PREFIX + details.uid);
      if (!approval) return approvalExpired(reply, details.uid);
      sendPage(
        reply.raw,
        200,
        'Development sign-in',
        devLoginPage({ uid: details.uid, csrf: devLoginCsrf(ctx, details.uid), serviceName: serviceName(approval.value.resource) }),
        formTargets(details),
      );
    }),
  );

  app.post<{ Params: { uid: string }; Body: Record<string, string> }>(
    '/interaction/:uid/dev-login',
    guard(async (req, reply) => {
      reply.hijack();
      const details = await detailsOf(req, reply);
      if (details.uid !== req.params.uid || !devLoginCsrfValid(ctx, details.uid, req.body?.csrf)) {
        return sendFormRefused(reply.raw);
      }
      const pending = await ctx.store.get<Approval>(DEV_LOGIN_PREFIX + details.uid);
      if (!pending) return approvalExpired(reply, details.uid);
      const checked = signIn.profile(req.body ?? {});
      if (!checked.ok) {
        const values = { name: String(req.body?.name ?? ''), email: String(req.body?.email ?? ''), groups: String(req.body?.groups ?? '') };
        return sendPage(
          reply.raw,
          400,
          'Development sign-in',
          devLoginPage({
            uid: details.uid,
            csrf: devLoginCsrf(ctx, details.uid),
            serviceName: serviceName(pending.value.resource),
            values,
            error: checked.message,
          }),
          formTargets(details),
        );
      }
      // Single use: a second submission finds no approval.
      const approval = await ctx.store.take<Approval>(DEV_LOGIN_PREFIX + details.uid);
      if (!approval)
        return errorPage(
          reply,
          details.uid,
          400,
          'Sign-in expired',
          'This sign-in was already completed. Start again from the application.',
          'access_denied',
          'expired',
        );
      return completeSignIn(req, reply, details.uid, checked.profile, approval, 'dev');
    }),
  );
}
