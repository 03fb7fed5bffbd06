/**
 * docs/architecture.md states which folders of src/ may import which. This test reads the real import graph
 * (test/docs/import-graph.ts) and checks each stated rule, so the document stays true, and that no two folders
 * import each other, directly or round a loop (type-only imports included). Also: comments in src/ cite RFC / MCP
 * sections or docs/ pages that exist, never documents outside the repository.
 */
import { existsSync, readdirSync as readdirSyncNode, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { describeGraph, edgesBetween, importCycles, importGraph, layerImports, layerOf } from './import-graph.js';

const graph = importGraph();
const layers = layerImports(graph.edges);
const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');

/**
 * layer -> the only layers it may import, read from the "Dependency rules" table of docs/architecture.md:
 * rows `| src/<layer> | `a`, `b` | why |` (an em dash for "nothing"). The document is the source of the rules.
 */
function allowedFromDoc(text: string): Record<string, string[]> {
  const section = text.split(/^## /m).find((s) => s.startsWith('Dependency rules'));
  if (!section) throw new Error('docs/architecture.md has no "## Dependency rules" section');
  const out: Record<string, string[]> = {};
  for (const row of section.split('\n')) {
    const cells = row.split('|').map((c) => c.trim());
    const layer = /^`?src\/([a-z-]+)(?:\.ts)?\/?`?$/.exec(cells[1] ?? '')?.[1];
    if (!layer) continue;
    out[layer] = [...(cells[2] ?? '').matchAll(/`([a-z-]+)`/g)].map((m) => m[1]!);
  }
  return out;
}
const ALLOWED = allowedFromDoc(doc);

describe('docs/architecture.md dependency rules hold in src/', () => {
  it('the rule table was found and covers the folders', () => {
    expect(Object.keys(ALLOWED).length).toBeGreaterThanOrEqual(10);
    expect(ALLOWED.storage).toEqual(expect.arrayContaining(['config']));
  });

  it('the graph parser sees the imports (a broken parser would make every rule pass)', () => {
    expect(graph.modules).toContain('proxy/index.ts');
    expect(graph.edges.length).toBeGreaterThan(100);
    expect(graph.edges).toContainEqual({ from: 'index.ts', to: 'http/app.ts', typeOnly: false });
    expect(graph.edges).toContainEqual({ from: 'context.ts', to: 'storage/store.ts', typeOnly: true });
  });

  it('every folder of src/ is in the rule table and in the module map', () => {
    const all = [...new Set(graph.modules.map(layerOf))].filter((l) => !l.endsWith('.d'));
    for (const layer of all) {
      expect(Object.keys(ALLOWED), `src/${layer} has no dependency rule`).toContain(layer);
      expect(doc, `docs/architecture.md does not mention src/${layer}`).toMatch(new RegExp(`src/${layer}\\b`));
    }
  });

  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    it(`src/${layer} imports ${allowed.length ? `only ${allowed.join(', ')}` : 'nothing else in src/'}`, () => {
      const forbidden = [...(layers.get(layer) ?? [])].filter((l) => !allowed.includes(l));
      const offending = forbidden.flatMap((l) => edgesBetween(graph.edges, layer, l));
      expect(offending, `imports docs/architecture.md forbids`).toEqual([]);
    });
  }

  it('storage, config, observability and upstream import nothing from http, authz, proxy or cli', () => {
    for (const low of ['storage', 'config', 'observability', 'upstream']) {
      for (const high of ['http', 'authz', 'proxy', 'cli']) expect(edgesBetween(graph.edges, low, high)).toEqual([]);
    }
  });

  it('the proxy never imports the HTTP composition root (src/http), the CLI or the upstream clients', () => {
    for (const other of ['http', 'cli', 'upstream']) expect(edgesBetween(graph.edges, 'proxy', other)).toEqual([]);
  });

  it('the proxy and the authorization server share only the kernel: neither imports the other nor src/http', () => {
    for (const [a, b] of [['proxy', 'authz'], ['proxy', 'http'], ['authz', 'proxy'], ['authz', 'http']] as const) {
      expect(edgesBetween(graph.edges, a, b), `src/${a} imports src/${b}`).toEqual([]);
    }
  });

  it('the kernel imports only config, errors, observability and storage (and libraries)', () => {
    const outside = graph.edges.filter((e) => layerOf(e.from) === 'kernel' && !['kernel', 'config', 'errors', 'observability', 'storage'].includes(layerOf(e.to)));
    expect(outside).toEqual([]);
    expect(graph.modules).toEqual(expect.arrayContaining(['kernel/claims.ts', 'kernel/keys.ts', 'kernel/policy.ts', 'kernel/challenge.ts', 'kernel/revocation.ts', 'kernel/origin.ts']));
  });

  it('no import cycles between folders, type-only imports included', () => {
    const { layers: anyImport, runtimeLayers } = importCycles(graph);
    expect(runtimeLayers, describeGraph(graph)).toEqual([]);
    expect(anyImport, describeGraph(graph)).toEqual([]);
  });

  it('src/context.ts only names types (it wires nothing at run time)', () => {
    expect(graph.edges.filter((e) => e.from === 'context.ts' && !e.typeOnly)).toEqual([]);
  });

  it('the console takes only the HTML escaping of the authorization server (src/authz/html.ts), and nothing imports the console but src/http', () => {
    const fromAuthz = graph.edges.filter((e) => layerOf(e.from) === 'admin' && layerOf(e.to) === 'authz');
    expect(fromAuthz.map((e) => e.to)).toEqual(fromAuthz.map(() => 'authz/html.ts'));
    const inward = graph.edges.filter((e) => layerOf(e.to) === 'admin' && !['admin', 'http'].includes(layerOf(e.from)));
    expect(inward).toEqual([]);
  });

  it('nothing but the CLI imports src/cli or src/demo', () => {
    const inward = graph.edges.filter((e) => ['cli', 'demo'].includes(layerOf(e.to)) && !['cli', 'demo'].includes(layerOf(e.from)));
    expect(inward).toEqual([]);
  });

  afterAll(() => {
    // The graph, for whoever updates docs/architecture.md (the cycles are asserted above).
    console.log(`\nimport graph of src/ (layer -> layers it imports):\n${describeGraph(graph)}\n`);
  });
});

describe('comments in src/ cite what a reader of the repository can open', () => {
  const sources = readdirSyncRecursive(new URL('../../src/', import.meta.url));

  it('no citation of documents outside the repository (research notes, the spec draft, the style guide, issue numbers)', () => {
    const outside = /stack-notes|original-behaviour|mcp-spec-notes|seed-design|peers\.md|SPEC(\.md| §)|STYLE(\.md| habit)|\bissue #?\d+/;
    const hits = sources.flatMap(({ file, text }) => text.split('\n').flatMap((line, i) => (outside.test(line) ? [`src/${file}:${i + 1}: ${line.trim()}`] : [])));
    expect(hits).toEqual([]);
  });

  it('every docs/ page a comment names exists', () => {
    const missing = sources.flatMap(({ file, text }) => [...text.matchAll(/\bdocs\/([\w-]+\.md)/g)].filter((m) => !existsSync(new URL(`../../docs/${m[1]}`, import.meta.url))).map((m) => `src/${file}: docs/${m[1]}`));
    expect(missing).toEqual([]);
  });
});

function readdirSyncRecursive(dir: URL): { file: string; text: string }[] {
  return readdirSyncNode(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ file: f.split('\\').join('/'), text: readFileSync(new URL(f, dir), 'utf8') }));
}
