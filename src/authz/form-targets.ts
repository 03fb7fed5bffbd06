/**
 * Where the consent form's Approve leads: the upstream IdP's authorization origin, for the page's CSP
 * `form-action` (html.ts pageHeaders; Chromium checks form-action on the redirects after a form post).
 *
 * The origin is only known from the URL the upstream builds (an OpenID provider's authorization endpoint
 * comes from its discovery document), so it is learnt by building one: `start()` only creates random
 * values and a URL, it stores nothing. It is kept after the first success (the upstream keeps its
 * discovery result for the life of the process too). While the IdP cannot be reached, the consent page
 * does not wait for it longer than `waitMs` and goes without; Approve then ends on the error page anyway.
 */
import type { UpstreamIdp } from '../upstream/index.js';

export function upstreamFormTarget(upstream: UpstreamIdp, callbackUrl: string, waitMs = 3000): () => Promise<string | undefined> {
  let known: string | undefined;
  return async () => {
    if (known) return known;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), waitMs);
      timer.unref();
    });
    const learnt = upstream.start(callbackUrl).then(
      (s) => (known = s.url.origin),
      () => undefined,
    );
    try {
      return await Promise.race([learnt, late]);
    } finally {
      clearTimeout(timer);
    }
  };
}
