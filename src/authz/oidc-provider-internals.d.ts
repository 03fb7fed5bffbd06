/**
 * Types for the oidc-provider internals the gateway reuses instead of re-implementing them (the package
 * has no `exports` map, so its modules are importable; it ships no types for them).
 */
declare module 'oidc-provider/lib/helpers/fetch_request.js' {
  /** The special-use address check behind oidc-provider's SSRF-guarded dispatcher (IPv4 and IPv6 registries). */
  export function isSpecialUseIP(address: string): boolean;
  /** Adds the connect-time check (a socket to a special-use address is destroyed) to an undici dispatcher. */
  export function applySSRFProtection<T>(dispatcher: T): T;
}

declare module 'oidc-provider/lib/helpers/als.js' {
  import type { AsyncLocalStorage } from 'node:async_hooks';
  /** The request (koa context) oidc-provider is handling, for code it calls without one (adapters). */
  const als: AsyncLocalStorage<unknown>;
  export default als;
}
