/**
 * Requests and errors per minute per service for the Services page, from the proxy's own Prometheus
 * counters (nothing extra on the request path): a snapshot of the counters every 15 s, kept for two
 * minutes; the rate is the difference to the snapshot about a minute old (or to the start, when the
 * instance is younger than a minute). This instance only.
 */
import type { Metrics } from '../observability/metrics.js';

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
  readonly #snapshots: Snapshot[] = [{ at: Date.now(), perService: new Map() }];
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly metrics: Metrics) {}

  start(): void {
    this.#timer = setInterval(() => void this.#take(), EVERY_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Per service: requests and errors (5xx answers and backend failures) over about the last minute. */
  async lastMinute(): Promise<Map<string, Counts & { seconds: number }>> {
    const now = await this.#counts();
    const cutoff = Date.now() - WINDOW_MS;
    const base = [...this.#snapshots].reverse().find((s) => s.at <= cutoff) ?? this.#snapshots[0]!;
    const out = new Map<string, Counts & { seconds: number }>();
    for (const [service, c] of now) {
      const b = base.perService.get(service) ?? { requests: 0, errors: 0 };
      out.set(service, {
        requests: c.requests - b.requests,
        errors: c.errors - b.errors,
        seconds: Math.round((Date.now() - base.at) / 1000),
      });
    }
    return out;
  }

  /** Open proxied responses (SSE streams included) per service, from the gauge. */
  async openStreams(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const v of (await this.metrics.activeStreams.get()).values) out.set(String(v.labels.service), v.value);
    return out;
  }

  async #take(): Promise<void> {
    this.#snapshots.push({ at: Date.now(), perService: await this.#counts() });
    const keepAfter = Date.now() - 2 * WINDOW_MS;
    while (this.#snapshots.length > 2 && this.#snapshots[0]!.at < keepAfter) this.#snapshots.shift();
  }

  async #counts(): Promise<Map<string, Counts>> {
    const out = new Map<string, Counts>();
    const of = (service: string) => {
      let c = out.get(service);
      if (!c) out.set(service, (c = { requests: 0, errors: 0 }));
      return c;
    };
    for (const v of (await this.metrics.proxyRequests.get()).values) {
      const c = of(String(v.labels.service));
      c.requests += v.value;
      if (Number(v.labels.status) >= 500) c.errors += v.value;
    }
    return out;
  }
}
