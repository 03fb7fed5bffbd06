/**
 * What the parts of a running gateway share. Built once by `createGateway` and handed to the
 * authorization server (src/authz) and the proxy (src/proxy); dependencies point one way:
 * http → authz / proxy → storage.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { GatewayConfig } from './config/schema.js';
import type { ResolvedService } from './config/services.js';
import type { Store } from './storage/store.js';
import type { KeyManager } from './authz/keys.js';
import type { RevocationList } from './authz/revocation.js';
import type { Metrics } from './observability/metrics.js';
import type { AuditLog } from './observability/audit.js';
import type { StorageMonitor } from './http/availability.js';
import type { RateLimits } from './http/rate-limit.js';
import type { UpstreamHealth } from './upstream/types.js';

export interface GatewayContext {
  config: GatewayConfig;
  /** Issuer without trailing slash (an origin). */
  issuer: string;
  services: Map<string, ResolvedService>;
  store: Store;
  keys: KeyManager;
  revocations: RevocationList;
  log: FastifyBaseLogger;
  metrics: Metrics;
  audit: AuditLog;
  /** Whether storage is usable right now (src/http/availability.ts). */
  availability: StorageMonitor;
  /**
   * Rate limits (src/http/rate-limit.ts). The OAuth endpoints are limited by a global hook; the proxy
   * applies the failed-authentication limit itself where it rejects a token (`blockedFor`, `failedAuth`).
   */
  limits: RateLimits;
  /** The identity provider as last seen (set by the authorization server; absent for `dev` or none). */
  upstream?: UpstreamHealth;
}
