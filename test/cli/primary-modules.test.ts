/**
 * With `workers: N` the primary only supervises (src/cli/workers.ts): it reads the configuration and forks.
 * It must not load the gateway (oidc-provider, fastify, undici, the storage drivers: about 50 MB of RSS,
 * docs/performance.md). The command's entry and `serve` import the gateway, the demo and the other
 * commands only with `import()`, where they run; this reads the real import graph and fails when a static
 * import brings any of them back into the primary.
 */
import { describe, expect, it } from 'vitest';
import { eagerClosure, importGraph, layerOf } from '../docs/import-graph.js';

const graph = importGraph();

describe('what a workers primary loads', () => {
  it('the graph marks import() as lazy (a parser that missed it would make the check below pass)', () => {
    expect(graph.edges).toContainEqual({ from: 'cli/serve.ts', to: 'http/app.ts', typeOnly: false, lazy: true });
    expect(graph.edges).toContainEqual({ from: 'cli/main.ts', to: 'cli/serve.ts', typeOnly: false, lazy: true });
  });

  it('cli/main.ts and cli/serve.ts load, with them, only the configuration, the version and the supervisor', () => {
    const loaded = new Set([...eagerClosure(graph.edges, 'cli/main.ts'), ...eagerClosure(graph.edges, 'cli/serve.ts')]);
    expect(loaded.has('http/app.ts')).toBe(false);
    expect(new Set([...loaded].map(layerOf))).toEqual(new Set(['cli', 'config', 'version', 'observability']));
    // From observability only the cluster's question channel (node:cluster), not metrics or the logger.
    expect([...loaded].filter((m) => layerOf(m) === 'observability')).toEqual(['observability/cluster.ts']);
    expect([...loaded].filter((m) => layerOf(m) === 'cli').sort()).toEqual([
      'cli/common.ts',
      'cli/fd-limit.ts',
      'cli/main.ts',
      'cli/serve.ts',
      'cli/workers.ts',
    ]);
  });
});
