/**
 * Rewrites the response of a request that tool-gate.ts let through on a service with rules
 * (docs/proxy.md, "Tool-level rules"):
 *
 * - `tools/list`, `prompts/list`, `resources/list` results lose the items the user's rules refuse
 *   (`deny`, identity keys, `default: deny`); items that only need a scope the token lacks stay, since
 *   the client can step up. `nextCursor` and every other field are kept.
 * - The refused elements of a batch get their JSON-RPC errors merged into the backend's answer.
 * - A filtered response is per user: `Cache-Control: private`, and on 2026-07-28 results (which carry
 *   `cacheScope`, SEP-2549: caches must not be shared across authorization contexts) `cacheScope: "private"`.
 *
 * JSON responses are gathered (they are one message, bounded); SSE responses are rewritten event by
 * event as they arrive, holding back only the incomplete event at the end of a chunk.
 */
import { StringDecoder } from 'node:string_decoder';
import type { ItemKind, ToolPolicy, ToolUser } from './tool-policy.js';

/** A JSON-RPC id as a map key (1 and "1" are different ids). */
export function rpcIdKey(id: unknown): string {
  return typeof id === 'string' ? `s${id}` : `n${String(id)}`;
}

/** A JSON response larger than this is not gathered: the response is cut (fail closed). */
export const MAX_REWRITTEN_JSON = 16 * 1024 * 1024;

interface ListSpec {
  kind: ItemKind;
  field: 'tools' | 'prompts' | 'resources';
  key: 'name' | 'uri';
}

type Mode = 'json' | 'sse' | 'pass' | 'refuse';

export class ListRewriter {
  readonly #lists = new Map<string, ListSpec>();
  #injected: unknown[] = [];
  #mode: Mode = 'pass';
  #chunks: Buffer[] = [];
  #size = 0;
  #decoder: StringDecoder | undefined;
  #pending = '';
  #injectedSent = false;

  constructor(
    private readonly policy: ToolPolicy,
    private readonly user: ToolUser | undefined,
  ) {}

  expect(idKey: string, spec: ListSpec): void {
    this.#lists.set(idKey, spec);
  }

  /**
   * For a resumed stream (GET with Last-Event-ID): the requests are not known, so any response whose result
   * holds a governed list is filtered by its shape (a replayed `tools/list` answer must not escape the rules).
   */
  expectReplayedLists(specs: readonly ListSpec[]): void {
    this.#replay = specs;
  }
  #replay: readonly ListSpec[] | undefined;

  inject(answers: unknown[]): void {
    this.#injected = answers;
  }

  /**
   * Before the response headers are written: decides how the body is handled and edits the headers.
   * Returns the status to send (a 202 for a batch whose forwarded part held only notifications becomes
   * 200 with the gateway's answers).
   */
  head(status: number, headers: Record<string, string | string[]>): number {
    const ct = String(headers['content-type'] ?? '');
    const withAnswers = this.#injected.length > 0;
    if (status === 202 && withAnswers) {
      this.#mode = 'json';
      headers['content-type'] = 'application/json';
      delete headers['content-length'];
      return 200;
    }
    if (status < 200 || status >= 300) return status;
    const encoding = headers['content-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      // The gateway asks for identity (no Accept-Encoding); a compressed answer cannot be filtered: cut.
      this.#mode = 'refuse';
      return status;
    }
    if (ct.startsWith('text/event-stream')) this.#mode = 'sse';
    else if (ct.includes('json')) this.#mode = 'json';
    else return status;
    this.#decoder = new StringDecoder('utf8');
    delete headers['content-length'];
    if (this.#lists.size > 0 || this.#replay !== undefined) {
      // Per-user content: never from a shared cache (RFC 9111 §5.2.2.7).
      const cc = headers['cache-control'];
      headers['cache-control'] = typeof cc === 'string' && cc.includes('no-store') ? 'private, no-store' : 'private';
    }
    return status;
  }

