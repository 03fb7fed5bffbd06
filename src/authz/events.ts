/**
 * oidc-provider events → audit lines and metrics (one place feeds both, so they cannot drift apart). Only
 * identifiers are recorded (client id, grant id, user id), never a token, code or secret.
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { GatewayContext } from '../context.js';
import { serviceForResource } from './resource-servers.js';
import { ANSWERED_FROM_GRACE } from './refresh-grace.js';

interface RevokedToken {
  kind: string;
  clientId?: string;
  grantId?: string;
}

export function wireProviderEvents(provider: Provider, ctx: GatewayContext): void {
  provider.on('grant.success', (koa: KoaContextWithOIDC) => {
    const grantType = String(koa.oidc.params?.grant_type ?? 'unknown');
    ctx.metrics.tokensIssued.inc({ grant_type: grantType });
    ctx.tracing?.annotate(koa.req, {
      'oauth.grant_type': grantType,
      'oauth.outcome': 'issued',
      'oauth.client_id': koa.oidc.client?.clientId ?? '',
    });
    const at = koa.oidc.entities.AccessToken as (typeof koa.oidc.entities.AccessToken & { aud?: unknown; scope?: unknown }) | undefined;
    // The service is the token's audience (exactly one, RFC 8707), named by its id as in every other
    // event (P13 in docs/security.md); the scope granted with it. Identifiers only: never the token.
    const aud = Array.isArray(at?.aud) ? at.aud[0] : at?.aud;
    const service = typeof aud === 'string' ? (serviceForResource(ctx, aud)?.id ?? aud) : undefined;
    ctx.audit.emit('token.issued', {
      grant_type: grantType,
      client_id: koa.oidc.client?.clientId,
      user: at?.accountId,
      grant_id: at?.grantId,
      service,
      scope: typeof at?.scope === 'string' ? at.scope : undefined,
    });
  });
  // oidc-provider's InvalidGrant carries the reason in `error_detail` (the response says only invalid_grant);
  // sequential reuse (refresh_token.js) and a lost concurrent race (adapter.ts) use the same text.
  provider.on('grant.error', (koa: KoaContextWithOIDC, err: Error & { error_detail?: string; error?: string }) => {
    ctx.tracing?.annotate(koa.req, {
      'oauth.grant_type': String(koa.oidc.params?.grant_type ?? 'unknown').slice(0, 100),
      'oauth.outcome': err.error_detail === ANSWERED_FROM_GRACE ? 'refresh_grace' : (err.error ?? 'error'),
    });
    const ids = { client_id: koa.oidc.client?.clientId, grant_id: koa.oidc.entities.RefreshToken?.grantId };
    if (err.error_detail === 'refresh token already used') ctx.audit.emit('token.refresh_reuse', ids);
    // Not a failure: the request got the pair the first use was issued (tokens.refresh_reuse_grace).
    else if (err.error_detail === ANSWERED_FROM_GRACE) ctx.audit.emit('token.refresh_grace', ids);
  });
  provider.on('registration_create.success', (_koa: KoaContextWithOIDC, client: { clientId: string; clientName?: string }) => {
    ctx.audit.emit('client.registered', { client_id: client.clientId, client_name: client.clientName });
  });
  // `*.destroyed` fires for every deletion (rotation, replay handling, …). token.revoked is only for an
  // RFC 7009 revocation: the token the revocation endpoint found AND destroyed in this request.
  const destroyed = new WeakSet<object>();
  for (const kind of ['access_token', 'refresh_token'] as const) {
    provider.on(`${kind}.destroyed` as 'access_token.destroyed', (token: object) => void destroyed.add(token));
  }
  provider.use(async (koa, next) => {
    await next();
    if (koa.oidc?.route !== 'revocation' || koa.status !== 200) return;
    const entities = koa.oidc.entities as { AccessToken?: RevokedToken; RefreshToken?: RevokedToken };
    const token = entities.RefreshToken ?? entities.AccessToken;
    if (token && destroyed.has(token)) {
      ctx.audit.emit('token.revoked', { client_id: token.clientId, kind: token.kind, grant_id: token.grantId });
    }
  });
  // Grant revocation (replay, refresh-token reuse, RFC 7009 of a grant's token, operator): grant.revoked,
  // emitted once per grant by ProviderHost.
  // `--debug`: why an authorization or a token request was refused (the rule, in oidc-provider's words;
  // its descriptions and details name parameters and rules, never token values).
  const refused =
    (stage: string) => (koa: KoaContextWithOIDC, err: Error & { error?: string; error_description?: string; error_detail?: string }) => {
      ctx.log.debug(
        {
          stage,
          client_id: koa.oidc?.client?.clientId,
          error: err.error,
          error_description: err.error_description,
          error_detail: err.error_detail,
        },
        `${stage} refused: ${err.error ?? err.name}${err.error_description ? ` (${err.error_description})` : ''}${err.error_detail ? `: ${err.error_detail}` : ''}`,
      );
    };
  provider.on('authorization.error', refused('authorization'));
  provider.on('grant.error', refused('token'));
  provider.on('server_error', (_koa: KoaContextWithOIDC, err: Error) => {
    ctx.log.error({ err }, 'authorization server error');
  });
}
