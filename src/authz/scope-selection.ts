/**
 * Which scope an authorization request for a service is processed with (docs/authorization.md, "Scopes").
 *
 * RFC 6749 §3.3: when the client omits `scope`, the AS "MUST either process the request using a
 * pre-defined default value or fail the request"; it may also "fully or partially ignore the scope
 * requested by the client", telling it in the token response (§5.1). MCP 2025-11-25 scope selection: a
 * client requests what the 401 challenge's `scope` names, else the PRM `scopes_supported`, else nothing.
 *
 * The rule, one place for every client:
 * 1. The service's scopes that were requested are kept; the service's `required_scopes` (what its 401
 *    challenge advertises) are always added: a token without them would only earn a 403 at the proxy.
 *    So a request with no `scope`, or with only scopes the service does not know, gets the defaults.
 * 2. `openid` and `offline_access` are kept when requested (OIDC and refresh semantics).
 * 3. Every other value is dropped rather than refused: clients add `openid email profile` or another
 *    service's scopes on their own, and `invalid_scope` would break their sign-in for nothing. The token
 *    response's `scope` says what was granted.
 * 4. A service without scopes still needs something granted (oidc-provider ends an authorization that
 *    grants nothing with `access_denied`): the request is then processed as `openid`, so the grant holds
 *    the OpenID scope, the access token carries the service's audience and no `scope` claim, and an ID
 *    token is issued beside it, as OpenID Connect does for `openid`.
 */
import type { ResolvedService } from '../config/services.js';

/** Scopes that are not resource scopes and pass through unchanged when requested. */
export const PROTOCOL_SCOPES = ['openid', 'offline_access'] as const;

export interface ScopeSelection {
  /** The space-separated scope the request is processed with. */
  scope: string;
  /** The service's scopes in it (what the consent page shows and the access token carries). */
  resourceScopes: string[];
  /** Requested values that were dropped (neither the service's nor protocol scopes). */
  dropped: string[];
}

export function selectScopes(requested: string | undefined, service: ResolvedService): ScopeSelection {
  const asked = [...new Set((requested ?? '').split(' ').filter(Boolean))];
  const resourceScopes = service.scopes.filter((s) => asked.includes(s) || service.requiredScopes.includes(s));
  const protocol: string[] = PROTOCOL_SCOPES.filter((s) => asked.includes(s));
  const dropped = asked.filter((s) => !service.scopes.includes(s) && !(PROTOCOL_SCOPES as readonly string[]).includes(s));
  if (resourceScopes.length === 0 && !protocol.includes('openid')) protocol.unshift('openid');
  return { scope: [...protocol, ...resourceScopes].join(' '), resourceScopes, dropped };
}
