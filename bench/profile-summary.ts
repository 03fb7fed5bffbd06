/** Summarises a .cpuprofile: self time per function (top N). Usage: tsx bench/profile-summary.ts FILE [N] */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
const prof = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<number, number>();
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const byFn = new Map<string, number>();
let total = 0;
for (const n of prof.nodes) {
  const t = self.get(n.id) ?? 0;
  total += t;
  const url = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/');
  const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
}
const byPkg = new Map<string, number>();
for (const [k, v] of byFn) {
  const m = / ((?:@[^/]+\/)?[^/:]+)/.exec(k);
  const pkg = k.includes(' src/') ? 'gateway src' : k.includes('node:') || k.includes(' :') ? 'node internals/native' : (m?.[1] ?? 'other');
  byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + v);
}
const top = [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 40));
for (const [k, v] of top) console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
console.log('\nby package:');
for (const [k, v] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);

// Inclusive ("total") time per function, top N, when INCLUSIVE=1.
if (process.env.INCLUSIVE) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const incl = new Map<number, number>();
  const walk = (id: number): number => {
    const n = byId.get(id)!;
    let t = self.get(id) ?? 0;
    for (const c of n.children ?? []) t += walk(c);
    incl.set(id, t);
    return t;
  };
  walk(prof.nodes[0]!.id);
  const agg = new Map<string, number>();
  for (const n of prof.nodes) {
    const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/')}:${n.callFrame.lineNumber}`;
    agg.set(key, Math.max(agg.get(key) ?? 0, 0) + (incl.get(n.id) ?? 0));
  }
  console.log('\ninclusive:');
  for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 60))
    console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
}
