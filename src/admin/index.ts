/**
 * The operator console at `/admin` (docs/console.md): server-rendered pages (html.ts, no script), for
 * the people listed in `admin`, signed in through the gateway's identity provider (sign-in.ts). Off, and
 * not a single route registered, when `admin` is absent.
 *
 * Reading is GET; every action is a form POST that must carry the session's CSRF token, answers 303 back
 * to its page (post/redirect/get) and writes an audit event naming the admin (`admin`). The revocations
 * are the CLI's (src/kernel/directory.ts), the key rotation the server's (src/kernel/key-rotation.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import { deleteClient, findGrant, listAccounts, listClients, listGrants, revokeGrants, revokeUser } from '../kernel/directory.js';
import { rotateSigningKey } from '../kernel/key-rotation.js';
import { AuditRing, recentEverywhere, shareAuditRing, type AuditEvent, type AuditFields } from '../observability/audit.js';
import { createUpstream, UpstreamError } from '../upstream/index.js';
import { checkFileOnDisk, maskedConfig } from './configuration.js';
import { escapeHtml as escape, sendConsole, sendCss, type Chrome, type PageName } from './html.js';
import {
  activityPage,
  clientRows,
  clientsPage,
  configPage,
  keysPage,
  matches,
  peoplePage,
  servicesPage,
  signInPage,
  type ActivityFilter,
  type Person,
} from './pages.js';
import { ServiceRates } from './rates.js';
import { ConsoleAccess, type SignedIn } from './sign-in.js';

export interface ConsoleOptions {
  /** The configuration file the gateway was started from, for `check-config` on the Configuration page. */
  configPath?: string | undefined;
}

/** The audit events the console's own actions and sign-ins write (docs/observability.md). */
const EVENTS: readonly AuditEvent[] = [
  'sign_in.success',
  'sign_in.failure',
  'consent.granted',
  'consent.denied',
  'client.registered',
  'client.deleted',
  'token.issued',
  'token.refresh_reuse',
  'token.revoked',
  'grant.revoked',
  'policy.denied',
  'keys.rotated',
  'user.revoked',
  'admin.sign_in',
  'admin.refused',
  'admin.sign_out',
  'admin.session_revoked',
];

/** What an action did, as the page it returns to says it (fixed texts: nothing from the query is echoed). */
const DONE: Record<string, string> = {
  grant: 'Grant revoked: its tokens stop working within about a second.',
  user: 'User revoked: all their grants are revoked and their console sessions ended.',
  sessions: 'Console sessions ended.',
  client: 'Client deleted and its grants revoked.',
  keys: 'New signing key published.',
  none: 'Nothing to do: it was already gone.',
};

type Body = Record<string, string | undefined>;

