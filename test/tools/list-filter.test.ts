/**
 * The response rewriter and the body scanner of tool rules on their own (src/proxy/list-filter.ts,
 * src/proxy/tool-gate.ts scanMembers): SSE events split anywhere across chunks (inside a multi-byte
 * character, between CR and LF), every line-ending style, unrelated events passed through byte for byte,
 * and I-JSON duplicate detection with escapes.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ListRewriter, rpcIdKey } from '../../src/proxy/list-filter.js';
import { scanMembers } from '../../src/proxy/tool-gate.js';
import { LIST_METHODS, ToolPolicy } from '../../src/proxy/tool-policy.js';
import { TEST_SECRET } from '../helpers/config.js';

const config = parseConfig({
  host: '127.0.0.1',
  issuer: 'http://127.0.0.1:1',
  session_secret: TEST_SECRET,
  oauth_providers: { dev: {} },
  mcp_services: {
    s: { name: 's', url: 'http://127.0.0.1:1/mcp', oauth_provider: 'dev', tools: { rules: { 'secret_*': { deny: true } } } },
  },
});
const policy = ToolPolicy.compile(config.mcp_services.s!)!;
const user = { id: 'dev:a', scopes: [] };

function run(chunks: Buffer[], ct = 'text/event-stream'): string {
  const r = new ListRewriter(policy, user);
  r.expect(rpcIdKey(1), LIST_METHODS.get('tools/list')!);
  const headers: Record<string, string> = { 'content-type': ct, 'content-length': '1' };
  expect(r.head(200, headers)).toBe(200);
  expect(headers['content-length']).toBeUndefined();
  let out = '';
  for (const c of chunks) out += String(r.data(c) ?? '');
  return out + String(r.end() ?? '');
}

/** Every split of `text` into single bytes. */
const bytes = (text: string) => [...Buffer.from(text, 'utf8')].map((b) => Buffer.from([b]));

describe('SSE list filtering', () => {
  const list = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'héllo' }, { name: 'secret_x' }], nextCursor: 'n' } });
  const other = 'id: 1\r\nevent: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"ü"}}\r\n\r\n';

  for (const eol of ['\n', '\r\n', '\r']) {
    it(`filters an event split byte by byte, line ends ${JSON.stringify(eol)}`, () => {
      const text = `${other}: keep-alive comment${eol}${eol}id: 2${eol}data: ${list}${eol}${eol}`;
      const out = run(bytes(text));
      expect(out.startsWith(other)).toBe(true); // unrelated events unchanged, byte for byte
      expect(out).toContain(`: keep-alive comment${eol}${eol}`);
      const data = /data: (\{"jsonrpc":"2.0","id":1.*\})/.exec(out)?.[1];
      expect(JSON.parse(data!)).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'héllo' }], nextCursor: 'n' } });
      expect(out).toContain('id: 2\n');
    });
  }

  it('a JSON answer (single or batch) is filtered; other answers in it are untouched', () => {
    const batch = JSON.stringify([JSON.parse(list), { jsonrpc: '2.0', id: 2, result: { tools: [{ name: 'secret_y' }] } }]);
    const out = JSON.parse(run(bytes(batch), 'application/json')) as Array<{ result: { tools: unknown[] } }>;
    expect(out[0]!.result.tools).toEqual([{ name: 'héllo' }]);
    expect(out[1]!.result.tools).toEqual([{ name: 'secret_y' }]); // id 2 was not a list request
  });

  it('an unparsable JSON answer to a list request is cut, never relayed unfiltered', () => {
    expect(() => run([Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret_x"}')], 'application/json')).toThrow();
  });
});

describe('scanMembers (RFC 7493 I-JSON)', () => {
  it('finds duplicate member names, escapes decoded, at any depth', () => {
    expect(scanMembers('{"a":1,"b":{"a":2}}').duplicate).toBe(false);
    expect(scanMembers('{"params":{"name":"x","name":"y"}}').duplicate).toBe(true);
    expect(scanMembers('{"params":{"name":"x","n\\u0061me":"y"}}').duplicate).toBe(true);
    expect(scanMembers('[{"a":1},{"a":1}]').duplicate).toBe(false);
    expect(scanMembers('{"a":"\\"b\\":1","b":2}').duplicate).toBe(false);
    expect(scanMembers('{"a":[{"x":1,"y":[1,{"x":2}]}],"x":3}').duplicate).toBe(false);
  });

  it('returns the byte ranges of top-level batch elements', () => {
    const text = ' [ {"id":1,"s":"a,]"} , 2,"x" ,[3,4]] ';
    const { elements } = scanMembers(text);
    expect(elements!.map(([a, b]) => text.slice(a, b))).toEqual(['{"id":1,"s":"a,]"}', '2', '"x"', '[3,4]']);
  });
});
