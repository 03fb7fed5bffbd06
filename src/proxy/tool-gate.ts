/**
 * Call decisions for services with `tools` / `prompts` / `resources` rules (docs/proxy.md, "Tool-level
 * rules"): the small JSON-RPC body is read, `tools/call` (`params.name`), `prompts/get` (`params.name`) and
 * `resources/read` (`params.uri`) are decided before the backend sees them, and list requests are noted
 * so that their responses are filtered (list-filter.ts). Services without rules never get here.
 *
 * - The body must be I-JSON (RFC 7493 §2.3: no duplicate member names): a backend whose parser keeps the
 *   first of two `name` members would otherwise run another tool than the one decided. The bytes
 *   forwarded are the client's own (numbers keep their precision), except for a batch with refused
 *   elements, which is forwarded without them (each kept element byte for byte).
 * - 2026-07-28 (streamable HTTP, header validation): `Mcp-Method` and, for the three call methods,
 *   `Mcp-Name` must be present and equal the body (400, -32020 HeaderMismatch). A mirrored header sent on an
 *   older version must not lie either: something behind the gateway may route on it.
 * - Legacy JSON-RPC batches (2025-03-26) are decided element by element: a policy refusal answers that
 *   element (its JSON-RPC error is merged into the backend's batch response), a missing scope refuses the
 *   whole batch with 403 `insufficient_scope`, because a step-up is one re-authorization for the request.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ERROR_CODES } from '../errors.js';
import { buildBearerChallenge } from '../kernel/challenge.js';
import type { ResolvedService } from '../config/services.js';
import { challenged, proxyError, type ProxyError } from './respond.js';
import { CALL_METHODS, LIST_METHODS, type ItemKind, type ToolDecision, type ToolPolicy, type ToolUser } from './tool-policy.js';
import { ListRewriter, rpcIdKey } from './list-filter.js';

export type GateVerdict =
  | { kind: 'forward'; body: Buffer; rewrite: ListRewriter | undefined }
  | { kind: 'refuse'; error: ProxyError }
  | { kind: 'answer'; status: number; body: string };

export interface GateInput {
  policy: ToolPolicy;
  service: ResolvedService;
  user: ToolUser | undefined;
  headers: IncomingHttpHeaders;
  /** Called once per decided call (metrics, audit). */
  record(kind: ItemKind, name: string, decision: ToolDecision): void;
}

const NOT_JSON = proxyError('GW_ERR_BAD_REQUEST', { description: 'The request body is not valid JSON' });
const DUPLICATE_MEMBER = proxyError('GW_ERR_BAD_REQUEST', {
  description: 'The request body has a duplicate member name (RFC 7493 I-JSON): refused on a service with tool rules',
});
const NO_NAME = proxyError('GW_ERR_BAD_REQUEST', {
  description: 'The request names no tool, prompt or resource (params.name / params.uri)',
});
const insufficientScope = challenged('GW_ERR_INSUFFICIENT_SCOPE');
const headerMismatch = (description: string) => proxyError('GW_ERR_HEADER_MISMATCH', { description, alwaysRpc: true });

interface Message {
  id?: unknown;
  method?: unknown;
  params?: Record<string, unknown>;
}

/** Decides one request body. Never throws. */
export function gate(g: GateInput, raw: Buffer): GateVerdict {
  const text = raw.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'refuse', error: NOT_JSON };
  }
  const scan = scanMembers(text);
  if (scan.duplicate) return { kind: 'refuse', error: DUPLICATE_MEMBER };
  const batch = Array.isArray(parsed);
  const messages = (batch ? parsed : [parsed]) as unknown[];

  if (!batch) {
    const mismatch = headerProblem(g.headers, messages[0] as Message);
    if (mismatch) return { kind: 'refuse', error: headerMismatch(mismatch) };
  }

  let rewrite: ListRewriter | undefined;
  const refused: Array<{ index: number; notification: boolean; answer: Record<string, unknown> }> = [];
  const missing = new Set<string>();
  let scopeRule: { kind: ItemKind; name: string; rule: string } | undefined;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Message;
    if (m === null || typeof m !== 'object' || typeof m.method !== 'string') continue;
    const list = LIST_METHODS.get(m.method);
    if (list !== undefined) {
      if (g.policy.governs(list.kind) && m.id !== undefined) (rewrite ??= new ListRewriter(g.policy, g.user)).expect(rpcIdKey(m.id), list);
      continue;
    }
    const call = CALL_METHODS.get(m.method);
    if (call === undefined || !g.policy.governs(call.kind)) continue;
    const name = m.params?.[call.param];
    if (typeof name !== 'string') return { kind: 'refuse', error: NO_NAME };
    const decision = g.policy.decide(call.kind, name, g.user);
    g.record(call.kind, name, decision);
    if (decision.decision === 'deny')
      refused.push({ index: i, notification: m.id === undefined, answer: deniedAnswer(m.id ?? null, call.kind, name, decision) });
    else if (decision.decision === 'insufficient_scope') {
      for (const s of decision.missing) missing.add(s);
      scopeRule ??= { kind: call.kind, name, rule: decision.rule };
    }
  }

  if (scopeRule !== undefined) return { kind: 'refuse', error: scopeRefusal(g, missing, scopeRule) };
  if (refused.length === 0) return { kind: 'forward', body: raw, rewrite };

  if (!batch) {
    return { kind: 'answer', status: ERROR_CODES.GW_ERR_TOOL_DENIED.status, body: JSON.stringify(refused[0]!.answer) };
  }
  // JSON-RPC 2.0 §6: notifications in a batch get no answer.
  const answers = refused.flatMap((r) => (r.notification ? [] : [r.answer]));
  const drop = new Set(refused.map((r) => r.index));
  const kept = scan.elements!.filter((_, i) => !drop.has(i));
  if (kept.length === 0) {
    // JSON-RPC 2.0 §6: a batch of notifications only gets no answer; otherwise an array of the answers.
    return answers.length === 0
      ? { kind: 'answer', status: 202, body: '' }
      : { kind: 'answer', status: 200, body: JSON.stringify(answers) };
  }
  const body = Buffer.from(`[${kept.map(([a, b]) => text.slice(a, b)).join(',')}]`, 'utf8');
  (rewrite ??= new ListRewriter(g.policy, g.user)).inject(answers);
  return { kind: 'forward', body, rewrite };
}

