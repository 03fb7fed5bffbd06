/**
 * Target path of a proxied request: the backend URL's path plus whatever follows `/{id}/mcp` in the
 * client's request, and the raw query string appended byte for byte (repeated keys kept; the seed dropped
 * sub-paths and collapsed keys). Also the reverse direction: a backend's
 * `Location` as the client must see it.
 *
 * - The backend URL's path is sent exactly as configured (`/mcp/` stays `/mcp/`: servers mounted at a
 *   trailing-slash path redirect the other spelling, P8 in docs/security.md).
 * - The backend URL's query parameters are the operator's: a client query that names one of them again is
 *   refused (P3 in docs/security.md), because last-wins parsers would see the client's value.
 * - Absolute-form targets (`POST http://host/svc/mcp`) are mapped as their origin-form path (RFC 9112
 *   §3.2.2: a server MUST accept absolute-form; the router already routes them by their path).
 */
import { proxyError, type ProxyError } from './respond.js';

export interface BackendTarget {
  /** Backend path exactly as configured (`/` when the backend URL has no path). */
  path: string;
  /** Backend path without trailing slashes, the prefix of sub-paths ('' when the path is `/`). */
  basePath: string;
  /** Backend URL query without `?` ('' when none). */
  baseQuery: string;
  /** Normalised names of the backend URL's query parameters (see `paramName`), or undefined when none. */
  baseNames: ReadonlySet<string> | undefined;
  /** `path` plus `?baseQuery`: the target of a request without sub-path or query. */
  plain: string;
  /** Backend `host[:port]`, to recognise the backend's own address in a `Location`. */
  host: string;
}

export function backendTarget(url: URL): BackendTarget {
  const path = url.pathname || '/';
  const basePath = path.replace(/\/+$/, '');
  const baseQuery = url.search.slice(1);
  const names = new Set<string>();
  if (baseQuery) for (const pair of baseQuery.split(PAIR_SEPARATOR)) if (pair) names.add(paramName(pair));
  names.delete('');
  return {
    path,
    basePath,
    baseQuery,
    baseNames: names.size ? names : undefined,
    plain: path + (baseQuery ? `?${baseQuery}` : ''),
    host: url.host,
  };
}

