/**
 * Server-rendered pages (consent, errors, access denied): small, accessible, no external assets, and
 * every one sent with the same security headers.
 */
import type { ServerResponse } from 'node:http';

const CSP_BASE = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'";
const CSP_TAIL = "frame-ancestors 'none'; base-uri 'none'";

/**
 * The headers of every page. `form-action 'self'` is the default: the page's own forms post to the
 * gateway. Pages whose form starts a redirect chain off the gateway use `pageHeaders(targets)` instead.
 */
export const PAGE_HEADERS: Record<string, string> = pageHeaders();

/**
 * Page headers whose CSP `form-action` lists `'self'` plus the sources a form's redirect chain reaches.
 *
 * Why per page: CSP 3 §6.3.1 (form-action) is checked by Chromium on every redirect that follows a form
 * submission, not only on the form's own action (Firefox, as tested, checks the action only). Approve on the consent
 * page answers 303 to the upstream IdP's authorization endpoint (which, when the person is already signed
 * in there, redirects straight back through the gateway to the client); the development sign-in, the
 * "Return to the application" form and Deny end with oidc-provider's redirect to the client's
 * `redirect_uri`. With `form-action 'self'` alone Chromium blocks all of them. We list exactly the
 * origins of this interaction (the IdP's authorization origin, the client's redirect URI origin or
 * custom scheme, already validated by oidc-provider against the registration), never a wildcard, so an
 * injected form still cannot post anywhere else. Dropping `form-action` would let injected markup post
 * the person's form data anywhere (default-src does not cover it).
 */
export function pageHeaders(formTargets: readonly (string | undefined)[] = []): Record<string, string> {
  const sources = new Set(["'self'"]);
  for (const t of formTargets) {
    const s = t === undefined ? undefined : cspSource(t);
    if (s) sources.add(s);
  }
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': `${CSP_BASE}; form-action ${[...sources].join(' ')}; ${CSP_TAIL}`,
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
}

/**
 * A URL as a CSP source expression (CSP 3 §2.3.1): `scheme://host[:port]` for http(s) (CSP ignores the
 * path after a redirect anyway, §6.7.2.9), the scheme alone (`cursor:`) for a custom-scheme redirect URI
 * (RFC 8252 §7.1: it has no host to match). Anything that is not plainly one of these (a host with `;`,
 * `,` or quotes, which the URL parser keeps) is left out rather than risk breaking the header. An IPv6
 * literal (RFC 8252 §7.3 `http://[::1]:port`) becomes `http://*:port`.
 */
export function cspSource(url: string): string | undefined {
  const u = URL.parse(url);
  if (!u) return undefined;
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    if (/^[a-z0-9-]+(?:\.[a-z0-9-]+)*(?::\d{1,5})?$/i.test(u.host)) return `${u.protocol}//${u.host}`;
    // CSP host-source grammar has no IPv6 literal: Chromium and Firefox both ignore `http://[::1]:8080`
    // (as tested). The narrowest source that matches it is the scheme and port with any host.
    if (/^\[[0-9a-f:.]+\]$/i.test(u.hostname)) return `${u.protocol}//*${u.port ? `:${u.port}` : ''}`;
    return undefined;
  }
  if (/^(?:javascript|data|blob|file|filesystem|about):$/i.test(u.protocol)) return undefined;
  return /^[a-z][a-z0-9+.-]*:$/i.test(u.protocol) ? u.protocol.toLowerCase() : undefined;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.5}
h1{font-size:1.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0;word-break:break-all}
.actions{display:flex;gap:1rem;margin-top:1.5rem}button{font-size:1rem;padding:.5rem 1.2rem;border-radius:.3rem;border:1px solid #555;cursor:pointer}
button.primary{background:#1f5fbf;color:#fff;border-color:#1f5fbf}.error{color:#a00}code{background:#f2f2f2;padding:0 .2rem}
fieldset{border:0;padding:0;margin:1rem 0}legend{font-weight:600;margin-bottom:.5rem}ul.choices{list-style:none;padding:0;display:grid;gap:.6rem}button:focus-visible{outline:3px solid #1f5fbf;outline-offset:2px}`;

/** `body` must already be escaped HTML. */
export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

/** `formTargets`: where the page's form may lead besides the gateway (see pageHeaders). */
/** The same page and headers from an oidc-provider (koa) hook: its error page and the sign-out pages. */
export function koaPage(koa: { set(field: string, value: string): void; type: string; body: unknown }, title: string, body: string): void {
  for (const [k, v] of Object.entries(PAGE_HEADERS)) koa.set(k, v);
  koa.type = 'html';
  koa.body = page(title, body);
}

export function sendPage(
  res: ServerResponse,
  status: number,
  title: string,
  body: string,
  formTargets?: readonly (string | undefined)[],
): void {
  res.writeHead(status, formTargets?.length ? pageHeaders(formTargets) : PAGE_HEADERS);
  res.end(page(title, body));
}

/**
 * The one answer for a gateway form whose CSRF token or interaction does not match this page (the consent
 * decision, the dev sign-in, the abort): 403, nothing of the request echoed.
 */
export function sendFormRefused(res: ServerResponse): void {
  sendPage(
    res,
    403,
    'Request refused',
    messagePage('Request refused', 'This form has expired or did not come from this page. Start the sign-in again from the application.'),
  );
}

/** A page with one message and, optionally, a form that returns the person to the application. */
export function messagePage(heading: string, message: string, form?: { action: string; csrf: string; label: string }): string {
  const formHtml = form
    ? `<form method="post" action="${escapeHtml(form.action)}"><input type="hidden" name="csrf" value="${escapeHtml(form.csrf)}"><div class="actions"><button class="primary" type="submit" name="action" value="return">${escapeHtml(form.label)}</button></div></form>`
    : '';
  return `<h1>${escapeHtml(heading)}</h1><p role="alert" class="error">${escapeHtml(message)}</p>${formHtml}`;
}
