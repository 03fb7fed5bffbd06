/**
 * The console's renderer (the second HTML renderer besides src/authz/html.ts, allowed by name in
 * test/http/error-registry.test.ts): every console page goes out through `sendConsole`, with one set of
 * headers and one layout. No script at all; the stylesheet is served by the gateway itself
 * (`/admin/console.css`), so the CSP is stricter than the sign-in pages' (`style-src 'self'`, no
 * `'unsafe-inline'`). Reading works without JavaScript; every action is a form POST carrying the CSRF token.
 */
import type { ServerResponse } from 'node:http';
import { escapeHtml } from '../authz/html.js';

export { escapeHtml };

/** CSP 3: nothing loads but the console's own stylesheet; forms post only to the gateway; never framed. */
export const CONSOLE_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
};

/** Phone width first: one column, tables scroll sideways inside their box, visible focus for keyboard use. */
export const CONSOLE_CSS = `*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;line-height:1.45;background:#fafafa}
a{color:#1f5fbf}a:focus,button:focus,input:focus,select:focus{outline:3px solid #f5a623;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:#fff;padding:.3rem}
header{background:#1b2a41;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header nav{display:flex;flex-wrap:wrap;gap:.2rem;min-width:0;max-width:100%}header a{color:#fff;text-decoration:none;padding:.2rem .4rem;border-radius:.2rem}header a[aria-current=page]{background:#3b5b8a}
header .who{margin-left:auto;font-size:.9rem;display:flex;gap:.5rem;align-items:center}
main{padding:1rem;max-width:75rem;margin:0 auto}h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin-top:1.5rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #ddd;border-radius:.3rem}
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f2f4f7;white-space:nowrap}td code{word-break:break-all}td .nw{white-space:nowrap;word-break:normal}
button{font-size:.9rem;padding:.3rem .8rem;border-radius:.3rem;border:1px solid #555;background:#fff;cursor:pointer}
a.btn{display:inline-block;background:#1f5fbf;color:#fff;padding:.5rem 1.2rem;border-radius:.3rem;text-decoration:none}
button.danger{border-color:#a00;color:#a00}button.primary{background:#1f5fbf;color:#fff;border-color:#1f5fbf}
form.inline{display:inline}form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
label{display:flex;flex-direction:column;font-size:.85rem}input,select{font-size:1rem;padding:.3rem}
.ok{color:#176d2c}.bad{color:#a00}.warn{color:#8a5a00}.muted{color:#666}.notice{background:#eef6ee;border:1px solid #9c9;padding:.5rem;border-radius:.3rem}
.error{color:#a00}pre{background:#fff;border:1px solid #ddd;padding:.6rem;overflow-x:auto;font-size:.85rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0;word-break:break-all}
@media (max-width:40rem){header .who{margin-left:0;width:100%}th,td{padding:.35rem .4rem}}`;

export const NAV = [
  ['services', 'Services'],
  ['people', 'People'],
  ['clients', 'Clients'],
  ['activity', 'Activity'],
  ['keys', 'Keys'],
  ['config', 'Configuration'],
] as const;

export type PageName = (typeof NAV)[number][0];

export interface Chrome {
  /** The page in the navigation, or absent on the sign-in and refusal pages (no navigation). */
  active?: PageName;
  /** The signed-in admin (shown with the sign-out form). */
  admin?: { name: string; csrf: string };
  /** Seconds after which the browser reloads the page (the Activity page's live tail, without script). */
  refresh?: number;
  /** A one-line notice after an action ("revoked 1 grant"). */
  notice?: string;
}

/** `body` must already be escaped HTML. */
export function consolePage(title: string, body: string, chrome: Chrome = {}): string {
  const nav = chrome.admin
    ? `<header><nav aria-label="Console">${NAV.map(
        ([id, label]) => `<a href="/admin/${id}"${chrome.active === id ? ' aria-current="page"' : ''}>${label}</a>`,
      ).join(
        '',
      )}</nav><div class="who"><span>${escapeHtml(chrome.admin.name)}</span><form class="inline" method="post" action="/admin/logout">${csrfField(chrome.admin.csrf)}<button type="submit">Sign out</button></form></div></header>`
    : '<header><strong>mcp-oauth-gateway console</strong></header>';
  const refresh = chrome.refresh ? `<meta http-equiv="refresh" content="${chrome.refresh}">` : '';
  const notice = chrome.notice ? `<p class="notice" role="status">${escapeHtml(chrome.notice)}</p>` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">${refresh}<title>${escapeHtml(title)} · console</title><link rel="stylesheet" href="/admin/console.css"></head><body><a class="skip" href="#main">Skip to content</a>${nav}<main id="main"><h1>${escapeHtml(title)}</h1>${notice}${body}</main></body></html>`;
}

export function csrfField(token: string): string {
  return `<input type="hidden" name="csrf" value="${escapeHtml(token)}">`;
}

/** A one-button action form (POST with the CSRF token and hidden fields). */
export function actionForm(action: string, csrf: string, fields: Record<string, string>, label: string, cls = 'danger'): string {
  const hidden = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join('');
  return `<form class="inline" method="post" action="${escapeHtml(action)}">${csrfField(csrf)}${hidden}<button type="submit" class="${cls}">${escapeHtml(label)}</button></form>`;
}

/** A table; cells must already be escaped HTML. */
export function table(head: readonly string[], rows: readonly (readonly string[])[], empty = 'None.'): string {
  if (rows.length === 0) return `<p class="muted">${escapeHtml(empty)}</p>`;
  return `<div class="scroll"><table><thead><tr>${head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table></div>`;
}

export function sendConsole(res: ServerResponse, status: number, title: string, body: string, chrome?: Chrome): void {
  res.writeHead(status, CONSOLE_HEADERS);
  res.end(consolePage(title, body, chrome));
}

export function sendCss(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/css; charset=utf-8',
    'cache-control': 'public, max-age=3600',
    'x-content-type-options': 'nosniff',
  });
  res.end(CONSOLE_CSS);
}
