/**
 * Holds the current oidc-provider instance and rebuilds it when the signing key set changes (rotation
 * here or on another instance), so a new signer is picked up without a restart. The check is a string
 * comparison of key ids per request; storage is re-read on a timer.
 */
import type Provider from 'oidc-provider';
import type { GatewayContext } from '../context.js';
import { wireProviderEvents } from './events.js';
import { buildProvider } from './provider.js';

export class ProviderHost {
  #provider: Provider;
  /** `provider.callback()` composes Koa's middleware chain: built once per provider, not per request. */
  #callback: ReturnType<Provider['callback']>;
  #keyFingerprint: string;
  #timer: NodeJS.Timeout | undefined;
  #recentlyRevoked = new Map<string, number>();

  constructor(private readonly ctx: GatewayContext) {
    this.#keyFingerprint = this.#fingerprint();
    this.#provider = this.#build();
    this.#callback = this.#provider.callback();
  }

  /** The provider to hand this request to (rebuilt first if the keys changed). */
  get provider(): Provider {
    const fp = this.#fingerprint();
    if (fp !== this.#keyFingerprint) {
      this.#keyFingerprint = fp;
      this.#provider = this.#build();
      this.#callback = this.#provider.callback();
    }
    return this.#provider;
  }

  /** The request handler of the current provider (rebuilt with it). */
  get callback(): ReturnType<Provider['callback']> {
    void this.provider; // rebuilds first when the keys changed
    return this.#callback;
  }

  /** Re-reads keys from storage every `ms` (other instances may have rotated). */
  startKeyPolling(ms = 30_000): void {
    this.#timer = setInterval(
      () => void this.ctx.keys.reload().catch((err: unknown) => this.ctx.log.warn({ err }, 'signing key reload failed')),
      ms,
    );
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  #fingerprint(): string {
    return this.ctx.keys
      .privateJwks()
      .keys.map((k) => k.kid)
      .join(',');
  }

  #build(): Provider {
    const provider = buildProvider(this.ctx, (gid) => this.#onGrantRevoked(gid));
    wireProviderEvents(provider, this.ctx);
    return provider;
  }

  /** Every grant revocation reaches the RevocationList (and so the proxy), once per grant. */
  async #onGrantRevoked(grantId: string): Promise<void> {
    const now = Date.now();
    for (const [gid, at] of this.#recentlyRevoked) if (now - at > 60_000) this.#recentlyRevoked.delete(gid);
    if (this.#recentlyRevoked.has(grantId)) return;
    this.#recentlyRevoked.set(grantId, now);
    await this.ctx.revocations.revoke(grantId);
    this.ctx.audit.emit('grant.revoked', { grant_id: grantId });
  }
}
