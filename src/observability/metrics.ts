/**
 * Prometheus metrics (prom-client, private registry per gateway so tests stay independent). Labels are
 * bounded: service ids come from the configuration, statuses are grouped, nothing user-derived.
 * With `workers` > 1 a scrape answers for every worker (src/observability/cluster-metrics.ts): each
 * metric's `aggregator` says how its workers' values combine (prom-client's default, `sum`, unless set).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { WorkerPeers, clusterWorker, missingWorkers } from './cluster.js';
import { WORKER_LABEL, aggregateWorkers, clusterScrape, shareMetrics, type RegistryJson } from './cluster-metrics.js';
import { HotCounter, HotGauge, HotHistogram, type ExportedMetric } from './hot-metrics.js';

/** A metric's name and samples, as the gathering of {@link Metrics.gatherer} gives them. */
export type MetricValues = Pick<RegistryJson[number], 'name' | 'values'>;

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'mcp_gateway_http_requests_total',
    help: 'HTTP requests handled, by route group and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  // The proxy's per-request metrics (src/observability/hot-metrics.ts): same registry, same format.
  readonly proxyRequests = new HotCounter(
    'mcp_gateway_proxy_requests_total',
    'MCP requests proxied, by service and status code',
    ['service', 'status'],
    this.registry,
  );
  readonly proxyDuration = new HotHistogram(
    'mcp_gateway_proxy_duration_seconds',
    'Proxied request duration until the response ended',
    ['service'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    this.registry,
  );
  readonly proxyTtfb = new HotHistogram(
    'mcp_gateway_proxy_ttfb_seconds',
    'Time from request to backend response headers',
    ['service'],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    this.registry,
  );
  readonly activeStreams = new HotGauge(
    'mcp_gateway_active_streams',
    'Open proxied responses (including SSE streams), by service',
    ['service'],
    this.registry,
  );
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
    // Across workers: 1 only when every worker's last check answered.
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly storageDegraded = new Gauge({
    name: 'mcp_gateway_storage_degraded',
    help: '1 when the gateway runs on the in-memory stand-in for an unreachable Redis (storage.redis.fallback: memory)',
    // Across workers: 1 when any worker runs on the stand-in.
    aggregator: 'max',
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

  /** The other workers of `workers: N`; undefined in a process of its own. */
  readonly peers: WorkerPeers | undefined;

  /** In a worker of `workers: N` (src/cli/workers.ts), the metrics also answer the other workers' scrapes. */
  constructor(options: { defaultMetrics?: boolean } = {}) {
    const worker = clusterWorker();
    // In a worker, process-level series name it (they stay one per worker in the aggregated scrape); the
    // gateway's own series do not, so that the workers' values add up.
    const labels = worker ? { labels: { [WORKER_LABEL]: String(worker.id) } } : {};
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'mcp_gateway_', ...labels });
    this.peers = worker ? new WorkerPeers(worker) : undefined;
    if (this.peers) shareMetrics(this.peers, this.registry);
  }

  /** The text `GET /metrics` answers: this registry, or in a worker every worker's, aggregated. */
  scrape(): Promise<string> {
    return this.peers ? clusterScrape(this.peers) : this.registry.metrics();
  }

  /**
   * Reads `these` metrics in prom-client's JSON form: this process's, or in a worker every worker's,
   * aggregated, with the workers whose share is missing. Only `these` cross IPC (a whole registry is about
   * 10 KB and 0.85 ms to read); every worker must make the same call, as it answers the others with them.
   */
  gatherer(
    these: readonly { readonly name: string; get(): Promise<ExportedMetric> }[],
  ): () => Promise<{ metrics: MetricValues[]; missing: number[] }> {
    const read = () => Promise.all(these.map((m) => m.get()));
    const peers = this.peers;
    if (!peers) return async () => ({ metrics: await read(), missing: [] });
    const topic = `metrics:${these.map((m) => m.name).join(',')}`;
    peers.answer(topic, read);
    return async () => {
      const gathered = await peers.gather<RegistryJson>(topic);
      return { metrics: await aggregateWorkers([...gathered.shares.values()]).getMetricsAsJSON(), missing: missingWorkers(gathered) };
    };
  }

  /** Stops answering the other workers (on gateway close). */
  close(): void {
    this.peers?.close();
  }
}
