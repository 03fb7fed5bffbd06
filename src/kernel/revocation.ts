/**
 * How revocation reaches the proxy cheaply.
 *
 * Access tokens are self-contained JWTs, validated in-process. Each carries `gid`, the id of the grant it
 * came from. When a grant is revoked (RFC 7009 revocation of a refresh token, refresh-token reuse,
 * authorization-code replay, an operator's `revoke` command), a marker `gw:revoked-grant:<gid>` is written
 * to storage with a TTL equal to the longest access-token lifetime (after that every token of the grant
 * has expired anyway).
 *
 * The proxy asks `isRevoked(gid)`: a synchronous Map lookup, no I/O on the request path. The map is fed
 * (1) immediately by revocations made in this process, (2) when the store offers pub/sub (Redis), by the
 * message every instance publishes on the `revocations` channel after writing its marker: other
 * instances learn it within milliseconds, and (3) by polling storage every `pollMs` for the markers: the
 * guarantee, since pub/sub is best-effort (a message sent while an instance is disconnected is lost).
 *
 * If storage cannot be read, `healthy` turns false (at the failed poll, or at once through
 * `markUnhealthy()` from the storage monitor) and the proxy applies its configured fail mode. It turns true
 * again only after a poll has succeeded, so the markers written meanwhile are known first.
 */
import type { Store } from '../storage/store.js';

export const REVOKED_PREFIX = 'gw:revoked-grant:';
/** Pub/sub channel (the store adds its key prefix). Message: `{"gid": "...", "exp": <epoch ms>}`. */
export const REVOCATION_CHANNEL = 'revocations';

/** Grant ids are opaque provider ids; anything longer or with control characters is not one of ours. */
// eslint-disable-next-line no-control-regex
const VALID_GID = /^[^\u0000-\u001f\u007f]{1,256}$/;

export interface RevocationListOptions {
  /** Milliseconds between storage polls (default 1000). */
  pollMs?: number;
  /** Called when a store operation fails (for metrics/logs); never with secrets. */
  onError?: (operation: string, err: unknown) => void;
}

export class RevocationList {
  #revoked = new Map<string, number>(); // gid -> expiresAt (ms)
  #timer: NodeJS.Timeout | undefined;
  #healthy = true;
  #listeners = new Set<(gid: string) => void>();
  #unsubscribe: (() => Promise<void>) | undefined;
  #subscribing: Promise<void> | undefined;
  #stopped = false;
  #polling = false;
  readonly #pollMs: number;
  readonly #onError: ((operation: string, err: unknown) => void) | undefined;

  constructor(
    private readonly store: Store,
    private readonly markerTtlSeconds: number,
    options: RevocationListOptions | number = {},
  ) {
    const opts = typeof options === 'number' ? { pollMs: options } : options;
    this.#pollMs = opts.pollMs ?? 1000;
    this.#onError = opts.onError;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#subscribe();
    await this.refresh();
    this.#timer = setInterval(() => void this.#tick(), this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (unsubscribe) void unsubscribe().catch(() => undefined);
  }

  /** Whether storage answered the last poll. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Whether revocations from other instances arrive by pub/sub (besides polling). */
  get subscribed(): boolean {
    return this.#unsubscribe !== undefined;
  }

  /** The storage monitor saw storage fail: stop trusting the list until a poll succeeds again. */
  markUnhealthy(): void {
    this.#healthy = false;
  }

  isRevoked(gid: string | undefined): boolean {
    if (!gid) return false;
    const exp = this.#revoked.get(gid);
    if (exp === undefined) return false;
    if (exp <= Date.now()) {
      this.#revoked.delete(gid);
      return false;
    }
    return true;
  }

  /**
   * Records a revocation here and in storage, then tells the other instances (pub/sub, when available).
   * The marker write is what counts: if it fails the error propagates; a failed publish is only logged
   * (the other instances' poll finds the marker within `pollMs`).
   */
  async revoke(gid: string): Promise<void> {
    const expiresAt = Date.now() + this.markerTtlSeconds * 1000;
    this.note(gid, expiresAt);
    await this.store.set(REVOKED_PREFIX + gid, { gid, at: Date.now() }, { ttlSeconds: this.markerTtlSeconds });
    if (this.store.publish) {
      try {
        await this.store.publish(REVOCATION_CHANNEL, JSON.stringify({ gid, exp: expiresAt }));
      } catch (err) {
        this.#onError?.('publish', err);
      }
    }
  }

