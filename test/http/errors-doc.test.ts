/**
 * docs/errors.md and the registry (src/errors.ts) agree in both directions: every code is documented with
 * its status, `error` and JSON-RPC code; every documented code exists; retired codes are listed as retired
 * in both and produced nowhere in src/. (That every code is produced on the wire: error-registry.test.ts.)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, EXIT_CODES, RETIRED_CODES } from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

/** The rows of the table under `heading` (until the next heading), keyed by the code in the first cell. */
function table(heading: string | undefined): Map<string, string[]> {
  const lines = doc.split('\n');
  const start = heading === undefined ? 0 : lines.findIndex((l) => l === heading);
  expect(start, `docs/errors.md has a section "${heading}"`).toBeGreaterThanOrEqual(0);
  const rows = new Map<string, string[]>();
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('#'); i++) {
    const m = /^\| `(GW_ERR_[A-Z_]+)` \|(.*)\|$/.exec(lines[i]!);
    if (m)
      rows.set(
        m[1]!,
        m[2]!.split('|').map((c) => c.trim()),
      );
  }
  return rows;
}

const main = table('# Error codes');
const exits = table('## Command line');
const retired = table('## Retired codes');

describe('error registry and docs/errors.md', () => {
  it('every HTTP code is documented with its status, error and JSON-RPC code (— when it has no MCP surface)', () => {
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      const row = main.get(code);
      expect(row, code).toBeDefined();
      const rpc: number | undefined = (spec as { rpc?: number }).rpc;
      expect(row!.slice(0, 3), code).toEqual([String(spec.status), `\`${spec.error}\``, rpc === undefined ? '—' : String(rpc)]);
    }
  });

  it('every command-line code is documented with its exit status', () => {
    for (const [code, spec] of Object.entries(EXIT_CODES)) expect(exits.get(code)?.[0], code).toBe(`(exit ${spec.exit})`);
  });

  it('every documented code exists in the registry, in the table it is documented in', () => {
    expect([...main.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    expect([...exits.keys()].sort()).toEqual(Object.keys(EXIT_CODES).sort());
    expect([...retired.keys()].sort()).toEqual(Object.keys(RETIRED_CODES).sort());
    // Anything that looks like a code anywhere on the page is one of them.
    const known = new Set([...Object.keys(ERROR_CODES), ...Object.keys(EXIT_CODES), ...Object.keys(RETIRED_CODES)]);
    for (const [mentioned] of doc.matchAll(/GW_ERR_[A-Z_]+/g)) expect(known.has(mentioned), mentioned).toBe(true);
  });

  it('a retired code is never live again, and nothing in src/ produces it', () => {
    for (const code of Object.keys(RETIRED_CODES)) {
      expect(code in ERROR_CODES || code in EXIT_CODES, code).toBe(false);
    }
    const src = fileURLToPath(new URL('../../src', import.meta.url));
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
    for (const file of files(src)) {
      if (file.endsWith(join('src', 'errors.ts'))) continue;
      const text = readFileSync(file, 'utf8');
      for (const code of Object.keys(RETIRED_CODES)) expect(text.includes(code), `${code} in ${file}`).toBe(false);
    }
  });
});
