/**
 * The proxy step for services with `tools` / `prompts` / `resources` rules (docs/proxy.md, "Tool-level
 * rules"): read the request body (bounded by the service's body limit), decide it (tool-gate.ts), count
 * and audit the decisions, and either answer at once or hand the body and a response rewriter
 * (list-filter.ts) to `forward`. `McpProxy.handle` calls it only when `state.toolPolicy` is set, so a
 * service without rules never has its body read (asserted by test/tools/hot-path.test.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayContext } from '../context.js';
import type { TokenEntry } from './access-token.js';
import { BODY_TOO_LARGE } from './forward.js';
import { ListRewriter } from './list-filter.js';
import { proxyError, sendRpcAnswer, type ProxyError } from './respond.js';
import { countStatus, type ServiceState } from './service-state.js';
import { gate } from './tool-gate.js';
import { DEFAULT_RULE, LIST_METHODS, type ItemKind, type ToolDecision, type ToolPolicy } from './tool-policy.js';

const NOT_JSON_RPC = proxyError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', {
  description: 'This service decides each call: POST a JSON-RPC message with Content-Type: application/json',
});

export interface ToolCallInput {
  state: ServiceState;
  policy: ToolPolicy;
  req: IncomingMessage;
  res: ServerResponse;
  jsonRpc: boolean;
  entry: TokenEntry | undefined;
  cors: Record<string, string> | undefined;
  fail(error: ProxyError): void;
}

/**
 * A GET resuming a legacy stream (`Last-Event-ID`) may replay list responses: filtered by their shape.
 * Undefined when there is nothing to filter (no Last-Event-ID, or no list kind governed).
 */
export function replayRewriter(policy: ToolPolicy, entry: TokenEntry | undefined): ListRewriter | undefined {
  const specs = [...LIST_METHODS.values()].filter((l) => policy.governs(l.kind));
  if (specs.length === 0) return undefined;
  const rewrite = new ListRewriter(policy, entry?.user);
  rewrite.expectReplayedLists(specs);
  return rewrite;
}

/** Counts of body reads, per service id: lets a test assert that services without rules are never read. */
export const bodyReads = new Map<string, number>();

/**
 * Resolves to what `forward` needs, or undefined when the request was answered (refused, or decided by
 * the gateway alone) or went away.
 */
export async function checkToolCalls(
  ctx: GatewayContext,
  t: ToolCallInput,
): Promise<{ body: Buffer; rewrite: ListRewriter | undefined } | undefined> {
  const { state } = t;
  if (!t.jsonRpc) {
    t.fail(NOT_JSON_RPC);
    return undefined;
  }
  bodyReads.set(state.id, (bodyReads.get(state.id) ?? 0) + 1);
  const raw = await readBody(t.req, state.maxRequestBytes);
  if (raw === 'too_large') {
    t.fail(BODY_TOO_LARGE);
    return undefined;
  }
  if (raw === undefined || t.res.destroyed) return undefined;
  const user = t.entry?.user;
  const verdict = gate(
    {
      policy: t.policy,
      service: state.service,
      user,
      headers: t.req.headers,
      record: (kind, name, decision) => record(ctx, state, user?.id, user?.clientId, kind, name, decision),
    },
    raw,
  );
  switch (verdict.kind) {
    case 'forward':
      return { body: verdict.body, rewrite: verdict.rewrite };
    case 'refuse':
      t.fail(verdict.error);
      return undefined;
    case 'answer':
      countStatus(ctx, state, verdict.status);
      sendRpcAnswer(t.res, verdict.status, verdict.body, t.cors);
      return undefined;
  }
}

function record(
  ctx: GatewayContext,
  state: ServiceState,
  userId: string | undefined,
  clientId: string | undefined,
  kind: ItemKind,
  name: string,
  d: ToolDecision,
): void {
  const rule = kind === 'tool' || d.rule === DEFAULT_RULE ? d.rule : `${kind}:${d.rule}`;
  ctx.metrics.toolDecisions.inc({ service: state.id, tool: rule, decision: d.decision });
  if (d.decision === 'allow') return;
  ctx.audit.emit('tool.denied', {
    user: userId,
    client_id: clientId,
    service: state.id,
    tool: name.slice(0, 256),
    kind,
    rule: d.rule,
    reason: d.decision === 'deny' ? d.reason : `insufficient_scope: needs ${d.missing.join(' ')}`,
  });
}

/**
 * The whole body, at most `max` bytes (a declared Content-Length above it was refused before; a chunked
 * body is counted). Undefined when the request was cut short.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large' | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        req.pause();
        resolve('too_large');
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(req.complete ? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)) : undefined);
    };
    const onGone = () => {
      cleanup();
      resolve(undefined);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('aborted', onGone);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('aborted', onGone);
  });
}
