/**
 * The import graph of src/, read from the source text (no extra package): which module imports which, which
 * folder ("layer") imports which, and the import cycles. test/docs/architecture.test.ts asserts the rules
 * docs/architecture.md states; run this file to print the graph when updating that document:
 *   npx tsx test/docs/import-graph.ts
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

export interface ImportEdge {
  /** Importing module, relative to src/ with forward slashes (`proxy/index.ts`). */
  from: string;
  /** Imported module, relative to src/ (`kernel/claims.ts`). */
  to: string;
  /** `import type` / `export type`: erased at compile time, so no run-time edge. */
  typeOnly: boolean;
  /** `import('…')`: loaded when that code runs, not with the importing module (absent for static imports). */
  lazy?: true;
}

/** The folder a module belongs to (`proxy/index.ts` -> `proxy`); modules directly in src/ are their own layer (`errors`). */
export function layerOf(module: string): string {
  const parts = module.split('/');
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.d\.ts$|\.ts$/, '');
}

function listModules(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listModules(path));
    else if (entry.name.endsWith('.ts')) out.push(relative(SRC, path).split('\\').join('/'));
  }
  return out.sort();
}

// `import x from '…'`, `import { a, type b } from '…'` (over several lines), `export { x } from '…'`,
// `export * from '…'`, `import '…'` and `import('…')`. Comments are removed first so an example in a doc
// comment is not an edge.
const STATIC = /(?:^|[\n;])\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/g;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
}

/** Every relative import between modules of src/ (package imports such as `fastify` are left out). */
export function importGraph(): { modules: string[]; edges: ImportEdge[] } {
  const modules = listModules(SRC);
  const known = new Set(modules);
  const edges: ImportEdge[] = [];
  for (const from of modules) {
    const text = stripComments(readFileSync(join(SRC, from), 'utf8'));
    const found: { spec: string; typeOnly: boolean; lazy?: true }[] = [];
    for (const m of text.matchAll(STATIC)) found.push({ spec: m[3]!, typeOnly: Boolean(m[2]) });
    for (const m of text.matchAll(DYNAMIC)) found.push({ spec: m[1]!, typeOnly: false, lazy: true });
    for (const { spec, typeOnly, lazy } of found) {
      if (!spec.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(from), spec)).replace(/\.js$/, '.ts');
      const to = known.has(target) ? target : known.has(target.replace(/\.ts$/, '.d.ts')) ? target.replace(/\.ts$/, '.d.ts') : undefined;
      if (!to) throw new Error(`${from}: import "${spec}" does not resolve to a module of src/`);
      edges.push({ from, to, typeOnly, ...(lazy ? { lazy } : {}) });
    }
  }
  return { modules, edges };
}

/** The modules loading `start` loads with it: its static run-time imports, transitively (no `import()`). */
export function eagerClosure(edges: ImportEdge[], start: string): Set<string> {
  const seen = new Set([start]);
  const todo = [start];
  while (todo.length > 0) {
    const from = todo.pop()!;
    for (const e of edges) {
      if (e.from !== from || e.typeOnly || e.lazy || seen.has(e.to)) continue;
      seen.add(e.to);
      todo.push(e.to);
    }
  }
  return seen;
}

/** layer -> the other layers it imports (type-only imports included: they couple the code too). */
export function layerImports(edges: ImportEdge[], runtimeOnly = false): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const e of edges) {
    if (runtimeOnly && e.typeOnly) continue;
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a === b) continue;
    if (!out.has(a)) out.set(a, new Set());
    out.get(a)!.add(b);
  }
  return out;
}

/** The edges from layer `a` to layer `b`, as `from -> to` lines (for failure messages). */
export function edgesBetween(edges: ImportEdge[], a: string, b: string): string[] {
  return edges.filter((e) => layerOf(e.from) === a && layerOf(e.to) === b).map((e) => `src/${e.from} -> src/${e.to}${e.typeOnly ? ' (type)' : ''}`);
}

/** Strongly connected components with more than one member (Tarjan): each one is an import cycle. */
export function cycles(nodes: string[], next: (node: string) => Iterable<string>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return out;
}

/** Cycles between layers (any import; run-time imports only), and between modules (run-time imports only). */
export function importCycles(graph = importGraph()): { layers: string[][]; runtimeLayers: string[][]; modules: string[][] } {
  const names = [...new Set(graph.modules.map(layerOf))].sort();
  const layers = layerImports(graph.edges);
  const runtimeLayers = layerImports(graph.edges, true);
  const runtime = new Map<string, string[]>();
  for (const e of graph.edges) if (!e.typeOnly) runtime.set(e.from, [...(runtime.get(e.from) ?? []), e.to]);
  return {
    layers: cycles(names, (l) => layers.get(l) ?? []),
    runtimeLayers: cycles(names, (l) => runtimeLayers.get(l) ?? []),
    modules: cycles(graph.modules, (m) => runtime.get(m) ?? []),
  };
}

/** Human-readable summary: layer -> layers, then cycles. */
export function describeGraph(graph = importGraph()): string {
  const lines: string[] = [];
  const layers = layerImports(graph.edges);
  for (const layer of [...new Set(graph.modules.map(layerOf))].sort()) {
    lines.push(`${layer} -> ${[...(layers.get(layer) ?? [])].sort().join(', ') || '(nothing)'}`);
  }
  const { layers: lc, runtimeLayers: rc, modules: mc } = importCycles(graph);
  const show = (cs: string[][]) => (cs.length ? cs.map((c) => c.join(' <-> ')).join('; ') : 'none');
  lines.push(`layer cycles (any import): ${show(lc)}`);
  lines.push(`layer cycles (run-time imports): ${show(rc)}`);
  for (const c of rc) {
    for (const a of c) for (const b of c) if (a !== b) for (const e of edgesBetween(graph.edges.filter((x) => !x.typeOnly), a, b)) lines.push(`  ${e}`);
  }
  lines.push(`module cycles (run-time imports): ${show(mc)}`);
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(describeGraph());
}
