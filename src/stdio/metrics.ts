/**
 * Metrics of the local MCP server processes, on the gateway's registry (src/observability/metrics.ts).
 * Labels are bounded: the service id (from the configuration) and the reason (a fixed list), never a user.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ExitReason } from './child.js';

export class StdioMetrics {
  readonly #processes: Gauge<'service'>;
  readonly #starts: Counter<'service'>;
  readonly #crashes: Counter<'service' | 'reason'>;

  constructor(registry: Registry) {
    this.#processes = new Gauge({
      name: 'mcp_gateway_stdio_processes',
      help: 'Local (stdio) MCP server processes running, by service',
      labelNames: ['service'] as const,
      registers: [registry],
    });
    this.#starts = new Counter({
      name: 'mcp_gateway_stdio_starts_total',
      help: 'Local (stdio) MCP server processes started, by service',
      labelNames: ['service'] as const,
      registers: [registry],
    });
    this.#crashes = new Counter({
      name: 'mcp_gateway_stdio_crashes_total',
      help: 'Local (stdio) MCP server processes that ended unexpectedly, by service and reason (exited, start_failed, output_too_large, output_flood)',
      labelNames: ['service', 'reason'] as const,
      registers: [registry],
    });
  }

  started(service: string): void {
    this.#starts.labels(service).inc();
    this.#processes.labels(service).inc();
  }

  stopped(service: string): void {
    this.#processes.labels(service).dec();
  }

  crashed(service: string, reason: ExitReason): void {
    this.#crashes.labels(service, reason).inc();
  }
}
