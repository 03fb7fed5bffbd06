/**
 * Requests and errors per minute per service for the Services page, from the proxy's own Prometheus
 * counters (nothing extra on the request path): a snapshot of the counters every 15 s, kept for two
 * minutes; the rate is the difference to the snapshot about a minute old (or to the start, when the
 * instance is younger than a minute). With `workers: N`, the counters of every worker, summed
 * (`Metrics.gatherer`); a worker restarted in between counts from zero again, so a difference that
 * would be negative is 0.
 */
import type { MetricValues, Metrics } from '../observability/metrics.js';

interface Counts {
  requests: number;
  errors: number;
}

interface Snapshot {
  at: number;
  perService: Map<string, Counts>;
}

const EVERY_MS = 15_000;
const WINDOW_MS = 60_000;

export class ServiceRates {
  /** Until the first snapshot is in: zero at construction (this process's counters start at zero). */
  readonly #start: Snapshot = { at: Date.now(), perService: new Map() };
  readonly #snapshots: Snapshot[] = [];
  #timer: NodeJS.Timeout | undefined;

  readonly #requests: string;
  readonly #streams: string;
  /** The two metrics the page reads, from every worker. */
  readonly #read: ReturnType<Metrics['gatherer']>;

  constructor(metrics: Metrics) {
    this.#requests = metrics.proxyRequests.name;
    this.#streams = metrics.activeStreams.name;
    this.#read = metrics.gatherer([metrics.proxyRequests, metrics.activeStreams]);
  }

  /** Takes the first snapshot now (with workers, the others' counters are not zero) and then every 15 s. */
  start(): void {
    const take = () => void this.#take().catch(() => undefined);
    take();
    this.#timer = setInterval(take, EVERY_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Per service: requests and errors (5xx answers and backend failures) over about the last minute, open
   * proxied responses (SSE streams included), and the workers whose counts are missing.
   */
  async lastMinute(): Promise<{ rates: Map<string, Counts & { seconds: number }>; streams: Map<string, number>; missing: number[] }> {
    const { metrics, missing } = await this.#read();
    const now = countsOf(metrics, this.#requests);
    const cutoff = Date.now() - WINDOW_MS;
    const base = [...this.#snapshots].reverse().find((s) => s.at <= cutoff) ?? this.#snapshots[0] ?? this.#start;
    const rates = new Map<string, Counts & { seconds: number }>();
    for (const [service, c] of now) {
      const b = base.perService.get(service) ?? { requests: 0, errors: 0 };
      rates.set(service, {
        requests: Math.max(0, c.requests - b.requests),
        errors: Math.max(0, c.errors - b.errors),
        seconds: Math.round((Date.now() - base.at) / 1000),
      });
    }
    const streams = new Map<string, number>();
    for (const v of valuesOf(metrics, this.#streams)) streams.set(String(v.labels.service), v.value);
    return { rates, streams, missing };
  }

  async #take(): Promise<void> {
    const { metrics } = await this.#read();
    this.#snapshots.push({ at: Date.now(), perService: countsOf(metrics, this.#requests) });
    const keepAfter = Date.now() - 2 * WINDOW_MS;
    while (this.#snapshots.length > 2 && this.#snapshots[0]!.at < keepAfter) this.#snapshots.shift();
  }
}

function valuesOf(metrics: readonly MetricValues[], name: string): MetricValues['values'] {
  return metrics.find((m) => m.name === name)?.values ?? [];
}

/** Requests and 5xx answers per service, from `mcp_gateway_proxy_requests_total`. */
function countsOf(metrics: readonly MetricValues[], name: string): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const v of valuesOf(metrics, name)) {
    const service = String(v.labels.service);
    let c = out.get(service);
    if (!c) out.set(service, (c = { requests: 0, errors: 0 }));
    c.requests += v.value;
    if (Number(v.labels.status) >= 500) c.errors += v.value;
  }
  return out;
}
