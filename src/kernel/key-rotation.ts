/**
 * Signing-key rotation, the one path for both the running server (`rotateSigningKey(ctx)`) and the CLI's
 * `keys rotate` (which has no running gateway: it passes its own KeyManager and an audit sink writing the
 * same `keys.rotated` line, docs/observability.md).
 *
 * The new key is published in `/oauth/jwks` at once and signs after `tokens.key_rotation_grace`. The
 * previous key keeps signing until then, so the last thing it signed expires one maximum lifetime after
 * the switch: it stays published until then (`signedLifetimeSeconds`), plus the verifiers' clock
 * tolerance. The ProviderHost notices the changed key set on the next request and rebuilds the provider.
 */
import type { GatewayConfig } from '../config/schema.js';
import type { AuditEvent, AuditFields } from '../observability/audit.js';
import type { KeyManager, SigningKeyRecord } from './keys.js';

/** Lifetime of the ID tokens the authorization server signs (src/authz/provider.ts `ttl.IdToken`). */
export const ID_TOKEN_TTL_S = 3600;

/**
 * Clock skew a verifier of our JWTs may allow past `exp`: the proxy allows 5 s (src/proxy/access-token.ts);
 * backends verifying identity assertions and clients verifying ID tokens choose their own, commonly up to
 * a minute. A key outlives its last token by this much.
 */
export const VERIFIER_CLOCK_TOLERANCE_S = 60;

/**
 * The longest lifetime of anything the gateway signs with its key: RFC 9068 access tokens
 * (`tokens.access_token_ttl`), OIDC ID tokens (`ID_TOKEN_TTL_S`) and signed identity assertions
 * (`mcp_services.*.signed_identity.ttl`). The authorization server signs nothing else with it (no JWT
 * introspection, JARM or logout tokens are enabled in src/authz/provider.ts); whatever is added must be
 * added here.
 */
export function signedLifetimeSeconds(config: GatewayConfig): number {
  let longest = Math.max(config.tokens.access_token_ttl, ID_TOKEN_TTL_S);
  for (const service of Object.values(config.mcp_services)) {
    if (service.signed_identity?.enabled) longest = Math.max(longest, service.signed_identity.ttl);
  }
  return longest;
}

/** How long past the switch to the new key the previous key stays published. */
export function retirementSeconds(config: GatewayConfig): number {
  return signedLifetimeSeconds(config) + VERIFIER_CLOCK_TOLERANCE_S;
}

/** What a rotation needs: the gateway context has all three; the CLI builds them itself. */
export interface RotationContext {
  config: GatewayConfig;
  keys: KeyManager;
  audit: { emit(event: AuditEvent, fields?: AuditFields): void };
}

export async function rotateSigningKey(ctx: RotationContext, options: { graceSeconds?: number } = {}): Promise<SigningKeyRecord> {
  const grace = options.graceSeconds ?? ctx.config.tokens.key_rotation_grace;
  const retire = retirementSeconds(ctx.config);
  const next = await ctx.keys.rotate(grace, retire);
  ctx.audit.emit('keys.rotated', {
    kid: next.kid,
    active_at: new Date(next.activeAt).toISOString(),
    previous_retire_at: new Date(next.activeAt + retire * 1000).toISOString(),
  });
  return next;
}
