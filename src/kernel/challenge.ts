/**
 * `WWW-Authenticate: Bearer …` challenges for the MCP endpoints.
 *
 * RFC 9728 §5.1: a 401 from a protected resource carries `resource_metadata` pointing at its PRM document.
 * RFC 6750 §3: `scope`, `error`, `error_description` are auth-params in quoted-string form.
 * MCP 2025-11-25 (authorization, scope selection): the `scope` hint lists what the client should request;
 * `offline_access` is never part of it (it is not a resource scope).
 */
import type { ResolvedService } from '../config/services.js';

export interface BearerChallengeOptions {
  error?: 'invalid_token' | 'insufficient_scope';
  description?: string;
  scopes?: string[];
}

/** RFC 7230 §3.2.6 quoted-string: escape `\` and `"`, drop control characters. */
export function quoteString(value: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return `"${clean.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Builds the challenge for a service.
 * @example buildBearerChallenge(svc, { error: 'insufficient_scope', scopes: ['mcp:write'] })
 * // Bearer resource_metadata="https://gw/.well-known/oauth-protected-resource/x/mcp", scope="mcp:write", error="insufficient_scope"
 */
export function buildBearerChallenge(service: ResolvedService, opts: BearerChallengeOptions = {}): string {
  const scopes = (opts.scopes ?? service.requiredScopes).filter((s) => s !== 'offline_access');
  const params = [`resource_metadata=${quoteString(service.resourceMetadataUrl)}`];
  if (scopes.length > 0) params.push(`scope=${quoteString(scopes.join(' '))}`);
  if (opts.error) params.push(`error=${quoteString(opts.error)}`);
  if (opts.error && opts.description) params.push(`error_description=${quoteString(opts.description)}`);
  return `Bearer ${params.join(', ')}`;
}
