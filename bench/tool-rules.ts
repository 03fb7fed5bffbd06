/**
 * The CPU cost of tool-level rules per request, in process (`tsx bench/tool-rules.ts`, also run by
 * `npm run bench`): what a service with `tools` rules adds to each POST (src/proxy/tool-gate.ts: parse,
 * duplicate-member scan, decision) and to each `tools/list` answer (src/proxy/list-filter.ts), measured
 * without the network so that a loaded machine disturbs it as little as possible. Prints one JSON line.
 */
import { parseConfig } from '../src/config/load.js';
import { resolveServices } from '../src/config/services.js';
import { gate } from '../src/proxy/tool-gate.js';
import { ToolPolicy } from '../src/proxy/tool-policy.js';

const config = parseConfig({
  host: '127.0.0.1',
  issuer: 'http://127.0.0.1:8080',
  session_secret: 'bench-session-secret-bench-session-secret-0123',
  oauth_providers: { dev: {} },
  mcp_services: {
    calc: {
      name: 'calc',
      url: 'http://127.0.0.1:1/mcp',
      oauth_provider: 'dev',
      scopes: ['read', 'calculate', 'admin'],
      required_scopes: ['read'],
      tools: {
        rules: {
          add: { scopes: ['calculate'] },
          'admin_*': { groups: ['admins'], scopes: ['admin'] },
          'ops_?_*': { email_domains: ['example.com'] },
          danger: { deny: true },
        },
      },
    },
  },
});
const service = resolveServices(config).get('calc')!;
const policy = ToolPolicy.compile(config.mcp_services.calc!)!;
const user = { id: 'dev:alice', email: 'alice@example.com', emailVerified: true, groups: ['staff'], scopes: ['read', 'calculate'] };
const headers = { 'mcp-protocol-version': '2025-11-25' };
const record = () => undefined;

function perOp(n: number, fn: () => void): number {
  for (let i = 0; i < 2000; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t0) * 1000) / n;
}

const call = Buffer.from(
  JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search', arguments: { q: 'hello' } } }),
);
const callUs = perOp(100_000, () => void gate({ policy, service, user, headers, record }, call));

const listReq = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }));
const tools = Array.from({ length: 50 }, (_, i) => ({
  name: i % 5 === 0 ? `admin_${i}` : `tool_${i}`,
  description: 'x'.repeat(80),
  inputSchema: { type: 'object' },
}));
const listRes = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 2, result: { tools, nextCursor: 'c' } }));
const sseRes = Buffer.from(`event: message\ndata: ${listRes.toString()}\n\n`);
const listUs = (body: Buffer, ct: string) =>
  perOp(20_000, () => {
    const v = gate({ policy, service, user, headers, record }, listReq);
    if (v.kind !== 'forward' || !v.rewrite) throw new Error('expected a rewriter');
    v.rewrite.head(200, { 'content-type': ct });
    v.rewrite.data(body);
    v.rewrite.end();
  });

process.stdout.write(
  `${JSON.stringify({ callUs, listJsonUs: listUs(listRes, 'application/json'), listSseUs: listUs(sseRes, 'text/event-stream'), listBytes: listRes.length })}\n`,
);
