/**
 * Signing-key rotation (the CLI's `keys rotate`): the new key is published in `/oauth/jwks` at once and
 * signs after `tokens.key_rotation_grace`; the previous key stays published for the longest token
 * lifetime after the switch, so tokens it signed keep verifying. The ProviderHost notices the changed
 * key set on the next request and rebuilds the provider.
 */
import type { GatewayContext } from '../context.js';
import type { SigningKeyRecord } from './keys.js';

export async function rotateSigningKey(ctx: GatewayContext, options: { graceSeconds?: number } = {}): Promise<SigningKeyRecord> {
  const grace = options.graceSeconds ?? ctx.config.tokens.key_rotation_grace;
  const retire = Math.max(ctx.config.tokens.access_token_ttl, 60);
  const next = await ctx.keys.rotate(grace, retire);
  ctx.audit.emit('keys.rotated', { kid: next.kid, active_at: new Date(next.activeAt).toISOString() });
  return next;
}
