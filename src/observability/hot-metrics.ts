/**
 * Counters, gauges and histograms for the proxy's hot path, registered in the same prom-client registry
 * as every other metric and exported in exactly its format (docs/observability.md).
 *
 * Why not prom-client's own classes here: a prom-client child (`histogram.labels('svc')`) still rebuilds
 * and validates its label object, hashes it (sorting the names) and looks the series up on every
 * `observe` / `inc`. Three of those per proxied request were about a fifth of the gateway's own CPU on the
 * proxy path (profile in docs/performance.md). Here a child IS its series: `observe` is a bucket search
 * and three additions, `inc` one addition. Label values are fixed when the child is made (bounded:
 * service ids from the configuration, status codes).
 *
 * The objects implement what prom-client's Registry and AggregatorRegistry read of a metric (`name`,
 * `help`, `type`, `aggregator`, `get()`, `reset()`), so `/metrics`, default labels and cluster
 * aggregation treat them like prom-client's own.
 */
import type { Aggregator, Registry } from 'prom-client';

type LabelValues = Record<string, string | number>;

/** One exported sample, as prom-client's metrics return them from `get()`. */
interface Sample {
  value: number;
  labels: LabelValues;
  /** Labels formatted after `labels` (and after default labels) in the text format. */
  sharedLabels?: LabelValues;
  metricName?: string;
}

/** A metric as prom-client's `get()` returns it (what the Registry formats and AggregatorRegistry sums). */
export interface ExportedMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: Aggregator;
  values: Sample[];
}

abstract class HotMetric<Child> {
  readonly aggregator: Aggregator = 'sum';
  readonly #children = new Map<string, Child>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The child of these label values (in `labelNames` order), made on first use and kept. */
  labels(...values: string[]): Child {
    if (values.length !== this.labelNames.length) {
      throw new TypeError(`${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`);
    }
    const key = values.join('\u0000');
    let child = this.#children.get(key);
    if (child === undefined) {
      const labels: LabelValues = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i]!));
      child = this.create(labels);
      this.#children.set(key, child);
    }
    return child;
  }

  protected children(): IterableIterator<Child> {
    return this.#children.values();
  }

  protected abstract create(labels: LabelValues): Child;
  abstract reset(): void;
}

/** Counters and gauges: one value per child, one sample per child. */
abstract class ScalarMetric<Child extends { value: number; readonly labels: LabelValues }> extends HotMetric<Child> {
  abstract readonly type: 'counter' | 'gauge';

  reset(): void {
    for (const c of this.children()) c.value = 0;
  }

  async get(): Promise<ExportedMetric> {
    const values: Sample[] = [];
    for (const c of this.children()) values.push({ value: c.value, labels: { ...c.labels } });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A counter child: one series. */
export class CounterSeries {
  value = 0;
  constructor(readonly labels: LabelValues) {}
  inc(by = 1): void {
    this.value += by;
  }
}

export class HotCounter extends ScalarMetric<CounterSeries> {
  readonly type = 'counter' as const;
  protected create(labels: LabelValues): CounterSeries {
    return new CounterSeries(labels);
  }
}

/** A gauge child: one series that goes up and down. */
export class GaugeSeries {
  value = 0;
  constructor(readonly labels: LabelValues) {}
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
  set(v: number): void {
    this.value = v;
  }
}

export class HotGauge extends ScalarMetric<GaugeSeries> {
  readonly type = 'gauge' as const;
  protected create(labels: LabelValues): GaugeSeries {
    return new GaugeSeries(labels);
  }
}

/** A histogram child: per-bucket counts (not cumulative; summed at export), sum and count. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: LabelValues,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    const bounds = this.bounds;
    // Buckets are few (≤ 16) and most observations land in the first ones: a linear scan beats a bisection.
    for (let i = 0; i < bounds.length; i++) {
      if (v <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

export class HotHistogram extends HotMetric<HistogramSeries> {
  readonly type = 'histogram' as const;
  readonly #bounds: Float64Array;

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
    if (labelNames.includes('le')) throw new TypeError(`${name}: le is a reserved label name`);
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new TypeError(`${name}: buckets must be finite and distinct`);
    }
    this.#bounds = Float64Array.from(sorted);
  }

  protected create(labels: LabelValues): HistogramSeries {
    return new HistogramSeries(labels, this.#bounds);
  }

  reset(): void {
    for (const c of this.children()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }

  /** prom-client's histogram export: cumulative `_bucket` series with `le`, then `+Inf`, `_sum`, `_count`. */
  async get(): Promise<ExportedMetric> {
    return this.#export(false);
  }

  /**
   * What prom-client's Registry formats as text: the same samples with `le` apart from the series' labels
   * (`sharedLabels`), so that default labels land where prom-client puts them (`{le="…",worker="2",service="…"}`).
   */
  async getForPromString(): Promise<ExportedMetric> {
    return this.#export(true);
  }

  #export(shared: boolean): ExportedMetric {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    const sample = (value: number, le: number | string | undefined, labels: LabelValues, metricName: string): Sample => {
      if (shared) return { value, labels: le === undefined ? {} : { le }, sharedLabels: labels, metricName };
      return { value, labels: le === undefined ? { ...labels } : { le, ...labels }, metricName };
    };
    for (const c of this.children()) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += c.counts[i]!;
        values.push(sample(acc, this.#bounds[i]!, c.labels, bucket));
      }
      values.push(sample(c.count, '+Inf', c.labels, bucket));
      values.push(sample(c.sum, undefined, c.labels, `${this.name}_sum`));
      values.push(sample(c.count, undefined, c.labels, `${this.name}_count`));
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
