/**
 * RFC 7591 registration, normalised before oidc-provider sees it:
 * - a client that names no `token_endpoint_auth_method` is public (`none`, the MCP client default), so
 *   it gets no secret (oidc-provider decides on the raw request, before applying client defaults);
 * - OAuth 2.1 §2.3.1 / RFC 8252 §8.3: plain `http` redirect URIs only on loopback hosts, whatever the
 *   `application_type` (oidc-provider allows http for `web` clients).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from '../kernel/error-reply.js';
import { replayWithBody } from './replay.js';

/**
 * A registered client's id: 128 random bits in base64url (22 characters), never starting with `-`, so an
 * operator can paste it after `clients show|delete` as it is (oidc-provider's default, a 21-character
 * nanoid, starts with `-` once in 64 and the command line then takes it for an option).
 */
export function registeredClientId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (id.charCodeAt(0) !== 0x2d) return id;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** `http://<loopback host>[:port]<rest>` on the raw string: the host as registered, any port, the rest verbatim. */
const LOOPBACK_REDIRECT = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?([/?#].*)?$/s;

function loopbackWithoutPort(uri: string): string | undefined {
  const m = LOOPBACK_REDIRECT.exec(uri);
  return m ? `http://${m[1]}${m[2] ?? ''}` : undefined;
}

/**
 * RFC 8252 §7.3 (and OAuth 2.1 §2.3.1): a loopback redirect URI matches with any port; everything else (scheme,
 * host spelling, path, query) exactly. oidc-provider does this only for `application_type: native`;
 * this applies it to every client (a `web` client on loopback is the same local listener). No other host
 * is ever relaxed: a URI that is not `http` on one of the three loopback spellings never matches here.
 */
export function loopbackRedirectAllowed(value: string, registered: readonly string[]): boolean {
  const wanted = loopbackWithoutPort(value);
  return wanted !== undefined && registered.some((r) => loopbackWithoutPort(r) === wanted);
}

/** A refusal names its registry code (src/errors.ts, RFC 7591 §3.2.2 errors); `description` is safe to show. */
export type RegistrationCheck =
  | { ok: true; body: Record<string, unknown> }
  | { ok: false; code: 'GW_ERR_CLIENT_METADATA_INVALID' | 'GW_ERR_REDIRECT_URI_INVALID'; description: string };

/**
 * Client metadata is shallow (an inline `jwks` is the deepest member, about 4 levels). Anything deeper is
 * refused before it is re-serialised: a body nested thousands of levels (well within the 64 KiB limit)
 * overflowed the stack in JSON.stringify after the reply was hijacked, and the request hung forever.
 */
const MAX_DEPTH = 16;

function depthExceeds(value: unknown, max: number): boolean {
  // Iterative walk: recursion is exactly what such a body attacks.
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push([child, d + 1]);
  }
  return false;
}

/**
 * Control characters in a client name (P6 in docs/security.md): C0 (CR, LF, NUL, ESC, …), DEL, C1, and the Unicode
 * line and paragraph separators. They forge table rows and terminal escapes where names are printed and
 * are never part of a name. Bidi controls are allowed (right-to-left names) and neutralised where shown.
 */
// eslint-disable-next-line no-control-regex
const NAME_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function clientNameProblem(body: Record<string, unknown>): string | undefined {
  for (const key of Object.keys(body)) {
    // RFC 7591 §2.2: `client_name#<language tag>` variants are names too.
    if (key !== 'client_name' && !key.startsWith('client_name#')) continue;
    const v = body[key];
    if (typeof v === 'string' && NAME_CONTROL.test(v))
      return `${key} must not contain control characters (CR, LF, NUL, ESC, other C0/C1 controls, U+2028/U+2029)`;
  }
  return undefined;
}

/**
 * `scope` in a registration request (RFC 7591 §2) is the ceiling of what the client may ever request, and
 * oidc-provider enforces it. Clients register with the scope of their first challenge (the MCP SDK v2
 * sends what the 401 named), which would refuse their later step-up to a tool's scope (MCP scope challenge
 * handling) with `invalid_scope`. The gateway widens it to every scope its services define (RFC 7591
 * §3.2.1: the server may replace a value and returns what it registered); consent per service still
 * decides what is granted.
 */
function widenScope(requested: unknown, serviceScopes: readonly string[]): unknown {
  if (typeof requested !== 'string') return requested;
  return [...new Set([...requested.split(' ').filter(Boolean), ...serviceScopes])].join(' ');
}

export function normaliseRegistration(body: unknown, serviceScopes: readonly string[] = []): RegistrationCheck {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    return { ok: false, code: 'GW_ERR_CLIENT_METADATA_INVALID', description: 'the registration request must be a JSON object' };
  if (depthExceeds(body, MAX_DEPTH))
    return { ok: false, code: 'GW_ERR_CLIENT_METADATA_INVALID', description: `client metadata nested deeper than ${MAX_DEPTH} levels` };
  const nameProblem = clientNameProblem(body as Record<string, unknown>);
  if (nameProblem) return { ok: false, code: 'GW_ERR_CLIENT_METADATA_INVALID', description: nameProblem };
  const out = { ...(body as Record<string, unknown>) };
  const grants = Array.isArray(out.grant_types) ? out.grant_types : [];
  const operatorOnly = grants.find((g) => g === 'client_credentials' || g === 'urn:ietf:params:oauth:grant-type:jwt-bearer');
  if (operatorOnly)
    return {
      ok: false,
      code: 'GW_ERR_CLIENT_METADATA_INVALID',
      description: `grant_types: ${String(operatorOnly)} is only for clients the operator configures (registration.clients), never for registered ones`,
    };
  out.token_endpoint_auth_method ??= 'none';
  if (out.scope !== undefined) out.scope = widenScope(out.scope, serviceScopes);
  const uris = out.redirect_uris;
  if (Array.isArray(uris)) {
    for (const uri of uris) {
      const u = typeof uri === 'string' ? URL.parse(uri) : null;
      if (u?.protocol === 'http:' && !LOOPBACK.has(u.hostname)) {
        return {
          ok: false,
          code: 'GW_ERR_REDIRECT_URI_INVALID',
          description: 'plain http redirect URIs are only allowed for loopback hosts (127.0.0.1, [::1], localhost)',
        };
      }
    }
  }
  return { ok: true, body: out };
}

/** The normalised body as a fresh, unread request for oidc-provider (replay.ts). */
export function replayRequest(original: IncomingMessage, body: Record<string, unknown>): IncomingMessage {
  return replayWithBody(original, Buffer.from(JSON.stringify(body), 'utf8'), 'application/json; charset=utf-8');
}

/** fastify handler for POST /oauth/register: checks, then hands the normalised body to the provider. */
export function registrationHandler(
  callback: () => (req: IncomingMessage, res: ServerResponse) => Promise<void> | void,
  serviceScopes: readonly string[] = [],
) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const check = normaliseRegistration(req.body, serviceScopes);
    if (!check.ok) {
      await sendError(reply, check.code, check.description);
      return;
    }
    // Built before hijacking: should it throw, fastify still answers (a hijacked reply would hang).
    const replay = replayRequest(req.raw, check.body);
    reply.hijack();
    await callback()(replay, reply.raw as ServerResponse);
  };
}
