/**
 * CORS for the authorization server's endpoints, for browser-hosted MCP clients (docs/security.md, CORS). The rule
 * is the MCP endpoints' (src/kernel/origin.ts OriginPolicy, one source of truth): an origin is allowed when
 * it equals, normalised, one of `cors.allow_origins` or the issuer's own origin; `*` there means any
 * origin, never with credentials.
 *
 * - Public documents (RFC 8414 / RFC 9728 metadata, the JWKS): a simple GET is readable from any origin
 *   (`Access-Control-Allow-Origin: *`, no credentials): they are public and `curl` reads them anyway.
 *   A preflight (a client adding `MCP-Protocol-Version`, as the MCP SDK does) is answered only for
 *   allowed origins; an allowed origin gets its own origin echoed (with credentials when configured).
 * - Endpoints that take credentials or a client's codes (registration, token, revocation,
 *   introspection): preflights and responses carry CORS headers only for allowed origins. A request
 *   with a present, not-allowed `Origin` is refused with 403 before oidc-provider sees it: a form-encoded
 *   POST is a "simple" request the browser sends without a preflight, and without this a page on any
 *   origin could spend a client's authorization code or refresh token even though it cannot read the
 *   answer. Requests without `Origin` (native clients, servers) are not affected.
 *
 * oidc-provider's own CORS (lib/shared/cors.js) echoes any Origin on the token, revocation and JWKS
 * endpoints (its default `clientBasedCORS` allows all); it steps aside when a response already carries
 * `Access-Control-*` headers, which this hook sets first. Its `clientBasedCORS` is set to the same policy
 * (provider.ts) in case a request ever reaches it without passing here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import { OriginPolicy } from '../kernel/origin.js';
import { sendError } from './errors.js';

export type CorsClass = 'public' | 'credentialed';

const PUBLIC_EXACT = new Set([
  '/.well-known/oauth-authorization-server',
  '/.well-known/openid-configuration',
  '/.well-known/oauth-protected-resource',
  '/oauth/jwks',
]);
const CREDENTIALED_EXACT = new Set(['/oauth/token', '/oauth/revoke', '/oauth/introspect', '/oauth/register']);

/** Which CORS rule a path falls under; undefined for every other path (the MCP proxy has its own). */
export function corsClassOf(path: string): CorsClass | undefined {
  if (PUBLIC_EXACT.has(path) || path.startsWith('/.well-known/oauth-protected-resource/')) return 'public';
  if (CREDENTIALED_EXACT.has(path) || path.startsWith('/oauth/register/')) return 'credentialed';
  return undefined;
}

const PUBLIC_ANY = { 'access-control-allow-origin': '*', vary: 'Origin' } as const;

function setAll(reply: FastifyReply, headers: Record<string, string>): void {
  // On the raw response: most of these routes are hijacked (oidc-provider writes the response itself),
  // and Node merges these with the headers passed to writeHead.
  for (const [k, v] of Object.entries(headers)) reply.raw.setHeader(k, v);
}

/**
 * The registry's GW_ERR_ORIGIN_FORBIDDEN, the answer the MCP proxy gives for the same origin (src/errors.ts:
 * `invalid_request`, RFC 6749 §5.2 at the token endpoint). `Vary: Origin`: the answer depends on it.
 */
function refuse(reply: FastifyReply): FastifyReply {
  return sendError(reply.header('vary', 'Origin'), 'GW_ERR_ORIGIN_FORBIDDEN');
}

export function registerOAuthCors(app: FastifyInstance, ctx: GatewayContext): OriginPolicy {
  const policy = new OriginPolicy(ctx.config.cors, ctx.issuer);
  // A callback hook (not async): it runs before every route, the MCP proxy's included, and most requests
  // leave at the first check without a promise or an allocation.
  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const url = req.url;
    if (url.charCodeAt(1) !== 0x2e /* . */ && !url.startsWith('/oauth/')) return done();
    const q = url.indexOf('?');
    const kind = corsClassOf(q < 0 ? url : url.slice(0, q));
    if (kind === undefined) return done();
    const origin = req.headers.origin;
    const verdict = policy.check(origin);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      if (verdict !== 'allowed') return void refuse(reply);
      const h = req.headers['access-control-request-headers'];
      return void reply
        .code(204)
        .headers(policy.preflightHeaders(origin!, typeof h === 'string' ? h : undefined))
        .send();
    }
    if (verdict === 'allowed') setAll(reply, policy.responseHeaders(origin!));
    else if (kind === 'public') setAll(reply, PUBLIC_ANY);
    else if (verdict === 'forbidden') return void refuse(reply);
    done();
  });
  return policy;
}
