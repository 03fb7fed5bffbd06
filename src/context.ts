/**
 * What the parts of a running gateway share. Built once by `createGateway` and handed to the
 * authorization server (src/authz) and the proxy (src/proxy); dependencies point one way:
 * http → authz / proxy → kernel → config / storage / observability (docs/architecture.md, Dependency rules).
 */
import type { FastifyBaseLogger, onRequestHookHandler } from 'fastify';
import type { GatewayConfig } from './config/schema.js';
import type { ResolvedService } from './config/services.js';
import type { Store, StoreHealth } from './storage/store.js';
import type { KeyManager } from './kernel/keys.js';
import type { RevocationList } from './kernel/revocation.js';
import type { Metrics } from './observability/metrics.js';
import type { AuditLog } from './observability/audit.js';
import type { Tracing } from './observability/tracing.js';
import type { UpstreamHealth } from './upstream/types.js';
import type { CredentialBroker } from './credentials/broker.js';

/**
 * What the parts read of storage availability. src/http/availability.ts `StorageMonitor` provides it; named
 * here by shape so that this file (which src/authz and src/proxy import) never imports src/http.
 */
export interface StorageAvailability {
  /** Whether storage answered its last probe. */
  readonly up: boolean;
  /** The store is the explicit in-memory stand-in for an unreachable Redis (`fallback: memory`). */
  readonly degraded: boolean;
  check(): Promise<StoreHealth>;
}

/** The rate limits as the proxy applies them (src/http/rate-limit.ts `RateLimits` provides it, by shape). */
export interface RateLimitGate {
  readonly enabled: boolean;
  readonly kind: 'redis' | 'local';
  /** Seconds the address (or the token fingerprint) is still blocked for failed authentication; 0 if not. */
  blockedFor(ip: string, fingerprint: string): number;
  /** Counts one failed authentication; resolves to whether it blocked. */
  failedAuth(ip: string, fingerprint: string): Promise<boolean>;
  /** The onRequest hook a route declares to be limited by one of the OAuth buckets. */
  guard(bucket: 'register' | 'token' | 'authorize'): onRequestHookHandler;
}

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
  availability: StorageAvailability;
  /**
   * Rate limits (src/http/rate-limit.ts). The OAuth endpoints are limited by a global hook; the proxy
   * applies the failed-authentication limit itself where it rejects a token (`blockedFor`, `failedAuth`).
   */
  limits: RateLimitGate;
  /** OpenTelemetry tracing (`telemetry`); absent when off, and then nothing on the request path looks further. */
  tracing?: Tracing;
  /** Upstream tokens held for users (src/credentials); absent when no service has `upstream_auth`. */
  credentials?: CredentialBroker;
  /** The identity provider as last seen (set by the authorization server; absent for `dev` or none). */
  upstream?: UpstreamHealth;
  /** Every redirecting identity provider as last seen, when more than one is configured (`upstream` is the first). */
  upstreams?: UpstreamHealth[];
}
