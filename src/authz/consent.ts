/**
 * Consent: the page (client, redirect host, service, scopes; Approve / Deny), its CSRF token (an HMAC
 * bound to the interaction uid, so it is useless outside the browser holding that interaction's cookie),
 * and remembered decisions per (user, client, service).
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { ResolvedService } from '../config/services.js';
import type { GatewayContext } from '../context.js';
import { escapeHtml } from './html.js';

function csrfFor(secret: string, uid: string): string {
  const key = Buffer.from(hkdfSync('sha256', secret, 'mcp-oauth-gateway', 'consent csrf', 32));
  return createHmac('sha256', key).update(uid).digest('base64url');
}

export function csrfToken(ctx: GatewayContext, uid: string): string {
  return csrfFor(ctx.config.session_secret, uid);
}

/** Constant-time check against the token from `session_secret` and from each previous secret (rotation). */
export function csrfValid(ctx: GatewayContext, uid: string, token: unknown): boolean {
  if (typeof token !== 'string') return false;
  const given = Buffer.from(token);
  let ok = false;
  for (const secret of [ctx.config.session_secret, ...(ctx.config.previous_session_secrets ?? [])]) {
    const expected = Buffer.from(csrfFor(secret, uid));
    if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
  }
  return ok;
}

/** What the person approved on the consent page, carried (server-side) through the sign-in. */
export interface Approval {
  clientId: string;
  resource: string;
  scopes: string[];
}

/**
 * One record per (service, user, client). User and client ids are hashed together: a CIMD client id is a
 * URL of any length, and a truncated key would let two clients with a long common prefix share a consent.
 */
const consentKey = (user: string, client: string, service: string) =>
  `gw:consent:${service}:${createHash('sha256').update(user).update('\n').update(client).digest('base64url')}`;

export async function rememberConsent(ctx: GatewayContext, user: string, client: string, service: string, scopes: string[]): Promise<void> {
  const prev = await ctx.store.get<{ scopes: string[] }>(consentKey(user, client, service));
  const all = [...new Set([...(prev?.value.scopes ?? []), ...scopes])];
  await ctx.store.set(consentKey(user, client, service), { scopes: all, at: Date.now() }, { ttlSeconds: ctx.config.tokens.grant_ttl });
}

/** The scopes this user already approved for this client on this service (empty when none). */
export async function rememberedScopes(ctx: GatewayContext, user: string, client: string, service: string): Promise<string[]> {
  const rec = await ctx.store.get<{ scopes: string[] }>(consentKey(user, client, service));
  return rec?.value.scopes ?? [];
}

/** Whether this user already approved this client for this service with (at least) these scopes. */
export async function consentRemembered(
  ctx: GatewayContext,
  user: string,
  client: string,
  service: string,
  scopes: string[],
): Promise<boolean> {
  const rec = await ctx.store.get<{ scopes: string[] }>(consentKey(user, client, service));
  return rec !== undefined && scopes.every((s) => rec.value.scopes.includes(s));
}

export interface ConsentView {
  uid: string;
  csrf: string;
  clientName: string;
  clientId: string;
  redirectHost: string;
  service: ResolvedService;
  scopes: string[];
  /**
   * Scopes the person already approved for this client and service: a step-up (MCP scope challenge
   * handling) asks only for what is new; these are named once, as already allowed.
   */
  approved?: string[] | undefined;
  offline: boolean;
}

/**
 * Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and control characters in text
 * that came from a client (P6 in docs/security.md): U+202E would display `exe.txt` as `txt.exe`, or reorder the page
 * text around the name. Each becomes a visible U+FFFD. The bidi *marks* (LRM, RLM, ALM) stay: they cannot
 * reorder letters and right-to-left names use them. Escaping for HTML is still the caller's.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_DISPLAY = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function neutraliseDisplay(s: string): string {
  return s.replace(UNSAFE_DISPLAY, '\ufffd');
}

export function consentPage(view: ConsentView): string {
  const v = {
    ...view,
    clientName: neutraliseDisplay(view.clientName),
    clientId: neutraliseDisplay(view.clientId),
    redirectHost: neutraliseDisplay(view.redirectHost),
  };
  const approved = v.approved ?? [];
  const asked = v.scopes.filter((s) => !approved.includes(s));
  const scopes = asked.length
    ? `<ul>${asked.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('')}</ul>`
    : `<p>${approved.length ? 'No new permissions.' : 'No specific permissions.'}</p>`;
  const already = approved.length ? `<p class="approved">Already allowed: ${approved.map((s) => escapeHtml(s)).join(', ')}.</p>` : '';
  return `<h1>Allow access to ${escapeHtml(v.service.name)}?</h1>
<p><strong>${escapeHtml(v.clientName)}</strong> wants to use <strong>${escapeHtml(v.service.name)}</strong> on your behalf.</p>
<dl><dt>Application</dt><dd>${escapeHtml(v.clientName)}${v.clientName !== v.clientId ? ` <small>(${escapeHtml(v.clientId)})</small>` : ''}</dd>
<dt>Returns to</dt><dd>${escapeHtml(v.redirectHost)}</dd>
<dt>Service</dt><dd>${escapeHtml(v.service.canonicalUri)}</dd></dl>
<h2>${approved.length ? 'New permissions' : 'Permissions'}</h2>${scopes}${already}${v.offline ? '<p>The application will stay signed in (refresh tokens).</p>' : ''}
<p>Only approve if you started this sign-in from this application.</p>
<form method="post" action="/interaction/${escapeHtml(v.uid)}/decision">
<input type="hidden" name="csrf" value="${escapeHtml(v.csrf)}">
<div class="actions"><button class="primary" type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button></div></form>`;
}
