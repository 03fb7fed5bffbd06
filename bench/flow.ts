/**
 * The benchmark obtains its tokens through the real flow: the upstream test IdP, the gateway's consent
 * page, DCR and PKCE through the MCP SDK client (test/helpers/oauth-client.ts). No shortcut skips
 * validation: the token is a normal gateway access token.
 */
import { request } from 'undici';
import { obtainToken } from '../test/helpers/oauth-client.js';
import { ALICE, startUpstreamIdp, type UpstreamIdp } from '../test/helpers/upstream-idp.js';

export interface BenchIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Registers the gateway's callback at the IdP (the gateway issuer is known before it starts). */
  allowGateway(gatewayIssuer: string): void;
  close(): Promise<void>;
}

export async function startBenchIdp(): Promise<BenchIdp> {
  const idp: UpstreamIdp = await startUpstreamIdp([ALICE], { cleanup: false });
  const clientId = 'bench-gateway';
  const clientSecret = 'bench-gateway-secret';
  // One client for every gateway of the run (1 and 2 workers, and the traced one with BENCH_TRACING): its callbacks accumulate.
  const callbacks: string[] = [];
  return {
    issuer: idp.issuer,
    clientId,
    clientSecret,
    allowGateway: (gw) => {
      callbacks.push(`${gw}/oauth/callback`);
      idp.addClient({ client_id: clientId, client_secret: clientSecret, redirect_uris: [...callbacks] });
    },
    close: () => idp.close(),
  };
}

export async function benchToken(
  issuer: string,
  service: string,
): Promise<{ accessToken: string; refreshToken?: string; clientId: string }> {
  const { tokens, provider } = await obtainToken(issuer, service);
  const info = provider.clientInformation();
  if (!info) throw new Error('no client information after the flow');
  return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, clientId: info.client_id };
}

/** Refresh-grant throughput: `chains` clients, each rotating its own refresh token as fast as it can. */
export async function benchRefreshTokens(
  issuer: string,
  service: string,
  chains: number,
  seconds: number,
): Promise<{ perSecond: number; errors: number }> {
  const starts = [];
  for (let i = 0; i < chains; i++) starts.push(await benchToken(issuer, service));
  const t0 = performance.now();
  const { done, errors } = await refreshChains(issuer, starts, seconds);
  return { perSecond: done / ((performance.now() - t0) / 1000), errors };
}

/**
 * Each start rotates its refresh token for `seconds`, one request at a time; the starts are updated with
 * the newest token, so a later call continues the same chains.
 */
export async function refreshChains(
  issuer: string,
  starts: { refreshToken?: string; clientId: string }[],
  seconds: number,
): Promise<{ done: number; errors: number }> {
  let done = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    starts.map(async (s) => {
      while (s.refreshToken && performance.now() < deadline) {
        const res = await request(`${issuer}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: s.refreshToken, client_id: s.clientId }).toString(),
        });
        const body = (await res.body.json()) as { refresh_token?: string };
        if (res.statusCode !== 200 || !body.refresh_token) {
          errors++;
          break;
        }
        s.refreshToken = body.refresh_token;
        done++;
      }
    }),
  );
  return { done, errors };
}

/** The autocannon options (bench/load.ts) of the registration benchmark: public native clients, 16 connections. */
export function registrationLoad(issuer: string, duration: number): Record<string, unknown> {
  return {
    url: `${issuer}/oauth/register`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'bench',
      redirect_uris: ['http://127.0.0.1:9999/callback'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    }),
    duration,
    connections: 16,
  };
}

/** Rate limiting on (its hooks are part of the measured path), with limits a benchmark cannot reach (the schema's maximum). */
export const UNREACHABLE_RATE_LIMITS = {
  enabled: true,
  register_per_minute: 1_000_000,
  token_per_minute: 1_000_000,
  authorize_per_minute: 1_000_000,
  failed_auth_per_minute: 1_000_000,
};
