/**
 * How revocation reaches the proxy cheaply.
 *
 * Access tokens are self-contained JWTs, validated in-process. Each carries `gid`, the id of the grant it
 * came from. When a grant is revoked (RFC 7009 revocation of a refresh token, refresh-token reuse,
 * authorization-code replay, an operator's `revoke` command), a marker `gw:revoked-grant:<gid>` is written
 * to storage with a TTL equal to the longest access-token lifetime (after that every token of the grant
 * has expired anyway).
 *
 * The proxy asks `isRevoked(gid)`: a synchronous Set lookup, no I/O on the request path. The set is fed
 * (1) immediately by revocations made in this process, and (2) by polling storage every `pollMs` for the
 * markers written by other instances (Redis adds pub/sub on top). If storage cannot be read, `healthy`
 * turns false and the caller applies its configured fail mode.
 */
import type { Store } from '../storage/store.js';

export const REVOKED_PREFIX = 'gw:revoked-grant:';

export class RevocationList {
  #revoked = new Map<string, number>(); // gid -> expiresAt (ms)
  #timer: NodeJS.Timeout | undefined;
  #healthy = true;
  #listeners = new Set<(gid: string) => void>();

  constructor(
    private readonly store: Store,
    private readonly markerTtlSeconds: number,
    private readonly pollMs = 1000,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.pollMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Whether storage answered the last poll. */
  get healthy(): boolean {
    return this.#healthy;
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

  /** Records a revocation here and in storage (so other instances learn it). */
  async revoke(gid: string): Promise<void> {
    this.note(gid, Date.now() + this.markerTtlSeconds * 1000);
    await this.store.set(REVOKED_PREFIX + gid, { gid, at: Date.now() }, { ttlSeconds: this.markerTtlSeconds });
  }

  /** Records a revocation learnt from elsewhere (pub/sub), without writing. */
  note(gid: string, expiresAt = Date.now() + this.markerTtlSeconds * 1000): void {
    const known = this.#revoked.has(gid);
    this.#revoked.set(gid, expiresAt);
    if (!known) for (const l of this.#listeners) l(gid);
  }

  onRevoked(listener: (gid: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async refresh(): Promise<void> {
    try {
      const rows = await this.store.list<{ gid: string }>(REVOKED_PREFIX, { limit: 100_000 });
      for (const r of rows) this.note(r.value.gid, r.expiresAt ?? Date.now() + this.markerTtlSeconds * 1000);
      this.#healthy = true;
    } catch {
      this.#healthy = false;
    }
  }
}
