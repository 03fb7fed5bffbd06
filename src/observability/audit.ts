/**
 * The audit stream: security events as structured log lines with a stable schema (docs/observability.md).
 * Every line has `audit: true`, `event`, and only identifiers (user id, client id, service id, grant id),
 * never a token, code or secret.
 */
import type { FastifyBaseLogger } from 'fastify';

export type AuditEvent =
  | 'sign_in.success'
  | 'sign_in.failure'
  | 'consent.granted'
  | 'consent.denied'
  | 'client.registered'
  | 'client.deleted'
  | 'token.issued'
  | 'token.refresh_reuse'
  | 'token.revoked'
  | 'grant.revoked'
  | 'policy.denied'
  | 'keys.rotated'
  | 'upstream.connected'
  | 'upstream.refresh_failed'
  | 'upstream.exchange_failed'
  | 'upstream.disconnected';

export interface AuditFields {
  user?: string;
  client_id?: string;
  service?: string;
  grant_id?: string;
  grant_type?: string;
  /** Space-separated scopes granted (token.issued). */
  scope?: string;
  reason?: string;
  ip?: string;
  [k: string]: string | number | boolean | undefined;
}

export class AuditLog {
  constructor(private readonly log: FastifyBaseLogger) {}

  emit(event: AuditEvent, fields: AuditFields = {}): void {
    this.log.info({ audit: true, event, ...fields }, `audit ${event}`);
  }
}
