/**
 * The console's pages as HTML bodies (rendered by html.ts). Everything shown that came from outside
 * (client names, redirect URIs, user names, audit fields) is escaped here; no secret is ever shown.
 */
import type { GatewayContext } from '../context.js';
import type { ResolvedService } from '../config/services.js';
import type { AccountPayload, ClientPayload, GrantPayload } from '../kernel/directory.js';
import type { RecentAuditEvent } from '../observability/audit.js';
import { actionForm, escapeHtml as e, table } from './html.js';
import type { AdminSession } from './sign-in.js';
import type { FileCheck } from './configuration.js';

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString().replace('.000Z', 'Z') : '');
const isoS = (s: number | undefined) => iso(s ? s * 1000 : undefined);
const code = (s: string) => `<code>${e(s)}</code>`;

/** `scheme://host[:port]/path`, without user info or query (a backend URL may carry a credential). */
function safeUrl(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

export function policySummary(s: ResolvedService): string {
  if (!s.authRequired) return 'public (no sign-in)';
  const p = s.policy;
  const parts: string[] = [];
  if (p?.users?.length) parts.push(`${p.users.length} user(s)`);
  if (p?.emails?.length) parts.push(`${p.emails.length} email(s)`);
  if (p?.email_domains?.length) parts.push(`domains ${p.email_domains.join(', ')}`);
  if (p?.groups?.length) parts.push(`groups ${p.groups.join(', ')}`);
  const who = parts.length ? parts.join('; ') : 'every signed-in user';
  const required = s.requiredScopes.length ? `; requires ${s.requiredScopes.join(' ')}` : '';
  return `${who}; scopes ${s.scopes.join(' ') || '(none)'}${required}`;
}

/**
 * What the in-memory figures of a page cover: this process, or with `workers: N` every worker, naming those
 * that did not answer (their share is missing). `workers` is N, undefined outside `workers`.
 */
export interface Coverage {
  workers: number | undefined;
  missing: readonly number[];
}

/** "this instance", and with workers which of them the figures cover. */
function covered(c: Coverage): string {
  if (c.workers === undefined) return 'this instance';
  if (c.missing.length === 0) return `this instance (all ${c.workers} workers)`;
  const names = c.missing.map(String).join(', ');
  return `this instance <span class="warn">(${c.workers - c.missing.length} of ${c.workers} workers: worker ${names} did not answer in time, ${c.missing.length === 1 ? 'its' : 'their'} share is missing)</span>`;
}

export function servicesPage(
  ctx: GatewayContext,
  rates: Map<string, { requests: number; errors: number; seconds: number }>,
  streams: Map<string, number>,
  coverage: Coverage,
): string {
  const rows = [...ctx.services.values()].map((s) => {
    const r = rates.get(s.id) ?? { requests: 0, errors: 0, seconds: 0 };
    const health =
      r.requests === 0
        ? '<span class="muted">idle</span>'
        : r.errors === 0
          ? '<span class="ok">ok</span>'
          : r.errors >= r.requests
            ? '<span class="bad">failing</span>'
            : '<span class="warn">errors</span>';
    return [
      `<strong>${e(s.name)}</strong><br>${code(`/${s.id}/mcp`)}`,
      code(safeUrl(s.backend)),
      health,
      String(streams.get(s.id) ?? 0),
      String(r.requests),
      r.errors ? `<span class="bad">${r.errors}</span>` : '0',
      e(policySummary(s)),
    ];
  });
  const storage = ctx.availability.up ? '<span class="ok">up</span>' : '<span class="bad">down</span>';
  const idp = ctx.upstream ? `${e(ctx.upstream.provider)}: ${e(ctx.upstream.state)}` : 'none';
  return `<dl><dt>Storage</dt><dd>${e(ctx.store.backend)} ${storage}${ctx.availability.degraded ? ' <span class="warn">(in-memory fallback)</span>' : ''}</dd><dt>Identity provider</dt><dd>${idp}</dd><dt>Revocation list</dt><dd>${ctx.revocations.healthy ? '<span class="ok">current</span>' : '<span class="bad">stale (storage unreadable)</span>'}</dd></dl>
<h2>Services</h2>${table(['Service', 'Backend', 'Health', 'Open streams', 'Requests / min', 'Errors / min', 'Policy'], rows, 'No services configured.')}
<p class="muted">Health, requests and errors (5xx answers, backend failures) over about the last minute on ${covered(coverage)}; idle means no traffic.</p>`;
}

export interface Person {
  id: string;
  account?: AccountPayload | undefined;
  grants: { id: string; grant: GrantPayload }[];
  lastSeen?: number | undefined;
}

export function peoplePage(
  ctx: GatewayContext,
  people: Person[],
  clientNames: Map<string, string>,
  sessions: AdminSession[],
  csrf: string,
  coverage: Coverage,
): string {
  const serviceOf = (resource: string) => [...ctx.services.values()].find((s) => s.canonicalUri === resource)?.id ?? resource;
  const rows = people.map((p) => {
    const who = `${code(p.id)}${p.account?.name ? `<br>${e(p.account.name)}` : ''}${p.account?.email ? `<br>${e(p.account.email)}` : ''}`;
    const grants = p.grants.length
      ? p.grants
          .map(({ id, grant }) => {
            const client = grant.clientId ?? '';
            const services = Object.entries(grant.resources ?? {})
              .map(([r, scopes]) => `${e(serviceOf(r))} <span class="muted">(${e(scopes)})</span>`)
              .join(', ');
            return `<div>${e(clientNames.get(client) ?? client)} → ${services || '<span class="muted">no service</span>'} <span class="muted">since ${isoS(grant.iat)}</span> ${actionForm('/admin/people/revoke-grant', csrf, { grant: id }, 'Revoke')}</div>`;
          })
          .join('')
      : '<span class="muted">none</span>';
    return [
      who,
      e((p.account?.groups ?? []).join(', ')),
      grants,
      iso(p.lastSeen) || '<span class="muted">not since start</span>',
      actionForm('/admin/people/revoke-user', csrf, { user: p.id }, 'Revoke user'),
    ];
  });
  const sessionRows = sessions.map((s) => [
    `${code(s.user)}<br>${e(s.name)}`,
    iso(s.createdAt),
    iso(s.expiresAt),
    actionForm('/admin/people/end-sessions', csrf, { user: s.user }, 'End sessions'),
  ]);
  return `${table(['Person', 'Groups', 'Grants (client → service)', 'Last seen', ''], rows, 'Nobody has signed in yet.')}
<p class="muted">Revoking a grant stops its access and refresh tokens within about a second on every instance; revoking a user revokes all their grants and ends their console sessions. Last seen: the latest sign-in or token on ${covered(coverage)} since it started.</p>
<h2>Console sessions</h2>${table(['Admin', 'Signed in', 'Expires', ''], sessionRows, 'No console sessions.')}`;
}

export interface ClientRow {
  clientId: string;
  name: string;
  how: 'static' | 'dynamic' | 'metadata document';
  redirectUris: string[];
  registeredAt?: number | undefined;
  auth: string;
  lastUsed?: number | undefined;
}

export function clientRows(ctx: GatewayContext, stored: ClientPayload[], lastUsed: Map<string, number>): ClientRow[] {
  const rows: ClientRow[] = ctx.config.clients.map((c) => ({
    clientId: c.client_id,
    name: c.client_name ?? c.client_id,
    how: 'static',
    redirectUris: c.redirect_uris,
    auth: c.token_endpoint_auth_method ?? (c.client_secret ? 'client_secret_basic' : 'none'),
    lastUsed: lastUsed.get(c.client_id),
  }));
  for (const c of stored) {
    rows.push({
      clientId: c.client_id,
      name: c.client_name ?? c.client_id,
      how: /^https:\/\//.test(c.client_id) ? 'metadata document' : 'dynamic',
      redirectUris: c.redirect_uris ?? [],
      registeredAt: c.client_id_issued_at ? c.client_id_issued_at * 1000 : undefined,
      auth: c.token_endpoint_auth_method ?? '',
      lastUsed: lastUsed.get(c.client_id),
    });
  }
  return rows;
}

export function clientsPage(rows: ClientRow[], csrf: string, coverage: Coverage): string {
  const body = rows.map((c) => [
    `${e(c.name)}<br>${code(c.clientId)}`,
    e(c.how) + (c.registeredAt ? `<br><span class="muted">${iso(c.registeredAt)}</span>` : ''),
    e(c.auth),
    c.redirectUris.map(code).join('<br>'),
    iso(c.lastUsed) || '<span class="muted">not since start</span>',
    c.how === 'static'
      ? '<span class="muted">in the configuration file</span>'
      : actionForm('/admin/clients/delete', csrf, { client: c.clientId }, 'Delete'),
  ]);
  return `${table(['Client', 'Registered', 'Authentication', 'Redirect URIs', 'Last used', ''], body, 'No clients.')}
<p class="muted">Deleting a client revokes its grants first (its tokens stop within about a second), then removes its registration; it may register again. Last used: the latest token issued to it on ${covered(coverage)} since it started.</p>`;
}

export interface ActivityFilter {
  user?: string | undefined;
  client?: string | undefined;
  service?: string | undefined;
  event?: string | undefined;
  tail?: boolean;
}

export function matches(ev: RecentAuditEvent, f: ActivityFilter): boolean {
  const has = (want: string | undefined, got: unknown) => !want || (typeof got === 'string' && got.includes(want));
  return (
    has(f.user, ev.fields.user ?? ev.fields.admin) &&
    has(f.client, ev.fields.client_id) &&
    has(f.service, ev.fields.service) &&
    (!f.event || ev.event === f.event || ev.event.startsWith(`${f.event}.`))
  );
}

export function activityPage(
  events: RecentAuditEvent[],
  f: ActivityFilter,
  names: readonly string[],
  capacity: number,
  coverage: Coverage,
): string {
  const input = (name: keyof ActivityFilter, label: string) =>
    `<label>${label}<input name="${name}" value="${e(String(f[name] ?? ''))}" autocomplete="off"></label>`;
  const options = ['', ...names]
    .map((n) => `<option value="${e(n)}"${n === (f.event ?? '') ? ' selected' : ''}>${n ? e(n) : 'any'}</option>`)
    .join('');
  const form = `<form class="filters" method="get" action="/admin/activity">${input('user', 'User')}${input('client', 'Client')}${input('service', 'Service')}<label>Event<select name="event">${options}</select></label><label><span><input type="checkbox" name="tail" value="1"${f.tail ? ' checked' : ''}> Live tail</span></label><button type="submit" class="primary">Filter</button></form>`;
  const rows = events.map((ev) => {
    const { user, client_id: client, service, ...rest } = ev.fields;
    const detail = Object.entries(rest)
      .filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => `${e(k)}=${code(String(v))}`)
      .join(' ');
    return [
      `<span class="nw">${iso(ev.at)}</span>`,
      `<code class="nw">${e(ev.event)}</code>`,
      user ? code(String(user)) : '',
      client ? code(String(client)) : '',
      service ? e(String(service)) : '',
      detail,
    ];
  });
  return `${form}${table(['Time', 'Event', 'User', 'Client', 'Service', 'Detail'], rows, 'No matching events.')}
<p class="muted">The last ${capacity} audit events ${coverage.workers === undefined ? '' : 'of each worker '}of ${covered(coverage)}, newest first, kept in memory since it started (the log lines are the full record).${f.tail ? ' Live tail: this page reloads every 5 seconds.' : ''}</p>`;
}

