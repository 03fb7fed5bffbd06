/**
 * Target path of a proxied request: the backend URL's path plus whatever follows `/{id}/mcp` in the
 * client's request, and the raw query string appended byte for byte (repeated keys kept; the seed dropped
 * sub-paths and collapsed keys, original-behaviour §8.3 item 8).
 */

export interface BackendTarget {
  /** Backend path without a trailing slash ('' when the backend URL path is `/`). */
  basePath: string;
  /** Backend URL query without `?` ('' when none). */
  baseQuery: string;
  /** `basePath` (or `/`) plus `?baseQuery`: the target of a request without sub-path or query. */
  plain: string;
}

export function backendTarget(url: URL): BackendTarget {
  const basePath = url.pathname.replace(/\/+$/, '');
  const baseQuery = url.search.slice(1);
  return { basePath, baseQuery, plain: (basePath || '/') + (baseQuery ? `?${baseQuery}` : '') };
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

/**
 * Maps the raw request URL (`/{id}/mcp[/sub/path][?query]`) to the backend request target.
 * Returns undefined when the sub-path is unsafe.
 */
export function upstreamTarget(target: BackendTarget, rawUrl: string): string | undefined {
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? '' : rawUrl.slice(q + 1);
  // The route is /:service/mcp[/*]: the sub-path starts at the third slash.
  const first = path.indexOf('/', 1);
  const second = first < 0 ? -1 : path.indexOf('/', first + 1);
  const rest = second < 0 ? '' : path.slice(second);
  if (rest === '' && query === '') return target.plain;
  if (rest !== '' && isUnsafeSubPath(rest)) return undefined;
  const fullPath = target.basePath + rest || '/';
  const fullQuery = target.baseQuery && query ? `${target.baseQuery}&${query}` : target.baseQuery || query;
  return fullQuery ? `${fullPath}?${fullQuery}` : fullPath;
}
