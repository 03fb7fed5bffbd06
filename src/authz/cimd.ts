/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-02): a `client_id` that is
 * an https URL is fetched by oidc-provider (https only, SSRF guard against special-use addresses, 5 KiB,
 * cached). `registration.cimd.allowed_hosts` restricts which hosts may be fetched.
 */
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { GatewayContext } from '../context.js';

/**
 * Test hook: replaces the provider's outbound `fetch` (and with it the SSRF-guarded dispatcher, which
 * blocks loopback). Only tests set it, before starting a gateway; it is never reachable from config.
 */
export const cimdTesting: { fetch?: (url: string, init: RequestInit & { dispatcher?: unknown }) => Promise<Response> } = {};

export function cimdFeature(ctx: GatewayContext) {
  const { enabled, allowed_hosts: allowed } = ctx.config.registration.cimd;
  const hosts = allowed?.map((h) => h.toLowerCase());
  return {
    enabled,
    ack: 'draft-02' as const,
    async allowFetch(_koa: KoaContextWithOIDC, clientId: string): Promise<boolean> {
      if (!hosts) return true;
      const host = URL.parse(clientId)?.hostname.toLowerCase();
      if (host !== undefined && hosts.includes(host)) return true;
      // Refused before any request is made; the person sees why on the error page.
      throw new errors.InvalidClient(`client_id metadata documents from ${host ?? 'this host'} are not accepted: the host is not in registration.cimd.allowed_hosts`);
    },
  };
}
