#!/usr/bin/env node
// Entry point of the `mcp-oauth-gateway` command: runs the compiled CLI from dist/ (built by `npm install`
// through the `prepare` script, or by `npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('mcp-oauth-gateway: dist/ is missing. Run `npm run build` (npm install normally does it).\n');
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Once the command is done, do not let a stray handle keep the process alive (output is flushed first).
setTimeout(() => process.exit(code), 2000).unref();
