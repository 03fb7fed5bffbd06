/**
 * Why a sign-in was refused, as the client is told in `error_description` when the person returns to it
 * from the error page: every refusal names the rule that refused (docs/authorization.md). The page names the same rule
 * in a person's words. Only these fixed texts are sent: nothing from the request is reflected.
 */
export const REFUSALS = {
  policy: (service: string) =>
    `denied by the access policy of service '${service}' (policy / access_policy): this account is not allowed to use it`,
  unknown_service: () => 'the requested resource is not a service of this gateway (resource must be {issuer}/{service}/mcp)',
  mismatch: () => 'the response of the identity provider did not match this sign-in attempt (state)',
  expired: () => 'this sign-in expired or was already completed, or consent was not given first; start again',
  upstream_denied: () => 'the identity provider refused the sign-in',
  upstream_unavailable: () => 'the identity provider could not be reached; try again later',
  upstream_failed: () => 'the sign-in at the identity provider could not be completed (see the gateway log)',
} as const;
export type Refusal = keyof typeof REFUSALS;

export const upstreamRefusal = (oauthError: string): Refusal =>
  oauthError === 'temporarily_unavailable'
    ? 'upstream_unavailable'
    : oauthError === 'access_denied'
      ? 'upstream_denied'
      : 'upstream_failed';
