/**
 * The proxy's hot-path metrics (src/observability/hot-metrics.ts) must be indistinguishable from
 * prom-client's own in every output: the text exposition, the JSON that cluster aggregation reads, and
 * with default labels. Each case feeds the same observations to both and compares the outputs exactly.
 */
import { describe, expect, it } from 'vitest';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotGauge, HotHistogram } from '../../src/observability/hot-metrics.js';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Observations on bucket bounds, between them, below the first, above the last, and zero. */
const VALUES = [0, 0.0001, 0.001, 0.0011, 0.0049, 0.005, 0.3, 1, 7.5, 299.9, 300, 301, 1e6];

function both() {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = {
    counter: new HotCounter('t_requests_total', 'requests', ['service', 'status'], ours),
    gauge: new HotGauge('t_streams', 'streams', ['service'], ours),
    histogram: new HotHistogram('t_duration_seconds', 'duration', ['service'], BUCKETS, ours),
  };
  const prom = {
    counter: new Counter({ name: 't_requests_total', help: 'requests', labelNames: ['service', 'status'], registers: [theirs] }),
    gauge: new Gauge({ name: 't_streams', help: 'streams', labelNames: ['service'], registers: [theirs] }),
    histogram: new Histogram({
      name: 't_duration_seconds',
      help: 'duration',
      labelNames: ['service'],
      buckets: BUCKETS,
      registers: [theirs],
    }),
  };
  const feed = () => {
    for (const service of ['alpha', 'beta']) {
      const h = hot.histogram.labels(service);
      const p = prom.histogram.labels(service);
      for (const v of service === 'alpha' ? VALUES : VALUES.slice(3, 6)) {
        h.observe(v);
        p.observe(v);
      }
      for (const status of ['200', '401', '200']) {
        hot.counter.labels(service, status).inc();
        prom.counter.labels(service, status).inc();
      }
      hot.gauge.labels(service).inc();
      prom.gauge.labels(service).inc();
    }
    hot.gauge.labels('alpha').dec();
    prom.gauge.labels('alpha').dec();
    hot.counter.labels('beta', '502').inc(3);
    prom.counter.labels('beta', '502').inc(3);
  };
  return { ours, theirs, hot, feed };
}

describe('hot-path metrics', () => {
  it('export the same text as prom-client', async () => {
    const { ours, theirs, feed } = both();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    feed();
    const text = await ours.metrics();
    expect(text).toContain('t_duration_seconds_bucket{le="+Inf",service="alpha"} 13');
    expect(text).toBe(await theirs.metrics());
  });

  it('export the same text with default labels (the worker label of several workers)', async () => {
    const { ours, theirs, feed } = both();
    ours.setDefaultLabels({ worker: '2' });
    theirs.setDefaultLabels({ worker: '2' });
    feed();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('export the same JSON, and aggregate across workers like prom-client', async () => {
    const a = both();
    const b = both();
    a.feed();
    b.feed();
    b.feed();
    const ours = [await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()];
    const theirs = [await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()];
    // prom-client adds `exemplar: null` to histogram samples (exemplars are off): the only difference allowed.
    const withoutExemplars = (x: unknown) => JSON.parse(JSON.stringify(x, (k, v: unknown) => (k === 'exemplar' ? undefined : v)));
    expect(withoutExemplars(ours)).toEqual(withoutExemplars(theirs));
    const sum = AggregatorRegistry.aggregate(ours as never);
    expect(await sum.metrics()).toBe(await AggregatorRegistry.aggregate(theirs as never).metrics());
    expect(await sum.metrics()).toContain('t_requests_total{service="beta",status="502"} 9');
  });

  it('reset to zero (the series stay: the proxy holds its children for the life of the process)', async () => {
    const { ours, feed } = both();
    feed();
    ours.resetMetrics();
    const samples = (await ours.getMetricsAsJSON()).flatMap((m) => m.values);
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.every((v) => v.value === 0)).toBe(true);
  });

  it('refuse a wrong number of label values and the reserved le label', () => {
    const { hot } = both();
    expect(() => hot.counter.labels('alpha')).toThrow(/expected 2 label values/);
    expect(() => new HotHistogram('x', 'x', ['le'], [1], new Registry())).toThrow(/le is a reserved/);
    expect(() => new HotHistogram('y', 'y', [], [1, 1], new Registry())).toThrow(/distinct/);
  });
});
