/**
 * The audit stream: security events as structured log lines with a stable schema (docs/observability.md).
 * Every line has `audit: true`, `event`, and only identifiers (user id, client id, service id, grant id),
 * never a token, code or secret.
 */
import type { FastifyBaseLogger } from 'fastify';
import { missingWorkers, type WorkerPeers } from './cluster.js';

export type AuditEvent =
  | 'sign_in.success'
  | 'sign_in.failure'
  | 'consent.granted'
  | 'consent.denied'
  | 'client.registered'
  | 'client.deleted'
  | 'token.issued'
  | 'token.refresh_reuse'
  | 'token.refresh_grace'
  | 'token.revoked'
  | 'grant.revoked'
  | 'policy.denied'
  | 'tool.denied'
  | 'keys.rotated'
  | 'admin.sign_in'
  | 'admin.refused'
  | 'admin.sign_out'
  | 'admin.session_revoked'
  | 'user.revoked'
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

/** One audit event as the console's Activity page shows it (src/admin/). */
export interface RecentAuditEvent {
  /** Epoch milliseconds. */
  at: number;
  event: AuditEvent;
  fields: AuditFields;
}

/**
 * The last `capacity` audit events of this process, in memory, for the console's Activity page and its
 * live tail. Not a store: it starts empty at each start and holds only this instance's events; the log
 * lines remain the audit record. With `workers: N` each worker holds its own and {@link recentEverywhere}
 * gathers them.
 */
export class AuditRing {
  readonly #items: RecentAuditEvent[] = [];
  #next = 0;

  constructor(readonly capacity = 1000) {}

  push(item: RecentAuditEvent): void {
    if (this.#items.length < this.capacity) this.#items.push(item);
    else this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
  }

  /** Newest first. */
  recent(): RecentAuditEvent[] {
    const n = this.#items.length;
    const out: RecentAuditEvent[] = [];
    for (let i = 1; i <= n; i++) out.push(this.#items[(this.#next - i + n) % n]!);
    return out;
  }
}

const AUDIT_TOPIC = 'audit-recent';

/** In a worker: `ring` answers the other workers' {@link recentEverywhere}. */
export function shareAuditRing(peers: WorkerPeers, ring: AuditRing): void {
  peers.answer(AUDIT_TOPIC, () => ring.recent());
}

/**
 * The recent events of this instance, newest first: `ring`'s, or in a worker every worker's ring merged by
 * time, with the workers whose events are missing (they did not answer in time).
 */
export async function recentEverywhere(
  ring: AuditRing,
  peers: WorkerPeers | undefined,
): Promise<{ events: RecentAuditEvent[]; missing: number[] }> {
  if (!peers) return { events: ring.recent(), missing: [] };
  const gathered = await peers.gather<RecentAuditEvent[]>(AUDIT_TOPIC);
  const events = [...gathered.shares.values()].flat();
  // Stable: events of one worker at the same millisecond keep their order.
  events.sort((a, b) => b.at - a.at);
  return { events, missing: missingWorkers(gathered) };
}

export class AuditLog {
  /** Set by the console (src/admin/) when it is configured; absent, emitting costs nothing more. */
  ring: AuditRing | undefined;

  constructor(private readonly log: FastifyBaseLogger) {}

  emit(event: AuditEvent, fields: AuditFields = {}): void {
    this.log.info({ audit: true, event, ...fields }, `audit ${event}`);
    this.ring?.push({ at: Date.now(), event, fields });
  }
}
