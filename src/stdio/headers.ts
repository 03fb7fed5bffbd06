/**
 * MCP 2026-07-28 Streamable HTTP, standard headers: every request POST carries `MCP-Protocol-Version`
 * (equal to the body's `_meta` protocol version) and `Mcp-Method`; `tools/call` and `prompts/get` also
 * `Mcp-Name` = `params.name`, `resources/read` `Mcp-Name` = `params.uri`. A missing header or a mismatch
 * is 400 with -32020 (HeaderMismatch). A stdio server never sees HTTP headers, so the bridge, being the
 * HTTP endpoint, checks them. (`Mcp-Param-*` headers depend on each tool's schema and are not checked.)
 */
import type { IncomingMessage } from 'node:http';

const ENVELOPE_VERSION = 'io.modelcontextprotocol/protocolVersion';
const NAME_SOURCE: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };
/** Header values that are not safe ASCII are sent as `=?base64?<base64>?=`. */
const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;

function value(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (typeof v !== 'string') return undefined;
  const m = SENTINEL.exec(v);
  return m ? Buffer.from(m[1]!, 'base64').toString('utf8') : v;
}

/** Why the mirrored headers of a 2026-07-28 message are refused, or undefined. */
export function mirroredHeaderProblem(req: IncomingMessage, msg: Record<string, unknown>, isRequest: boolean): string | undefined {
  const params = (msg.params ?? {}) as Record<string, unknown>;
  const meta = params._meta as Record<string, unknown> | undefined;
  const claimed = typeof meta?.[ENVELOPE_VERSION] === 'string' ? (meta[ENVELOPE_VERSION] as string) : undefined;
  const version = value(req, 'mcp-protocol-version');
  if (version === undefined && isRequest) return 'the MCP-Protocol-Version header is required';
  if (version !== undefined && claimed !== undefined && version !== claimed)
    return `the MCP-Protocol-Version header (${version.slice(0, 40)}) does not match the body's protocol version (${claimed.slice(0, 40)})`;
  const method = value(req, 'mcp-method');
  if (method === undefined) return isRequest ? 'the Mcp-Method header is required' : undefined;
  if (method !== msg.method) return `the Mcp-Method header (${method.slice(0, 80)}) does not match the body's method`;
  const source = isRequest && typeof msg.method === 'string' ? NAME_SOURCE[msg.method] : undefined;
  if (source === undefined) return undefined;
  const name = value(req, 'mcp-name');
  if (name === undefined) return `the Mcp-Name header is required for ${msg.method}`;
  if (name !== params[source]) return `the Mcp-Name header does not match the body's params.${source}`;
  return undefined;
}