  /** What to write for a chunk of the backend body (undefined: nothing yet). Throws when the body cannot be rewritten. */
  data(chunk: Buffer): string | Buffer | undefined {
    if (this.#mode === 'pass') return chunk;
    if (this.#mode === 'refuse') throw new Error('compressed response cannot be filtered');
    if (this.#mode === 'json') {
      this.#size += chunk.length;
      if (this.#size > MAX_REWRITTEN_JSON) throw new Error('JSON response too large to filter');
      this.#chunks.push(chunk);
      return undefined;
    }
    let out = this.#injectedEvents();
    this.#pending += this.#decoder!.write(chunk);
    for (;;) {
      const end = eventEnd(this.#pending);
      if (end === undefined) break;
      out += this.#event(this.#pending.slice(0, end.at)) + this.#pending.slice(end.at, end.at + end.length);
      this.#pending = this.#pending.slice(end.at + end.length);
    }
    return out.length > 0 ? out : undefined;
  }

  /** What to write before the response ends. Throws when the body cannot be rewritten. */
  end(): string | Buffer | undefined {
    if (this.#mode === 'pass') return undefined;
    if (this.#mode === 'refuse') throw new Error('compressed response cannot be filtered');
    if (this.#mode === 'sse') {
      const rest = this.#pending + this.#decoder!.end();
      this.#pending = '';
      return this.#injectedEvents() + (rest.length > 0 ? this.#event(rest) : '');
    }
    const text = Buffer.concat(this.#chunks).toString('utf8');
    if (text.length === 0) return this.#injected.length > 0 ? JSON.stringify(this.#injected) : '';
    const parsed: unknown = JSON.parse(text);
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    let changed = false;
    for (const m of messages) changed = this.#filter(m) || changed;
    if (this.#injected.length > 0) return JSON.stringify([...messages, ...this.#injected]);
    return changed ? JSON.stringify(parsed) : text;
  }

  #injectedEvents(): string {
    if (this.#injectedSent || this.#injected.length === 0) return '';
    this.#injectedSent = true;
    return this.#injected.map((a) => `event: message\ndata: ${JSON.stringify(a)}\n\n`).join('');
  }

  /** One SSE event (without its terminating blank line), rewritten when it carries a list result. */
  #event(raw: string): string {
    if ((this.#lists.size === 0 && this.#replay === undefined) || !raw.includes('data:')) return raw;
    const lines = raw.replace(/(\r\n|\r|\n)$/, '').split(/\r\n|\r|\n/);
    const data: string[] = [];
    const other: string[] = [];
    for (const line of lines) {
      if (line.startsWith('data:')) data.push(line.slice(line.charCodeAt(5) === 0x20 ? 6 : 5));
      else other.push(line);
    }
    let message: unknown;
    try {
      message = JSON.parse(data.join('\n'));
    } catch {
      return raw;
    }
    const items = Array.isArray(message) ? message : [message];
    let changed = false;
    for (const m of items) changed = this.#filter(m) || changed;
    if (!changed) return raw;
    return `${[...other, `data: ${JSON.stringify(message)}`].join('\n')}\n`;
  }

  /** Filters one JSON-RPC response in place when it answers a list request; true when it was one. */
  #filter(m: unknown): boolean {
    if (m === null || typeof m !== 'object') return false;
    const { id, result } = m as { id?: unknown; result?: Record<string, unknown> };
    if (id === undefined || result === null || typeof result !== 'object') return false;
    const spec = this.#lists.get(rpcIdKey(id)) ?? this.#replay?.find((r) => Array.isArray(result[r.field]));
    if (spec === undefined) return false;
    const items = result[spec.field];
    if (Array.isArray(items)) {
      result[spec.field] = items.filter((item: unknown) => {
        const name = (item as Record<string, unknown> | null)?.[spec.key];
        return typeof name === 'string' && this.policy.visible(spec.kind, name, this.user);
      });
    }
    // SEP-2549: a result filtered per user may only be cached by that user's client.
    if ('cacheScope' in result || 'ttlMs' in result) result.cacheScope = 'private';
    return true;
  }
}

/**
 * Where the blank line ending the first complete SSE event in `s` starts, and its length (WHATWG HTML,
 * server-sent events: lines end with CRLF, LF or CR; an empty line dispatches the event). A CR at the very
 * end may be the first half of a CRLF split across chunks: then the event is not complete yet.
 */
function eventEnd(s: string): { at: number; length: number } | undefined {
  let lineStart = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x0a && c !== 0x0d) {
      lineStart = false;
      continue;
    }
    if (c === 0x0d && i + 1 === s.length) return undefined;
    const length = c === 0x0d && s.charCodeAt(i + 1) === 0x0a ? 2 : 1;
    if (lineStart) return { at: i, length };
    lineStart = true;
    i += length - 1;
  }
  return undefined;
}
