/**
 * One autocannon run in its own process (the load generator never shares a CPU-time slice with the
 * server it measures inside one event loop). Usage: tsx bench/load.ts '<json options>'; prints one JSON line.
 */
import autocannon from 'autocannon';

const opts = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  connections?: number;
  duration?: number;
  headers?: Record<string, string>;
  body?: string;
  method?: string;
  /** A fixed total request rate (req/s) instead of as fast as possible. */
  rate?: number;
  /** A fixed number of requests instead of a duration. */
  amount?: number;
};
const result = await autocannon({
  url: opts.url,
  connections: opts.connections ?? 32,
  ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration ?? 5 }),
  method: (opts.method ?? 'POST') as 'POST',
  headers: opts.headers ?? {},
  body: opts.body,
  pipelining: 1,
  ...(opts.rate ? { overallRate: opts.rate } : {}),
});
const non2xx = result.non2xx + result.errors + result.timeouts;
process.stdout.write(
  `${JSON.stringify({ rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, p999: result.latency.p99_9, total: result.requests.total, non2xx, errors: result.errors })}\n`,
);
