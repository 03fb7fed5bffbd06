/**
 * oidc-provider events → audit lines and metrics (STYLE habit 11: one place feeds both). Only
 * identifiers are recorded (client id, grant id, user id), never a token, code or secret.
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { GatewayContext } from '../context.js';

export function wireProviderEvents(provider: Provider, ctx: GatewayContext): void {
  provider.on('grant.success', (koa: KoaContextWithOIDC) => {
    const grantType = String(koa.oidc.params?.grant_type ?? 'unknown');
    ctx.metrics.tokensIssued.inc({ grant_type: grantType });
    const at = koa.oidc.entities.AccessToken;
    ctx.audit.emit('token.issued', { grant_type: grantType, client_id: koa.oidc.client?.clientId, user: at?.accountId, grant_id: at?.grantId });
  });
  provider.on('grant.error', (koa: KoaContextWithOIDC, err: Error & { error_description?: string }) => {
    if (err.error_description === 'refresh token already used' || err.message === 'refresh token already used') {
      ctx.audit.emit('token.refresh_reuse', { client_id: koa.oidc.client?.clientId, grant_id: koa.oidc.entities.RefreshToken?.grantId });
    }
  });
  provider.on('registration_create.success', (_koa: KoaContextWithOIDC, client: { clientId: string; clientName?: string }) => {
    ctx.audit.emit('client.registered', { client_id: client.clientId, client_name: client.clientName });
  });
  // RFC 7009 revocations: the model is destroyed inside the revocation endpoint (no dedicated event).
  for (const kind of ['access_token', 'refresh_token'] as const) {
    provider.on(`${kind}.destroyed` as "access_token.destroyed", (token: { kind: string; clientId?: string; grantId?: string }) => {
      ctx.audit.emit('token.revoked', { client_id: token.clientId, kind: token.kind, grant_id: token.grantId });
    });
  }
  provider.on('server_error', (_koa: KoaContextWithOIDC, err: Error) => {
    ctx.log.error({ err }, 'authorization server error');
  });
}
