/**
 * Prometheus metrics (prom-client, private registry per gateway so tests stay independent). Labels are
 * bounded: service ids come from the configuration, statuses are grouped, nothing user-derived.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'mcp_gateway_http_requests_total',
    help: 'HTTP requests handled, by route group and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly proxyRequests = new Counter({
    name: 'mcp_gateway_proxy_requests_total',
    help: 'MCP requests proxied, by service and status code',
    labelNames: ['service', 'status'] as const,
    registers: [this.registry],
  });
  readonly proxyDuration = new Histogram({
    name: 'mcp_gateway_proxy_duration_seconds',
    help: 'Proxied request duration until the response ended',
    labelNames: ['service'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly proxyTtfb = new Histogram({
    name: 'mcp_gateway_proxy_ttfb_seconds',
    help: 'Time from request to backend response headers',
    labelNames: ['service'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly activeStreams = new Gauge({
    name: 'mcp_gateway_active_streams',
    help: 'Open proxied responses (including SSE streams), by service',
    labelNames: ['service'] as const,
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'mcp_gateway_upstream_errors_total',
    help: 'Backend failures, by service and kind (unreachable, timeout, aborted)',
    labelNames: ['service', 'kind'] as const,
    registers: [this.registry],
  });
  readonly tokensIssued = new Counter({
    name: 'mcp_gateway_tokens_issued_total',
    help: 'Access tokens issued, by grant type',
    labelNames: ['grant_type'] as const,
    registers: [this.registry],
  });
  readonly signIns = new Counter({
    name: 'mcp_gateway_sign_ins_total',
    help: 'Upstream sign-ins, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly policyDenials = new Counter({
    name: 'mcp_gateway_policy_denials_total',
    help: 'Requests or sign-ins refused by an access policy, by service',
    labelNames: ['service', 'stage'] as const,
    registers: [this.registry],
  });
  /**
   * Tool-level decisions (docs/authorization.md): `tool` is the rule that decided (its key as configured,
   * `prompt:` / `resource:` prefixed for those kinds, `(default)` for unnamed items), never the name a
   * client sent, so the label stays bounded by the configuration.
   */
  readonly toolDecisions = new Counter({
    name: 'gateway_tool_decisions_total',
    help: 'Calls decided by tools / prompts / resources rules, by service, rule and decision (allow, deny, insufficient_scope)',
    labelNames: ['service', 'tool', 'decision'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'mcp_gateway_auth_failures_total',
    help: 'Bearer authentication failures at the proxy, by service and reason',
    labelNames: ['service', 'reason'] as const,
    registers: [this.registry],
  });
  readonly storageErrors = new Counter({
    name: 'mcp_gateway_storage_errors_total',
    help: 'Storage operations that failed, by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly storageUp = new Gauge({
    name: 'mcp_gateway_storage_up',
    help: '1 when the storage back-end answered its last health check',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  readonly storageDegraded = new Gauge({
    name: 'mcp_gateway_storage_degraded',
    help: '1 when the gateway runs on the in-memory stand-in for an unreachable Redis (storage.redis.fallback: memory)',
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'mcp_gateway_rate_limited_total',
    help: 'Requests refused with 429 by a rate limit, by bucket (register, token, token_client, authorize, failed_auth)',
    labelNames: ['bucket'] as const,
    registers: [this.registry],
  });

  readonly upstreamTokenRefreshes = new Counter({
    name: 'mcp_gateway_upstream_token_refreshes_total',
    help: 'Refreshes of upstream tokens held for users (upstream_auth), by provider and outcome (success, refused, error)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly upstreamTokenExchanges = new Counter({
    name: 'mcp_gateway_upstream_token_exchanges_total',
    help: 'Token exchanges for upstream_auth services (RFC 8693 or on-behalf-of), by service and outcome (success, refused, error)',
    labelNames: ['service', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    // `workers` > 1: every series names its worker process (src/cli/workers.ts), so scrapes of different
    // workers never look like one counter going backwards; sum over `worker` to aggregate.
    const worker = process.env.GW_WORKER_ID;
    if (worker !== undefined && /^\d{1,3}$/.test(worker)) this.registry.setDefaultLabels({ worker });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'mcp_gateway_' });
  }
}