export async function registerAdminConsole(app: FastifyInstance, ctx: GatewayContext, options: ConsoleOptions = {}): Promise<void> {
  if (!ctx.config.admin) return;
  const signIn = createUpstream(ctx.config);
  // The schema refuses `admin` without a provider or with the development sign-in; this guards code callers.
  if (!signIn || 'local' in signIn) throw new TypeError('admin (the console) needs a redirecting identity provider under oauth_providers');
  const access = new ConsoleAccess(ctx, signIn);
  const ring = (ctx.audit.ring = new AuditRing(1000));
  // With `workers: N` each worker holds its share of the recent events and of the counters; the pages show
  // every worker's (src/observability/cluster.ts).
  const peers = ctx.metrics.peers;
  if (peers) shareAuditRing(peers, ring);
  const workers = peers?.worker.of;
  const recent = async () => {
    const { events, missing } = await recentEverywhere(ring, peers);
    return { events, coverage: { workers, missing } };
  };
  const rates = new ServiceRates(ctx.metrics);
  rates.start();
  app.addHook('onClose', async () => rates.stop());

  const send = (reply: FastifyReply, status: number, title: string, body: string, chrome?: Chrome) => {
    reply.hijack();
    sendConsole(reply.raw, status, title, body, chrome);
  };
  const chromeOf = (active: PageName, who: SignedIn, req: FastifyRequest<{ Querystring: { done?: string } }>): Chrome => ({
    active,
    admin: { name: who.session.name, csrf: who.csrf },
    ...(req.query.done && Object.hasOwn(DONE, req.query.done) ? { notice: DONE[req.query.done] } : {}),
  });
  const audit = (who: SignedIn, event: AuditEvent, fields: AuditFields = {}) =>
    ctx.audit.emit(event, { ...fields, admin: who.session.user });

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) =>
      done(null, Object.fromEntries(new URLSearchParams(body as string))),
    );

    scope.get('/admin/console.css', async (_req, reply) => {
      reply.hijack();
      sendCss(reply.raw);
    });

    scope.get('/admin', async (req, reply) => {
      if (await access.current(req)) return reply.code(303).header('cache-control', 'no-store').redirect('/admin/services', 303);
      send(reply, 200, 'Sign in', signInPage(signIn.name));
    });

    scope.get('/admin/login', async (_req, reply) => {
      let url: URL;
      try {
        url = await access.start(reply);
      } catch (err) {
        ctx.log.warn({ err, provider: signIn.name }, 'console sign-in could not start');
        return send(
          reply,
          503,
          'Sign-in unavailable',
          signInPage(signIn.name, `The identity provider (${signIn.name}) cannot be reached right now. Try again in a few minutes.`),
        );
      }
      return reply.code(303).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(url.href, 303);
    });

    scope.get('/admin/callback', async (req, reply) => {
      let result;
      try {
        result = await access.finish(req);
      } catch (err) {
        const e =
          err instanceof UpstreamError ? err : new UpstreamError('server_error', 'the sign-in could not be completed', { cause: err });
        ctx.log.warn({ err: e.cause ?? e, provider: signIn.name }, `console sign-in failed: ${e.message}`);
        ctx.audit.emit('admin.refused', { reason: `sign-in failed: ${e.message}` });
        return send(reply, e.httpStatus, 'Sign-in failed', signInPage(signIn.name, e.page(signIn.name).message));
      }
      if ('failure' in result) {
        return send(
          reply,
          400,
          'Sign-in failed',
          signInPage(
            signIn.name,
            'This sign-in response does not belong to a sign-in started in this browser, or it was already used. Start again.',
          ),
        );
      }
      const { profile } = result;
      if (!access.allowed(profile)) {
        ctx.audit.emit('admin.refused', { user: profile.id, reason: 'not listed in admin.users or admin.groups' });
        return send(
          reply,
          403,
          'Not an administrator',
          `<p class="error" role="alert">You are signed in as <code>${escape(profile.id)}</code>${profile.email ? ` (${escape(profile.email)})` : ''}, who is not an administrator of this gateway: the console admits only the users and groups listed in its <code>admin</code> configuration (rule: <code>admin.users</code> / <code>admin.groups</code>).</p><p>Ask an administrator to add you, then <a href="/admin/login">sign in again</a>.</p>`,
        );
      }
      await access.open(reply, profile);
      ctx.audit.emit('admin.sign_in', { admin: profile.id });
      return reply.code(303).header('cache-control', 'no-store').redirect('/admin/services', 303);
    });

    /** The page's data for a signed-in admin, else the sign-in page (a GET is never refused, only redirected). */
    const page = (
      name: PageName,
      title: string,
      render: (who: SignedIn, req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>) => Promise<string>,
      refresh?: (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>) => number | undefined,
    ) =>
      scope.get<{ Querystring: Record<string, string | undefined> }>(`/admin/${name}`, async (req, reply) => {
        const who = await access.current(req);
        if (!who) return reply.code(303).header('cache-control', 'no-store').redirect('/admin', 303);
        const body = await render(who, req);
        const seconds = refresh?.(req);
        send(reply, 200, title, body, { ...chromeOf(name, who, req), ...(seconds ? { refresh: seconds } : {}) });
      });

    // ---- pages ----------------------------------------------------------------------------------
    page('services', 'Services', async () => {
      const { rates: perService, streams, missing } = await rates.lastMinute();
      return servicesPage(ctx, perService, streams, { workers, missing });
    });

    page('people', 'People', async (who) => {
      const [accounts, grants, clients, sessions, { events, coverage }] = await Promise.all([
        listAccounts(ctx.store),
        listGrants(ctx.store),
        listClients(ctx.store),
        access.sessions(),
        recent(),
      ]);
      const people = new Map<string, Person>();
      const of = (id: string) => {
        let p = people.get(id);
        if (!p) people.set(id, (p = { id, grants: [] }));
        return p;
      };
      for (const a of accounts) if (a.id) of(a.id).account = a;
      for (const g of grants) if (g.grant.accountId) of(g.grant.accountId).grants.push(g);
      for (const ev of events) {
        const user = ev.fields.user;
        if (typeof user === 'string' && (ev.event === 'token.issued' || ev.event === 'sign_in.success') && people.has(user)) {
          const p = people.get(user)!;
          p.lastSeen = Math.max(p.lastSeen ?? 0, ev.at);
        }
      }
      const names = new Map<string, string>([
        ...ctx.config.clients.map((c) => [c.client_id, c.client_name ?? c.client_id] as const),
        ...clients.map((c) => [c.client_id, c.client_name ?? c.client_id] as const),
      ]);
      return peoplePage(
        ctx,
        [...people.values()].sort((a, b) => a.id.localeCompare(b.id)),
        names,
        sessions,
        who.csrf,
        coverage,
      );
    });

    page('clients', 'Clients', async (who) => {
      const lastUsed = new Map<string, number>();
      const [{ events, coverage }, clients] = await Promise.all([recent(), listClients(ctx.store)]);
      for (const ev of events) {
        const client = ev.fields.client_id;
        if (ev.event === 'token.issued' && typeof client === 'string' && !lastUsed.has(client)) lastUsed.set(client, ev.at);
      }
      return clientsPage(clientRows(ctx, clients, lastUsed), who.csrf, coverage);
    });

    const filterOf = (q: Record<string, string | undefined>): ActivityFilter => ({
      user: q.user?.trim() || undefined,
      client: q.client?.trim() || undefined,
      service: q.service?.trim() || undefined,
      event: q.event && EVENTS.some((n) => n === q.event || n.startsWith(`${q.event}.`)) ? q.event : undefined,
      tail: q.tail === '1',
    });
    page(
      'activity',
      'Activity',
      async (_who, req) => {
        const f = filterOf(req.query);
        const { events, coverage } = await recent();
        return activityPage(events.filter((ev) => matches(ev, f)).slice(0, 500), f, EVENTS, ring.capacity, coverage);
      },
      (req) => (req.query.tail === '1' ? 5 : undefined),
    );

    page('keys', 'Signing keys', async (who) => keysPage(ctx, who.csrf));

    page('config', 'Configuration', async () => configPage(maskedConfig(ctx.config), checkFileOnDisk(options.configPath)));

    // ---- actions --------------------------------------------------------------------------------
    const action = (path: string, run: (who: SignedIn, body: Body, reply: FastifyReply) => Promise<string>) =>
      scope.post<{ Body: Body | undefined }>(path, async (req, reply) => {
        const who = await access.current(req);
        if (!who) {
          return send(
            reply,
            403,
            'Request refused',
            `<p class="error" role="alert">You are not signed in to the console (or your session ended or was revoked), so this action was refused (rule: console session).</p><p><a href="/admin">Sign in</a></p>`,
          );
        }
        // A cross-site form cannot know the token. A browser's Origin header, when it names an origin, must be
        // ours too (the pages' `Referrer-Policy: no-referrer` makes browsers send `Origin: null` on our own forms).
        const origin = req.headers.origin;
        if (!access.csrfValid(who, req.body?.csrf) || (origin !== undefined && origin !== 'null' && origin !== ctx.issuer)) {
          audit(who, 'admin.refused', { reason: `csrf: ${path}` });
          return send(
            reply,
            403,
            'Request refused',
            `<p class="error" role="alert">This action was refused: its form did not carry this session's CSRF token (rule: console CSRF). Nothing was changed.</p><p><a href="/admin/services">Back to the console</a></p>`,
            {
              admin: { name: who.session.name, csrf: who.csrf },
            },
          );
        }
        const target = await run(who, req.body ?? {}, reply);
        if (!reply.sent) return reply.code(303).header('cache-control', 'no-store').redirect(target, 303);
      });

    action('/admin/logout', async (who, _b, reply) => {
      await access.close(reply, who);
      audit(who, 'admin.sign_out');
      return '/admin';
    });

    action('/admin/people/revoke-grant', async (who, body) => {
      const id = String(body.grant ?? '');
      const grant = id ? await findGrant(ctx.store, id) : undefined;
      if (!grant) return '/admin/people?done=none';
      await revokeGrants(ctx.store, ctx.revocations, [id], ctx.audit, {
        admin: who.session.user,
        user: grant.accountId,
        client_id: grant.clientId,
      });
      return '/admin/people?done=grant';
    });

    action('/admin/people/revoke-user', async (who, body) => {
      const user = String(body.user ?? '');
      if (!user) return '/admin/people?done=none';
      const ids = await revokeUser(ctx.store, ctx.revocations, user, ctx.audit, { admin: who.session.user });
      const sessions = await access.endSessionsOf(user);
      audit(who, 'user.revoked', { user, grants: ids.length, console_sessions: sessions });
      return '/admin/people?done=user';
    });

    action('/admin/people/end-sessions', async (who, body) => {
      const user = String(body.user ?? '');
      const n = user ? await access.endSessionsOf(user) : 0;
      audit(who, 'admin.session_revoked', { user, sessions: n });
      return n ? '/admin/people?done=sessions' : '/admin/people?done=none';
    });

    action('/admin/clients/delete', async (who, body) => {
      const id = String(body.client ?? '');
      if (!id || ctx.config.clients.some((c) => c.client_id === id)) return '/admin/clients?done=none';
      const { deleted, grants } = await deleteClient(ctx.store, ctx.revocations, id, ctx.audit, { admin: who.session.user });
      return deleted || grants ? '/admin/clients?done=client' : '/admin/clients?done=none';
    });

    action('/admin/keys/rotate', async (who) => {
      if (ctx.keys.fromConfiguration) return '/admin/keys?done=none';
      await rotateSigningKey({ config: ctx.config, keys: ctx.keys, audit: { emit: (event, fields) => audit(who, event, fields) } });
      return '/admin/keys?done=keys';
    });
  });
}
