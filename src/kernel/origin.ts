/**
 * Origin validation and CORS for the MCP endpoints.
 *
 * MCP Streamable HTTP (2025-03-26 onwards): servers MUST validate `Origin` on all incoming connections to
 * prevent DNS rebinding; 2025-11-25: a present, invalid Origin gets 403. We compare the normalised
 * scheme://host:port exactly against `cors.allow_origins` plus the issuer's own origin: never a prefix or
 * substring match (the original gateway accepted `http://localhost.evil.example`, S11 in docs/security.md), and
 * `Origin: null` (sandboxed frames, file://) is refused. Requests without Origin are non-browser clients and
 * are allowed.
 */
import type { GatewayConfig } from '../config/schema.js';

/** Headers always allowed in preflight (plus `mcp-param-*` names the browser asks for). */
export const CORS_ALLOWED_HEADERS = [
  'authorization',
  'content-type',
  'accept',
  'mcp-protocol-version',
  'mcp-session-id',
  'last-event-id',
  'mcp-method',
  'mcp-name',
] as const;

/** Headers always exposed to browser scripts: clients must read the challenge and the session id. */
export const CORS_EXPOSED_HEADERS = ['WWW-Authenticate', 'Mcp-Session-Id'] as const;

/**
 * Normalises an origin for comparison: `scheme://host[:port]`, lower-case, default port dropped (the URL
 * parser's `origin`). Returns undefined for anything that is not a bare origin (path, credentials, query).
 * Non-http(s) schemes (browser extensions) compare by their lower-cased text.
 */
export function normalizeOrigin(value: string): string | undefined {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed.toLowerCase() === 'null') return undefined;
  const u = URL.parse(trimmed);
  if (!u) return undefined;
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/i.test(trimmed) ? trimmed.toLowerCase() : undefined;
  if (u.username || u.password || u.search || u.hash) return undefined;
  if (u.pathname !== '/' || /^[a-z]+:\/\/[^/]+\/./i.test(trimmed)) return undefined;
  return u.origin;
}

export type OriginVerdict = 'absent' | 'allowed' | 'forbidden';

export class OriginPolicy {
  readonly #allowed = new Set<string>();
  readonly #any: boolean;
  readonly #credentials: boolean;
  readonly #allowMethods: string;
  readonly #allowHeaders: ReadonlySet<string>;
  readonly #exposeHeaders: string;

  constructor(cors: GatewayConfig['cors'], issuer: string) {
    this.#any = cors.allow_origins.includes('*');
    for (const o of [issuer, ...cors.allow_origins]) {
      if (o === '*') continue;
      const n = normalizeOrigin(o);
      if (n) this.#allowed.add(n);
    }
    // `*` means any origin, without credentials (the Fetch standard forbids both together).
    this.#credentials = cors.allow_credentials && !this.#any;
    this.#allowMethods = [...new Set(cors.allow_methods.map((m) => m.toUpperCase()))].join(', ');
    this.#allowHeaders = new Set([...CORS_ALLOWED_HEADERS, ...cors.allow_headers.map((h) => h.toLowerCase())]);
    this.#exposeHeaders = [...new Set([...CORS_EXPOSED_HEADERS, ...cors.expose_headers])].join(', ');
  }

  check(origin: string | undefined): OriginVerdict {
    if (origin === undefined) return 'absent';
    // Fast path: the header is already in normalised form (what browsers send).
    if (this.#allowed.has(origin)) return 'allowed';
    const n = normalizeOrigin(origin);
    if (n === undefined) return 'forbidden';
    return this.#any || this.#allowed.has(n) ? 'allowed' : 'forbidden';
  }

  /** CORS headers for an actual (non-preflight) response to an allowed origin. */
  responseHeaders(origin: string): Record<string, string> {
    const h: Record<string, string> = {
      'access-control-allow-origin': origin,
      'access-control-expose-headers': this.#exposeHeaders,
      vary: 'Origin',
    };
    if (this.#credentials) h['access-control-allow-credentials'] = 'true';
    return h;
  }

  /**
   * The answer to a CORS preflight from an allowed origin. Requested headers are granted when they are in
   * the allowed list or are `mcp-param-*` headers (2026-07-28 tool parameters mirrored into headers).
   */
  preflightHeaders(origin: string, requestedHeaders: string | undefined): Record<string, string> {
    const granted = new Set<string>(this.#allowHeaders);
    if (requestedHeaders) {
      for (const raw of requestedHeaders.split(',')) {
        const h = raw.trim().toLowerCase();
        if (h.startsWith('mcp-param-') && /^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(h)) granted.add(h);
      }
    }
    const h: Record<string, string> = {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': this.#allowMethods,
      'access-control-allow-headers': [...granted].join(', '),
      'access-control-max-age': '600',
      vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    };
    if (this.#credentials) h['access-control-allow-credentials'] = 'true';
    return h;
  }
}