export function keysPage(ctx: GatewayContext, csrf: string): string {
  const rows = ctx.keys
    .describe()
    .map((k) => [
      code(k.kid),
      e(k.alg),
      k.state === 'signing'
        ? '<span class="ok">signing</span>'
        : k.state === 'next'
          ? 'published, signs next'
          : '<span class="muted">retiring</span>',
      iso(k.createdAt),
      iso(k.activeAt),
      iso(k.retireAt) || '',
    ]);
  const grace = ctx.config.tokens.key_rotation_grace;
  const action = ctx.keys.fromConfiguration
    ? '<p class="muted">The signing keys come from the configuration file (<code>keys:</code>): rotate them there.</p>'
    : `<p>A new key is published at once and signs after ${grace} s (<code>tokens.key_rotation_grace</code>); the current key stays published until everything it signed has expired.</p>${actionForm('/admin/keys/rotate', csrf, {}, 'Rotate signing key', 'primary')}`;
  return `${table(['Key id', 'Algorithm', 'State', 'Created', 'Signs from', 'Leaves the JWKS'], rows)}${action}`;
}

export function configPage(masked: unknown, check: FileCheck): string {
  const file =
    check.kind === 'none'
      ? '<p class="muted">This gateway was started without a configuration file (programmatic start or the demo).</p>'
      : check.kind === 'ok'
        ? `<p class="ok">OK: ${code(check.path)} passes check-config as it is on disk now.</p>`
        : `<p class="bad">${code(check.path)} as it is on disk now would be refused:</p><pre>${e(check.lines.join('\n'))}</pre>`;
  return `<h2>File on disk (check-config)</h2>${file}<h2>Running configuration</h2><p class="muted">Secrets are masked.</p><pre>${e(JSON.stringify(masked, null, 2))}</pre>`;
}

export function signInPage(provider: string, reason?: string): string {
  return `${reason ? `<p class="error" role="alert">${e(reason)}</p>` : ''}<p>The operator console of this gateway. Sign in with ${e(provider)}; only the people listed in the gateway's <code>admin</code> configuration get in.</p><p><a class="btn" href="/admin/login">Sign in with ${e(provider)}</a></p>`;
}
