/**
 * The world of the upstream_auth tests: a real upstream IdP (oidc-provider, refresh tokens, the RFC 8693
 * stand-in and the fake upstream API `/api/whoami`), a real MCP SDK backend whose `upstream_whoami` tool
 * calls that API with the token it received, and gateways whose services act as the user.
 */
import type { GatewayOptions } from '../../src/http/app.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startMcpBackend, type McpBackend } from '../helpers/mcp-backend.js';
import { connectByDiscovery, textOf, type DiscoveredSession } from '../helpers/sdk-session.js';
import { JWT_BEARER, startUpstreamIdp, TOKEN_EXCHANGE, type UpstreamIdp } from '../helpers/upstream-idp.js';

export const UPSTREAM_SECRET = 'a-dedicated-upstream-token-secret-for-tests-0123';
export const API_AUDIENCE = 'https://reports-api.example.com';
const CLIENT = { id: 'gateway', secret: 'gateway-secret-0123456789' };

export interface IdpOptions {
  accessTokenTtl?: number;
  rotateRefreshTokens?: boolean;
}

export async function startIdp(options: IdpOptions = {}): Promise<{ idp: UpstreamIdp; backend: McpBackend }> {
  const idp = await startUpstreamIdp(undefined, { rotateRefreshTokens: true, ...options });
  idp.exchangeAudiences.add(API_AUDIENCE);
  const backend = await startMcpBackend({ upstreamApi: `${idp.issuer}/api/whoami` });
  return { idp, backend };
}

/** The gateway configuration: `files` (passthrough), `reports` (token_exchange), plus `services` overrides. */
export function gatewayConfig(
  idp: UpstreamIdp,
  backend: McpBackend,
  extra: {
    storage?: Record<string, unknown>;
    services?: Record<string, unknown>;
    refreshBeforeExpiry?: number;
    logging?: Record<string, unknown>;
  } = {},
) {
  return {
    ...(extra.storage ? { storage: extra.storage } : {}),
    ...(extra.logging ? { logging: extra.logging } : {}),
    oauth_providers: {
      corp: {
        issuer: idp.issuer,
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
        allow_insecure_http: true,
        scopes: ['openid', 'email', 'profile'],
      },
    },
    upstream_tokens: { secret: UPSTREAM_SECRET, refresh_before_expiry: extra.refreshBeforeExpiry ?? 60 },
    mcp_services: {
      files: {
        name: 'Files',
        url: backend.url,
        oauth_provider: 'corp',
        scopes: ['mcp:tools'],
        upstream_auth: { mode: 'passthrough' },
      },
      reports: {
        name: 'Reports',
        url: backend.url,
        oauth_provider: 'corp',
        scopes: ['mcp:tools'],
        upstream_auth: { mode: 'token_exchange', audience: API_AUDIENCE, scope: 'reports.read' },
      },
      ...extra.services,
    },
  };
}

/** Registers the gateway(s) at the IdP as one confidential client allowed refresh and token exchange. */
export function registerAtIdp(idp: UpstreamIdp, gatewayUrls: string[]): void {
  idp.addClient({
    client_id: CLIENT.id,
    client_secret: CLIENT.secret,
    redirect_uris: gatewayUrls.map((u) => `${u}/oauth/callback`),
    grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE, JWT_BEARER],
  });
}

export async function startWorld(
  options: IdpOptions & {
    storage?: Record<string, unknown>;
    services?: Record<string, unknown>;
    refreshBeforeExpiry?: number;
    logging?: Record<string, unknown>;
    gateway?: GatewayOptions;
  } = {},
): Promise<{ idp: UpstreamIdp; backend: McpBackend; gw: StartedGateway }> {
  const { idp, backend } = await startIdp(options);
  const gw = await startGateway(() => gatewayConfig(idp, backend, options), options.gateway);
  registerAtIdp(idp, [gw.url]);
  return { idp, backend, gw };
}

export interface WhoamiUpstream {
  /** The header value the backend received (`Bearer …` for authorization). */
  received: string | null;
  status: number;
  api: { sub?: string; aud?: string; scope?: string; kind?: string; error?: string };
}

export async function upstreamWhoami(session: DiscoveredSession): Promise<WhoamiUpstream> {
  return JSON.parse(textOf(await session.client.callTool({ name: 'upstream_whoami', arguments: {} }))) as WhoamiUpstream;
}

export async function connect(gatewayUrl: string, service: string): Promise<DiscoveredSession> {
  return connectByDiscovery(`${gatewayUrl}/${service}/mcp`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
