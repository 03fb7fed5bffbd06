/**
 * Header rules of the MCP proxy, in both directions.
 *
 * Requests: an ALLOWLIST (docs/principles.md). Only the headers below (and `mcp-param-*`) reach a backend; the
 * gateway then adds the verified identity and the `X-Forwarded-*` triple. Everything else a client sends
 * (Authorization, Cookie, Host, hop-by-hop headers, client-made identity or X-Forwarded headers) is dropped,
 * which is what makes identity spoofing (S7 in docs/security.md) impossible by construction.
 *
 * Responses: the backend's headers pass through except hop-by-hop headers (RFC 9110 §7.6.1), `Set-Cookie`
 * (unless the service allows it: no cookie ever crosses users, S12) and `Access-Control-*` (the gateway
 * owns CORS on its origin).
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Request headers forwarded to backends, lower-case. MCP Streamable HTTP (basic/transports): Accept,
 * Content-Type, MCP-Protocol-Version, Mcp-Session-Id, Last-Event-ID, Mcp-Method, Mcp-Name pass untouched;
 * plus content negotiation, the user agent and W3C trace context.
 */
export const FORWARDED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'accept',
  'accept-encoding',
  'accept-language',
  'content-type',
  'content-length',
  'mcp-protocol-version',
  'mcp-session-id',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'user-agent',
  'traceparent',
  'tracestate',
]);

/** MCP 2026-07-28: intermediaries MUST forward unrecognised `Mcp-Param-*` headers. */
export const FORWARDED_REQUEST_HEADER_PREFIX = 'mcp-param-';

/** RFC 9110 §7.6.1 connection-specific fields (plus the non-standard ones still seen in the wild). */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Identity header name prefix that is never accepted from clients, whatever the configured names. */
export const CLIENT_IDENTITY_PREFIX = 'x-user-';

/**
 * Whether a client request header may be forwarded. `stripped` holds the service's identity header names
 * (configured names and the signed-assertion header): they are refused even if an operator picked a name
 * that is otherwise allowlisted.
 */
export function isForwardableRequestHeader(name: string, stripped: ReadonlySet<string>): boolean {
  if (FORWARDED_REQUEST_HEADERS.has(name)) return !stripped.has(name);
  return name.startsWith(FORWARDED_REQUEST_HEADER_PREFIX) && !stripped.has(name);
}

/** Lower-case tokens listed in a `Connection` header (RFC 9110 §7.6.1: those fields are hop-by-hop too). */
export function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const joined = typeof value === 'string' ? value : value.join(',');
  if (joined === 'keep-alive' || joined === 'close' || joined === 'Keep-Alive' || joined === 'Close') return undefined;
  const set = new Set<string>();
  for (const t of joined.split(',')) {
    const token = t.trim().toLowerCase();
    if (token) set.add(token);
  }
  return set;
}

export interface UpstreamHeaderInput {
  incoming: IncomingHttpHeaders;
  /** Names never taken from the client (identity headers of this service). */
  stripped: ReadonlySet<string>;
  /** Already-encoded identity headers from the verified token, or undefined on public services. */
  identity: ReadonlyArray<readonly [string, string]> | undefined;
  assertion?: { header: string; value: string } | undefined;
  /** The upstream token for `upstream_auth` services (src/credentials). */
  credential?: { header: string; value: string } | undefined;
  forwardedFor: string;
  forwardedProto: string;
  forwardedHost: string;
}

/** One pass over the client headers: allowlisted ones are copied, then the gateway's own are set. */
export function buildUpstreamHeaders(input: UpstreamHeaderInput): Record<string, string> {
  const { incoming, stripped } = input;
  const out: Record<string, string> = {};
  const listed = connectionTokens(incoming.connection);
  for (const name in incoming) {
    if (!isForwardableRequestHeader(name, stripped)) continue;
    if (listed !== undefined && listed.has(name)) continue;
    const value = incoming[name];
    if (value === undefined) continue;
    // Node joins repeated fields with ", " (set-cookie aside), so each name is sent exactly once.
    out[name] = typeof value === 'string' ? value : value.join(', ');
  }
  if (input.identity) for (const [name, value] of input.identity) out[name] = value;
  if (input.assertion) out[input.assertion.header] = input.assertion.value;
  if (input.credential) out[input.credential.header] = input.credential.value;
  out['x-forwarded-for'] = input.forwardedFor;
  out['x-forwarded-proto'] = input.forwardedProto;
  out['x-forwarded-host'] = input.forwardedHost;
  return out;
}

/** Response headers relayed to the client: hop-by-hop, Access-Control-* and (unless allowed) Set-Cookie removed. */
export function buildResponseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  allowSetCookie: boolean,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = connectionTokens(upstream.connection);
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP_HEADERS.has(name)) continue;
    if (listed !== undefined && listed.has(name)) continue;
    if (name === 'set-cookie' && !allowSetCookie) continue;
    if (name.startsWith('access-control-')) continue;
    out[name] = value;
  }
  return out;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const EXT_PREFIX = "UTF-8''";

/** RFC 8187 §3.2.1 value-chars: attr-char is ALPHA / DIGIT / "!#$&+-.^_`|~"; everything else is %XX of UTF-8. */
function percentEncodeRfc8187(s: string): string {
  return encodeURIComponent(s.replace(LONE_SURROGATE, '\uFFFD')).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Makes a claim value safe as an HTTP header value; never throws.
 *
 * - Printable ASCII passes verbatim (the common case: one regex test).
 * - Control characters (C0, DEL; so CR/LF) are removed: they cannot be represented and are never meaningful
 *   in names, emails or ids.
 * - Anything else non-ASCII (or a value that itself starts with `UTF-8''`, or contains `extraUnsafe`) is
 *   sent in RFC 8187 ext-value form: `UTF-8''` followed by percent-encoded UTF-8. Backends recognise the
 *   prefix and decode with `decodeURIComponent`.
 *
 * Returns undefined when nothing is left (the header is then omitted).
 */
export function encodeHeaderValue(raw: string, extraUnsafe?: string): string | undefined {
  let v = raw;
  if (!PRINTABLE_ASCII.test(v)) v = v.replace(CONTROL, '');
  v = v.trim();
  if (v.length === 0) return undefined;
  if (!PRINTABLE_ASCII.test(v) || v.startsWith(EXT_PREFIX) || (extraUnsafe !== undefined && v.includes(extraUnsafe))) {
    return EXT_PREFIX + percentEncodeRfc8187(v);
  }
  return v;
}

/** A list (groups) as one header: each element encoded on its own (commas inside are encoded), joined by ",". */
export function encodeHeaderList(values: readonly string[]): string | undefined {
  const parts: string[] = [];
  for (const v of values) {
    const e = encodeHeaderValue(v, ',');
    if (e !== undefined) parts.push(e);
  }
  return parts.length ? parts.join(',') : undefined;
}