  /** Records a revocation learnt from elsewhere (pub/sub, poll), without writing. */
  note(gid: string, expiresAt = Date.now() + this.markerTtlSeconds * 1000): void {
    const known = this.#revoked.get(gid);
    // Keep the later expiry: a marker re-written by another revocation of the same grant lives longer.
    if (known === undefined || known < expiresAt) this.#revoked.set(gid, expiresAt);
    if (known === undefined) for (const l of this.#listeners) l(gid);
  }

  onRevoked(listener: (gid: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async refresh(): Promise<void> {
    try {
      const rows = await this.store.list<{ gid: string }>(REVOKED_PREFIX, { limit: 100_000 });
      for (const r of rows) {
        const gid = r.value?.gid;
        if (typeof gid === 'string' && VALID_GID.test(gid)) this.note(gid, r.expiresAt ?? Date.now() + this.markerTtlSeconds * 1000);
      }
      this.#healthy = true;
    } catch (err) {
      this.#healthy = false;
      this.#onError?.('revocation_poll', err);
    }
  }

  async #tick(): Promise<void> {
    // A poll stuck on a frozen back-end (up to its command timeout) is not stacked with more polls.
    if (this.#polling) return;
    this.#polling = true;
    try {
      // A subscription that failed (or a store that was down at start) is retried on every poll.
      if (this.store.subscribe && !this.#unsubscribe) await this.#subscribe();
      await this.refresh();
    } finally {
      this.#polling = false;
    }
  }

  /** Subscribes once to the revocation channel; failures leave polling in charge and are retried. */
  async #subscribe(): Promise<void> {
    if (!this.store.subscribe || this.#unsubscribe || this.#stopped) return;
    this.#subscribing ??= (async () => {
      try {
        const unsubscribe = await this.store.subscribe!(REVOCATION_CHANNEL, (message) => this.#onMessage(message));
        if (this.#stopped) await unsubscribe().catch(() => undefined);
        else this.#unsubscribe = unsubscribe;
      } catch (err) {
        this.#onError?.('subscribe', err);
      } finally {
        this.#subscribing = undefined;
      }
    })();
    await this.#subscribing;
  }

  /** Pub/sub input is untrusted shape-wise (anyone with Redis access can publish): validate, never throw. */
  #onMessage(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const { gid, exp } = parsed as { gid?: unknown; exp?: unknown };
    if (typeof gid !== 'string' || !VALID_GID.test(gid)) return;
    const max = Date.now() + this.markerTtlSeconds * 1000;
    // The sender's expiry, bounded by ours (clock skew or a forged huge value cannot pin a grant forever).
    const expiresAt = typeof exp === 'number' && Number.isFinite(exp) ? Math.min(exp, max) : max;
    if (expiresAt > Date.now()) this.note(gid, expiresAt);
  }
}

/**
 * Revokes a grant: `mark` (the revocation marker, and with it the proxy's refusal of the grant's access
 * tokens) first, then the grant's records. The order matters: a token request racing the revocation
 * re-creates no record of a grant already marked (the adapter writes nothing for a revoked grant), and
 * the proxy refuses the access tokens even while records are still being deleted; the other order leaves
 * a window in which a refresh writes a live refresh token of a grant whose records are gone and which no
 * marker refuses yet. The one implementation for the adapter (src/authz/adapter.ts `revokeByGrantId`) and
 * the operator's `revoke` / `clients delete` (src/cli/admin.ts).
 */
export async function revokeGrant(store: Store, grantId: string, mark: (grantId: string) => Promise<void>): Promise<void> {
  const grant = await store.get<{ accountId?: unknown }>(`oidc:Grant:${grantId}`);
  await mark(grantId);
  await store.deleteByIndex(`grant:${grantId}`);
  // The upstream tokens the gateway holds for the user go with any of their grants (docs/upstream-auth.md):
  // they were handed over for the access this grant gave, and the next sign-in stores fresh ones.
  const user = grant?.value.accountId;
  if (typeof user === 'string' && user) await store.deleteByIndex(upstreamTokensIndex(user));
}

/** Index tag of every upstream-token record of a user (src/credentials/token-store.ts). */
export function upstreamTokensIndex(user: string): string {
  return `upstream-user:${user}`;
}
