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
  let done = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    starts.map(async (s) => {
      let rt = s.refreshToken;
      while (rt && performance.now() < deadline) {
        const res = await request(`${issuer}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, client_id: s.clientId }).toString(),
        });
        const body = (await res.body.json()) as { refresh_token?: string };
        if (res.statusCode !== 200 || !body.refresh_token) {
          errors++;
          break;
        }
        rt = body.refresh_token;
        done++;
      }
    }),
  );
  return { perSecond: done / ((performance.now() - t0) / 1000), errors };
}
