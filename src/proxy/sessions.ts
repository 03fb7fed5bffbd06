/**
 * Legacy-era (2025-03-26 … 2025-11-25) session binding: an `Mcp-Session-Id` belongs to the user who
 * opened it. mcp-spec-notes §3.3: a valid token for another user presenting someone's session id must be
 * refused; bind to the user (`sub`), not the token, because sessions continue across token refresh.
 *
 * Bindings live in storage (`gw:mcp-session:<service>:<sha256(session id)>` → user id, 24 h TTL, refreshed
 * at most once a minute) so every instance sees them; a small in-process cache with a short TTL keeps the
 * hot path free of storage round-trips. Session ids are stored hashed: storage never holds a usable id.
 */
import { createHash } from 'node:crypto';
import type { Store } from '../storage/store.js';
import { setBounded } from './bounded-map.js';

export const SESSION_PREFIX = 'gw:mcp-session:';

interface Binding {
  userId: string;
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

  static storageKey(serviceId: string, sessionId: string): string {
    return `${SESSION_PREFIX}${serviceId}:${createHash('sha256').update(sessionId).digest('hex')}`;
  }

  /** Who owns the session. Throws when storage cannot be read (the caller fails closed). */
  async check(serviceId: string, sessionId: string, userId: string, now = Date.now()): Promise<BindingCheck> {
    const cacheKey = `${serviceId}\n${sessionId}`;
    let b = this.#cache.get(cacheKey);
    if (b === undefined || now - b.seenAt > this.#cacheMs) {
      const rec = await this.store.get<{ user: string }>(SessionBindings.storageKey(serviceId, sessionId));
      if (rec === undefined || typeof rec.value?.user !== 'string') {
        this.#cache.delete(cacheKey);
        return 'unbound';
      }
      // Time the stored TTL was last set, derived from its expiry.
      const refreshedAt = rec.expiresAt === undefined ? now : rec.expiresAt - this.#ttl * 1000;
      b = { userId: rec.value.user, seenAt: now, refreshedAt };
      this.#remember(cacheKey, b);
    }
    if (b.userId !== userId) return 'foreign';
    if (now - b.refreshedAt > this.#refreshMs) {
      b.refreshedAt = now;
      this.store.set(SessionBindings.storageKey(serviceId, sessionId), { user: userId }, { ttlSeconds: this.#ttl }).catch((err) => this.onError(err, 'refresh'));
    }
    return 'owner';
  }

  /** Records that `userId` opened `sessionId` (the backend returned it). */
  async bind(serviceId: string, sessionId: string, userId: string, now = Date.now()): Promise<void> {
    this.#remember(`${serviceId}\n${sessionId}`, { userId, seenAt: now, refreshedAt: now });
    await this.store.set(SessionBindings.storageKey(serviceId, sessionId), { user: userId }, { ttlSeconds: this.#ttl });
  }

  /** Removes a binding (the session was deleted). */
  async unbind(serviceId: string, sessionId: string): Promise<void> {
    this.#cache.delete(`${serviceId}\n${sessionId}`);
    await this.store.delete(SessionBindings.storageKey(serviceId, sessionId));
  }

  #remember(key: string, b: Binding): void {
    setBounded(this.#cache, key, b, this.#max);
  }
}
