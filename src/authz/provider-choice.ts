/**
 * The sign-in chooser: after consent, when a service accepts more than one identity provider, the person
 * picks one on this page (docs/authorization.md, several providers). One form, one submit button per
 * provider (no script, no external assets, the page headers of html.ts); the last choice is remembered
 * in a cookie and offered first, focused, marked "last used". The cookie holds a provider name only and is
 * read against the configured names: it decides nothing but the order of the buttons.
 */
import { escapeHtml } from './html.js';

/** The approval waiting for the person's choice (server-side, per interaction), in the upstream-state family. */
export const CHOICE_PREFIX = 'gw:upstream-state:choice:';

const YEAR_S = 365 * 86_400;

/** `__Host-` over https (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain); a plain name on a loopback http issuer. */
export function choiceCookieName(issuer: string): string {
  return issuer.startsWith('https:') ? '__Host-gw-idp' : 'gw-idp';
}

export function choiceCookie(issuer: string, provider: string): string {
  const secure = issuer.startsWith('https:') ? '; Secure' : '';
  return `${choiceCookieName(issuer)}=${encodeURIComponent(provider)}; Path=/; Max-Age=${YEAR_S}; HttpOnly; SameSite=Lax${secure}`;
}

/** The remembered provider, when the cookie names one of `allowed`. */
export function rememberedChoice(cookieHeader: string | undefined, issuer: string, allowed: readonly string[]): string | undefined {
  if (!cookieHeader) return undefined;
  const name = choiceCookieName(issuer);
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    let value: string;
    try {
      value = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
    return allowed.includes(value) ? value : undefined;
  }
  return undefined;
}

export interface ChooserView {
  uid: string;
  csrf: string;
  serviceName: string;
  /** Provider names and labels, in the configuration's order. */
  providers: ReadonlyArray<{ name: string; label: string }>;
  remembered?: string | undefined;
}

export function chooserPage(v: ChooserView): string {
  const ordered = v.remembered
    ? [...v.providers.filter((p) => p.name === v.remembered), ...v.providers.filter((p) => p.name !== v.remembered)]
    : v.providers;
  const buttons = ordered
    .map((p, i) => {
      const last = p.name === v.remembered;
      return `<li><button${i === 0 ? ' class="primary" autofocus' : ''} type="submit" name="provider" value="${escapeHtml(p.name)}">Sign in with ${escapeHtml(p.label)}</button>${last ? ' <small>(last used)</small>' : ''}</li>`;
    })
    .join('');
  return `<h1>Choose how to sign in</h1>
<p>${escapeHtml(v.serviceName)} accepts more than one sign-in. Each one is a separate account here: signing in another way does not reach what you did with the first.</p>
<form method="post" action="/interaction/${escapeHtml(v.uid)}/provider">
<input type="hidden" name="csrf" value="${escapeHtml(v.csrf)}">
<fieldset><legend>Sign in with</legend><ul class="choices">${buttons}</ul></fieldset></form>`;
}
