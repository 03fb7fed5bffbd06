/**
 * Writes docs/configuration.md and config.schema.json from the zod schema.
 * `--check` only compares and exits 1 when the committed files are stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configMarkdown, configSchemaJson } from '../src/config/docs.js';

const targets: [string, string][] = [
  [new URL('../docs/configuration.md', import.meta.url).pathname, configMarkdown()],
  [new URL('../config.schema.json', import.meta.url).pathname, configSchemaJson()],
];
const check = process.argv.includes('--check');
let stale = 0;
for (const [file, content] of targets) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    /* missing */
  }
  if (current === content) continue;
  if (check) {
    console.error(`stale: ${file} (run npm run docs:config)`);
    stale++;
  } else {
    writeFileSync(file, content);
    console.log(`wrote ${file}`);
  }
}
process.exitCode = stale ? 1 : 0;
