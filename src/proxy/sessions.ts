/**
 * Legacy-era (2025-03-26 … 2025-11-25) session binding: an `Mcp-Session-Id` belongs to the user who
 * opened it. MCP Security Best Practices, Session Hijacking: a valid token for another user presenting someone's session id must be
 * refused; bind to the user (`sub`), not the token, because sessions continue across token refresh.
 *
 * A session lives on a backend, not on a route: several services may share one backend (an authenticated
 * and a public route to the same server, P2 in docs/security.md). Bindings are therefore scoped to the backend
 * *origin* (`scopeOf`), so an id bound by one user is refused to any other user, and to anonymous callers,
 * on every route to that backend. The origin rather than origin + path: a sub-path of one service can reach
 * another service's backend path, and path equivalence (`/mcp` vs `/mcp/`, encodings) is the backend's
 * to define; a scope that cannot be sidestepped costs nothing but the (negligible) chance of two servers
 * behind one origin issuing the same random id.
 *
 * Bindings live in storage (`gw:mcp-session:<scope>:<sha256(session id)>` → user id, 24 h TTL, refreshed
 * at most once a minute) so every instance sees them; a small in-process cache with a short TTL keeps the
 * hot path free of storage round-trips. Unbound ids are cached too (a public route presenting its
 * anonymous session on every request must not cost a storage read each time): an id only becomes bound
 * when a backend issues it, so an "unbound" answer can only be stale for an id someone guessed before it
 * existed. Session ids are stored hashed: storage never holds a usable id.
 */
import { createHash } from 'node:crypto';
import type { Store } from '../storage/store.js';
import { setBounded } from './bounded-map.js';

export const SESSION_PREFIX = 'gw:mcp-session:';

interface Binding {
  /** The owner, or undefined for an id with no binding (cached negative answer). */
  userId: string | undefined;
  /** When this cache entry was read or written (epoch ms). */
  seenAt: number;
  /** When the stored TTL was last extended (epoch ms). */
  refreshedAt: number;
}

export type BindingCheck = 'owner' | 'unbound' | 'foreign';

export interface SessionBindingOptions {
  ttlSeconds?: number;
  cacheMs?: number;
  refreshMs?: number;
  maxEntries?: number;
}

export class SessionBindings {
  readonly #cache = new Map<string, Binding>();
  readonly #ttl: number;
  readonly #cacheMs: number;
  readonly #refreshMs: number;
  readonly #max: number;

  constructor(
    private readonly store: Store,
    options: SessionBindingOptions = {},
    private readonly onError: (err: unknown, op: string) => void = () => {},
  ) {
    this.#ttl = options.ttlSeconds ?? 86_400;
    this.#cacheMs = options.cacheMs ?? 15_000;
    this.#refreshMs = options.refreshMs ?? 60_000;
    this.#max = options.maxEntries ?? 10_000;
  }

  /** The binding scope of a backend: a short hash of its origin (`http://host:port`), computed at start-up. */
  static scopeOf(origin: string): string {
    return createHash('sha256').update(origin).digest('hex').slice(0, 16);
  }

  static storageKey(scope: string, sessionId: string): string {
    return `${SESSION_PREFIX}${scope}:${createHash('sha256').update(sessionId).digest('hex')}`;
  }

  /**
   * Who owns the session, for `userId` (undefined: an anonymous caller on a public route, for whom any
   * bound id is `foreign`). Throws when storage cannot be read (the caller fails closed).
   */
  async check(scope: string, sessionId: string, userId: string | undefined, now = Date.now()): Promise<BindingCheck> {
    const cached = this.cached(scope, sessionId, userId, now);
    if (cached !== undefined) return cached;
    const cacheKey = `${scope}\n${sessionId}`;
    const rec = await this.store.get<{ user: string }>(SessionBindings.storageKey(scope, sessionId));
    if (rec === undefined || typeof rec.value?.user !== 'string') {
      this.#remember(cacheKey, { userId: undefined, seenAt: now, refreshedAt: now });
      return 'unbound';
    }
    // Time the stored TTL was last set, derived from its expiry.
    const refreshedAt = rec.expiresAt === undefined ? now : rec.expiresAt - this.#ttl * 1000;
    const b: Binding = { userId: rec.value.user, seenAt: now, refreshedAt };
    this.#remember(cacheKey, b);
    return this.#verdict(scope, sessionId, userId, b, now);
  }

  /**
   * The answer from the cache alone (synchronous: the proxy's common case, a session id seen in the last
   * few seconds), or undefined when storage must be read (`check`).
   */
  cached(scope: string, sessionId: string, userId: string | undefined, now = Date.now()): BindingCheck | undefined {
    const b = this.#cache.get(`${scope}\n${sessionId}`);
    if (b === undefined || now - b.seenAt > this.#cacheMs) return undefined;
    return this.#verdict(scope, sessionId, userId, b, now);
  }

  #verdict(scope: string, sessionId: string, userId: string | undefined, b: Binding, now: number): BindingCheck {
    if (b.userId === undefined) return 'unbound';
    if (b.userId !== userId) return 'foreign';
    if (now - b.refreshedAt > this.#refreshMs) {
      b.refreshedAt = now;
      this.store
        .set(SessionBindings.storageKey(scope, sessionId), { user: userId }, { ttlSeconds: this.#ttl })
        .catch((err) => this.onError(err, 'refresh'));
    }
    return 'owner';
  }

  /**
   * Records that `userId` opened `sessionId` (the backend returned it). Throws when storage refuses the
   * write, and then caches nothing: the caller fails closed (the session is not relayed), and an id that
   * is not bound in storage must not look owned on this instance only.
   */
  async bind(scope: string, sessionId: string, userId: string, now = Date.now()): Promise<void> {
    await this.store.set(SessionBindings.storageKey(scope, sessionId), { user: userId }, { ttlSeconds: this.#ttl });
    this.#remember(`${scope}\n${sessionId}`, { userId, seenAt: now, refreshedAt: now });
  }

  /** Removes a binding (the session was deleted). */
  async unbind(scope: string, sessionId: string): Promise<void> {
    this.#cache.delete(`${scope}\n${sessionId}`);
    await this.store.delete(SessionBindings.storageKey(scope, sessionId));
  }

  #remember(key: string, b: Binding): void {
    setBounded(this.#cache, key, b, this.#max);
  }
}