const NEEDS_NORMALISING = /[%+[. ]/;

/** `&`, and `;` which some parsers (older Python, some Java servlet containers) also split on. */
const PAIR_SEPARATOR = /[&;]/;

/**
 * The name a lenient backend parser could read from `name=value`: form-decoded (`+` is a space,
 * percent-decoding), leading spaces dropped, cut at `[` (PHP and qs read `a[]`/`a[x]` as `a`), `.` and
 * spaces read as `_` (PHP), compared case-insensitively (ASP.NET). Wider than any one parser on purpose:
 * a client name that any of them could confuse with the operator's counts as the same name.
 */
export function paramName(pair: string): string {
  const eq = pair.indexOf('=');
  let name = eq < 0 ? pair : pair.slice(0, eq);
  // Common case (a plain name): nothing to decode or cut, only the case to fold.
  if (!NEEDS_NORMALISING.test(name)) return name.toLowerCase();
  name = name.replace(/\+/g, ' ');
  if (name.includes('%')) {
    try {
      name = decodeURIComponent(name);
    } catch {
      /* malformed escapes: compared as sent */
    }
  }
  name = name.trimStart();
  const bracket = name.indexOf('[');
  if (bracket > 0) name = name.slice(0, bracket);
  return name.replace(/[. ]/g, '_').toLowerCase();
}

/**
 * Whether a sub-path could escape the backend path once a server decodes and normalises it: `.`/`..`
 * segments (also `%2e`-encoded), encoded slashes or backslashes.
 */
export function isUnsafeSubPath(rest: string): boolean {
  if (rest.includes('\\')) return true;
  const hasPercent = rest.includes('%');
  if (hasPercent && /%(2f|5c|00)/i.test(rest)) return true;
  for (const seg of rest.split('/')) {
    const s = hasPercent ? seg.replace(/%2e/gi, '.') : seg;
    if (s === '.' || s === '..') return true;
  }
  return false;
}

export const UNSAFE_PATH: ProxyError = proxyError('GW_ERR_BAD_REQUEST', { description: 'Invalid path' });

function reservedParam(name: string): ProxyError {
  return proxyError('GW_ERR_BAD_REQUEST', {
    description: `The query parameter '${name.slice(0, 64)}' is set by the gateway for this service and cannot be sent by clients`,
  });
}

/** The first parameter of `query` whose name is one of `names`, without splitting the query into an array. */
function reservedIn(query: string, names: ReadonlySet<string>): string | undefined {
  let start = 0;
  while (start <= query.length) {
    let end = start;
    while (end < query.length && query.charCodeAt(end) !== 38 /* & */ && query.charCodeAt(end) !== 59 /* ; */) end++;
    if (end > start) {
      const name = paramName(query.slice(start, end));
      if (names.has(name)) return name;
    }
    start = end + 1;
  }
  return undefined;
}

/**
 * RFC 9112 §3.2.2 absolute-form → the path (and query) of its origin-form, as find-my-way routes it:
 * `http(s)://authority/path?query` → `/path?query`. Undefined for anything else.
 */
function originForm(rawUrl: string): string | undefined {
  const schemeEnd = rawUrl.indexOf('://');
  if (schemeEnd < 0) return undefined;
  const scheme = rawUrl.slice(0, schemeEnd).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return undefined;
  const slash = rawUrl.indexOf('/', schemeEnd + 3);
  const query = rawUrl.indexOf('?', schemeEnd + 3);
  // No path, or a query before it: not a `/{id}/mcp` route, which the router would not have matched.
  if (slash < 0 || (query >= 0 && query < slash)) return undefined;
  return rawUrl.slice(slash);
}

/**
 * Maps the raw request URL (`/{id}/mcp[/sub/path][?query]`, or its absolute form) to the backend request
 * target, or the error to answer: an unsafe sub-path, or a query naming one of the operator's parameters.
 */
export function upstreamTarget(target: BackendTarget, rawUrl: string): string | ProxyError {
  if (rawUrl.charCodeAt(0) !== 47 /* '/' */) {
    const path = originForm(rawUrl);
    if (path === undefined) return UNSAFE_PATH;
    rawUrl = path;
  }
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? '' : rawUrl.slice(q + 1);
  // The route is /:service/mcp[/*]: the sub-path starts at the third slash.
  const first = path.indexOf('/', 1);
  const second = first < 0 ? -1 : path.indexOf('/', first + 1);
  const rest = second < 0 ? '' : path.slice(second);
  if (rest === '' && query === '') return target.plain;
  if (rest !== '' && isUnsafeSubPath(rest)) return UNSAFE_PATH;
  if (query !== '' && target.baseNames !== undefined) {
    const clash = reservedIn(query, target.baseNames);
    if (clash !== undefined) return reservedParam(clash);
  }
  const fullPath = rest === '' ? target.path : target.basePath + rest;
  const fullQuery = target.baseQuery && query ? `${target.baseQuery}&${query}` : target.baseQuery || query;
  return fullQuery ? `${fullPath}?${fullQuery}` : fullPath;
}

/**
 * The `Location` of a backend response as the client must see it (P8 in docs/security.md). A value that resolves
 * (against the backend request URL) to the backend's host and port is rewritten to the gateway's public
 * URL of the service: `{canonicalUri}{sub-path}{query without the operator's parameters}`. The scheme is
 * not compared: a backend that trusts the gateway's `X-Forwarded-Proto: https` (uvicorn does, from
 * loopback) builds `https://127.0.0.1:3001/...` for itself. A value on another host is relayed unchanged.
 * Undefined when it points at the backend outside the service's path: the gateway publishes no URL for
 * it, and relaying it would reveal the internal address.
 */
export function publicLocation(
  target: BackendTarget,
  origin: string,
  requestPath: string,
  publicUrl: string,
  location: string,
): string | undefined {
  const u = URL.parse(location, origin + requestPath);
  if (u === null) return undefined;
  if (u.host !== target.host) return location;
  const p = u.pathname;
  let rest: string;
  if (p === target.path || p === target.basePath) rest = '';
  else if (p.startsWith(`${target.basePath}/`)) rest = p.slice(target.basePath.length);
  else return undefined;
  let search = u.search;
  if (search && target.baseNames !== undefined) {
    const kept = search
      .slice(1)
      .split(PAIR_SEPARATOR)
      .filter((pair) => pair && !target.baseNames!.has(paramName(pair)));
    search = kept.length ? `?${kept.join('&')}` : '';
  }
  return publicUrl + rest + search + u.hash;
}
