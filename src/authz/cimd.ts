/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-02): a `client_id` that is
 * an https URL is fetched by oidc-provider (https only, SSRF guard against special-use addresses, 5 KiB,
 * cached). `registration.cimd.allowed_hosts` restricts which hosts may be fetched;
 * `registration.cimd.private_hosts` lets named internal hosts through the SSRF guard.
 */
import { lookup as lookupCallback, type LookupAddress, type LookupOptions } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { applySSRFProtection, isSpecialUseIP } from 'oidc-provider/lib/helpers/fetch_request.js';
import { Agent, fetch as undiciFetch } from 'undici';
import type { GatewayContext } from '../context.js';

type ProviderFetch = (url: string, init: RequestInit & { dispatcher?: unknown }) => Promise<Response>;

/**
 * Test hooks, set only by tests before starting a gateway; never reachable from configuration.
 * - `fetch` replaces the provider's outbound `fetch` (and with it the SSRF-guarded dispatcher, which
 *   blocks loopback, and the address check below).
 * - `privateHostCa` is one more CA certificate trusted for `private_hosts` fetches only (the test's
 *   throw-away certificate; in production an internal CA comes from `NODE_EXTRA_CA_CERTS`).
 */
export const cimdTesting: { fetch?: ProviderFetch; privateHostCa?: string } = {};

/** `[::ffff:7f00:1]` → `127.0.0.1`: the registries list IPv4-mapped addresses by their IPv4 form. */
function unmapped(address: string): string {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (!m) return address;
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Whether an address (as `URL` or DNS spell it) is special-use, by oidc-provider's own check. */
export function isSpecialUse(address: string): boolean {
  const a = unmapped(address.replace(/^\[|\]$/g, ''));
  return isSpecialUseIP(a);
}

/**
 * P12 in docs/security.md (CIMD "no private/loopback/link-local targets after DNS resolution"): resolved here, before any
 * connection, so a refusal names its rule (oidc-provider's dispatcher only drops the socket after the
 * TCP connect and answers "fetch failed"). The dispatcher's check still runs at connect time, so a name
 * that resolves differently a moment later (DNS rebinding) is still refused. The address is not shown
 * to the client: it would tell an outsider what an internal name resolves to.
 */
async function assertPublicHost(host: string): Promise<void> {
  const bare = host.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (isIP(bare)) addresses = [bare];
  else {
    try {
      addresses = (await lookup(bare, { all: true, verbatim: true })).map((a) => a.address);
    } catch {
      throw new errors.InvalidClient(`client_id metadata document host ${host} cannot be resolved`);
    }
  }
  if (addresses.some(isSpecialUse)) {
    throw new errors.InvalidClient(
      `client_id metadata documents from ${host} are not fetched: the host resolves to a private, loopback or link-local address (SSRF guard); an internal client's host must be listed in registration.cimd.private_hosts`,
    );
  }
}

export function cimdFeature(ctx: GatewayContext) {
  const { enabled, allowed_hosts: allowed, private_hosts: privateList } = ctx.config.registration.cimd;
  const hosts = allowed?.map((h) => h.toLowerCase());
  const privateHosts = new Set(privateList.map((h) => h.toLowerCase()));
  return {
    enabled,
    ack: 'draft-02' as const,
    async allowFetch(_koa: KoaContextWithOIDC, clientId: string): Promise<boolean> {
      // WHATWG URL parsing lower-cases the host and normalises every IPv4 spelling (0x7f.1, 2130706433).
      const host = URL.parse(clientId)?.hostname;
      if (host === undefined) throw new errors.InvalidClient('client_id is not a URL');
      if (privateHosts.has(host)) return true;
      // Refused before any request is made; the person sees why on the error page.
      if (hosts && !hosts.includes(host))
        throw new errors.InvalidClient(
          `client_id metadata documents from ${host} are not accepted: the host is not in registration.cimd.allowed_hosts`,
        );
      if (!cimdTesting.fetch) await assertPublicHost(host);
      return true;
    },
  };
}

/**
 * The provider's outbound `fetch` (CIMD documents, a client's `jwks_uri`). oidc-provider hands every
 * request a dispatcher that destroys a socket to a special-use address once it is connected (so the TCP
 * handshake, and with TLS the ClientHello, already reached the target). Ours resolves first and connects
 * only to checked addresses (`guardedLookup`; IP literals are checked before the request, as no lookup
 * happens for them), and keeps oidc-provider's connect-time check on top. Hosts the operator listed in
 * `registration.cimd.private_hosts` get an ordinary agent (normal DNS, verified TLS).
 */
export function providerFetch(ctx: GatewayContext): ProviderFetch {
  if (cimdTesting.fetch) return cimdTesting.fetch;
  const privateHosts = new Set(ctx.config.registration.cimd.private_hosts.map((h) => h.toLowerCase()));
  return (url, init) => {
    const host = URL.parse(url)?.hostname;
    const { dispatcher: _theirs, ...rest } = init;
    const options = rest as Parameters<typeof undiciFetch>[1];
    if (host !== undefined && privateHosts.has(host))
      return undiciFetch(url, { ...options, dispatcher: privateAgent() }) as unknown as Promise<Response>;
    const bare = host?.replace(/^\[|\]$/g, '') ?? '';
    if (isIP(bare) && isSpecialUse(bare)) return Promise.reject(new Error('the address is a special-use IP address (SSRF guard)'));
    return undiciFetch(url, { ...options, dispatcher: guardedAgent() }) as unknown as Promise<Response>;
  };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** `dns.lookup` that fails for a name with any special-use address, so such a socket is never opened. */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  lookupCallback(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    if (addresses.length === 0 || addresses.some((a) => isSpecialUse(a.address))) {
      return callback(
        Object.assign(new Error(`${hostname} resolves to a special-use IP address (SSRF guard)`), { code: 'ESPECIALUSE' }),
        [],
      );
    }
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
}

let guarded: Agent | undefined;
function guardedAgent(): Agent {
  guarded ??= applySSRFProtection(new Agent({ connect: { lookup: guardedLookup as never } }));
  return guarded;
}

/** One agent per process (providers are rebuilt on key rotation; their fetches share its pool). */
let agent: { ca: string | undefined; agent: Agent } | undefined;
function privateAgent(): Agent {
  const ca = cimdTesting.privateHostCa;
  if (agent === undefined || agent.ca !== ca) {
    void agent?.agent.close();
    agent = { ca, agent: new Agent({ connect: ca ? { ca: [...rootCertificates, ca] } : {} }) };
  }
  return agent.agent;
}
