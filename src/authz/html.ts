/**
 * Server-rendered pages (consent, errors, access denied): small, accessible, no external assets, and
 * every one sent with the same security headers.
 */
import type { ServerResponse } from 'node:http';

export const PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.5}
h1{font-size:1.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0;word-break:break-all}
.actions{display:flex;gap:1rem;margin-top:1.5rem}button{font-size:1rem;padding:.5rem 1.2rem;border-radius:.3rem;border:1px solid #555;cursor:pointer}
button.primary{background:#1f5fbf;color:#fff;border-color:#1f5fbf}.error{color:#a00}code{background:#f2f2f2;padding:0 .2rem}`;

/** `body` must already be escaped HTML. */
export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

export function sendPage(res: ServerResponse, status: number, title: string, body: string): void {
  res.writeHead(status, PAGE_HEADERS);
  res.end(page(title, body));
}

/** A page with one message and, optionally, a form that returns the person to the application. */
export function messagePage(heading: string, message: string, form?: { action: string; csrf: string; label: string }): string {
  const formHtml = form
    ? `<form method="post" action="${escapeHtml(form.action)}"><input type="hidden" name="csrf" value="${escapeHtml(form.csrf)}"><div class="actions"><button class="primary" type="submit" name="action" value="return">${escapeHtml(form.label)}</button></div></form>`
    : '';
  return `<h1>${escapeHtml(heading)}</h1><p role="alert" class="error">${escapeHtml(message)}</p>${formHtml}`;
}