/** The JSON-RPC error answering a refused call: the registry's code, the request's id, the rule that refused. */
function deniedAnswer(id: unknown, kind: ItemKind, name: string, decision: Extract<ToolDecision, { decision: 'deny' }>) {
  const spec = ERROR_CODES.GW_ERR_TOOL_DENIED;
  return {
    jsonrpc: '2.0',
    id,
    error: {
      code: spec.rpc,
      message: `${capital(kind)} '${name.slice(0, 256)}' is not allowed: ${decision.reason}`,
      data: { error: spec.error, [kind]: name, rule: decision.rule },
    },
  };
}

/**
 * MCP authorization (scope challenge handling): 403 with every scope the operation needs in one challenge,
 * the ones the token already has included, so that a client replacing its scope (rather than adding to it)
 * does not lose what it had.
 */
function scopeRefusal(g: GateInput, missing: Set<string>, first: { kind: ItemKind; name: string; rule: string }): ProxyError {
  const held = g.user?.scopes ?? [];
  const required = g.service.requiredScopes;
  const scopes = g.service.scopes.filter((s) => required.includes(s) || held.includes(s) || missing.has(s));
  const description = `${capital(first.kind)} '${first.name}' needs scope ${[...missing].join(' ')} (${first.kind} rule '${first.rule}')`;
  const challenge = buildBearerChallenge(g.service, { error: 'insufficient_scope', scopes, description: description.slice(0, 200) });
  return insufficientScope(challenge, { scope: scopes.join(' ') }, description);
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The first version whose POSTs mirror the method and name in headers. */
const MIRRORED_HEADERS_SINCE = '2026-07-28';

/** Why the mirrored headers do not fit the body, or undefined (MCP 2026-07-28, streamable HTTP). */
function headerProblem(headers: IncomingHttpHeaders, m: Message | null): string | undefined {
  if (m === null || typeof m !== 'object' || typeof m.method !== 'string') return undefined;
  const version = headers['mcp-protocol-version'];
  const modern = typeof version === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= MIRRORED_HEADERS_SINCE;
  const method = headers['mcp-method'];
  if (method === undefined) {
    if (modern && m.id !== undefined) return 'Mcp-Method header is missing';
  } else if (method !== m.method)
    return `Mcp-Method header '${String(method).slice(0, 64)}' does not match the body method '${m.method.slice(0, 64)}'`;
  const call = CALL_METHODS.get(m.method);
  if (call === undefined) return undefined;
  const bodyName = m.params?.[call.param];
  const header = headers['mcp-name'];
  if (header === undefined) return modern ? 'Mcp-Name header is missing' : undefined;
  const name = decodeMirrored(String(header));
  if (name !== bodyName) return `Mcp-Name header does not match the body's params.${call.param}`;
  return undefined;
}

/** MCP 2026-07-28: a header value that is not plain ASCII is sent as `=?base64?<base64 of UTF-8>?=`. */
function decodeMirrored(value: string): string {
  const m = /^=\?base64\?([A-Za-z0-9+/=]*)\?=$/i.exec(value);
  return m ? Buffer.from(m[1]!, 'base64').toString('utf8') : value;
}

/**
 * One pass over a body that JSON.parse accepted: whether any object repeats a member name (escapes
 * decoded), and for a top-level array the [start, end) offsets of each element.
 */
export function scanMembers(text: string): { duplicate: boolean; elements: Array<[number, number]> | undefined } {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  let elements: Array<[number, number]> | undefined;
  let elementStart = -1;
  const topArray = () => stack.length === 1 && stack[0] === null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (topArray() && elementStart === -1 && c !== 0x5d /* ] */ && c !== 0x2c /* , */) elementStart = i;
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (; j < text.length; j++) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) {
          escaped = true;
          j++;
        } else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.has(key)) return { duplicate: true, elements: undefined };
        top.add(key);
        expectKey = false;
      }
      i = j;
      continue;
    }
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      if (stack.length === 0) elements = [];
      stack.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (c === 0x5d && topArray() && elementStart !== -1) {
        elements!.push([elementStart, trimEnd(text, i)]);
        elementStart = -1;
      }
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      if (topArray() && elementStart !== -1) {
        elements!.push([elementStart, trimEnd(text, i)]);
        elementStart = -1;
      }
      if (stack[stack.length - 1]) expectKey = true;
    }
  }
  return { duplicate: false, elements };
}

/** The end offset of the element before position `i` (whitespace before a `,` or `]` excluded). */
function trimEnd(text: string, i: number): number {
  let e = i;
  while (e > 0 && /\s/.test(text[e - 1]!)) e--;
  return e;
}
