/**
 * Metrics across `workers: N` (src/cli/workers.ts). A scrape lands on one worker; it answers for all of them:
 * it gathers every worker's registry in prom-client's JSON form (topic `metrics`, src/observability/cluster.ts)
 * and aggregates them with prom-client's `AggregatorRegistry.aggregate`, each metric by its own `aggregator`
 * (counters and histograms summed; gauges as declared in src/observability/metrics.ts).
 *
 * Process-level series (memory, CPU, event loop, GC) carry `worker="<n>"` and stay one per worker; the
 * gateway's own series carry no worker label and are the cluster's totals. `mcp_gateway_worker_up{worker}`
 * says whose metrics the scrape holds: 0 for a worker that did not answer in time (or was being replaced),
 * and then the totals lack its share.
 */
import { AggregatorRegistry, Gauge, Registry, type Aggregator } from 'prom-client';
import { GATHER_TIMEOUT_MS, type WorkerPeers } from './cluster.js';

/** The label of process-level series, one per worker (src/observability/metrics.ts). */
export const WORKER_LABEL = 'worker';
/** The topic each worker answers with its registry. */
export const METRICS_TOPIC = 'metrics';

export type RegistryJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** `mcp_gateway_worker_up{worker}` for workers 1…`expected`: 1 if its metrics are in this scrape. */
function upRegistry(expected: number, answered: ReadonlySet<number>): Registry {
  const registry = new Registry();
  const up = new Gauge({
    name: 'mcp_gateway_worker_up',
    help: `1 when the worker's metrics are in this scrape, 0 when it did not answer within ${GATHER_TIMEOUT_MS / 1000} s (the totals then lack its share)`,
    labelNames: [WORKER_LABEL],
    registers: [registry],
  });
  for (let id = 1; id <= expected; id++) up.set({ [WORKER_LABEL]: String(id) }, answered.has(id) ? 1 : 0);
  return registry;
}

/**
 * Every worker's metrics as one registry. A per-worker series (labelled `worker`) is unique to its worker,
 * so it is kept as it is (`first`), whatever its aggregator: prom-client's `omit` on
 * `process_start_time_seconds` would otherwise drop the one series that shows a worker was restarted.
 */
export function aggregateWorkers(answers: readonly RegistryJson[]): Registry {
  const perWorker: Aggregator = 'first';
  return AggregatorRegistry.aggregate(
    answers.map((metrics) =>
      metrics.map((m) => (m.values.length > 0 && m.values.every((v) => WORKER_LABEL in v.labels) ? { ...m, aggregator: perWorker } : m)),
    ),
  );
}

/** This worker answers the others' scrapes with `registry`. */
export function shareMetrics(peers: WorkerPeers, registry: Registry): void {
  peers.answer(METRICS_TOPIC, () => registry.getMetricsAsJSON());
}

/** The scrape text for the whole cluster: every worker's registry aggregated, and `mcp_gateway_worker_up`. */
export async function clusterScrape(peers: WorkerPeers): Promise<string> {
  const gathered = await peers.gather<RegistryJson>(METRICS_TOPIC);
  // In worker order (the shares arrive sorted), so that the per-worker series come out in the same order every scrape.
  const registry = aggregateWorkers([...gathered.shares.values()]);
  const parts = await Promise.all([registry.metrics(), upRegistry(gathered.expected, new Set(gathered.shares.keys())).metrics()]);
  return parts.join('\n');
}
