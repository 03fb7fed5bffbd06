/**
 * Shared set-up for the security regression suite (original-behaviour §8): a real upstream OpenID
 * provider with scripted users (one of them hostile: CR/LF in every claim), a raw echo backend that
 * records exactly what reaches it, and a gateway with two protected services and one public service.
 */
import { Writable } from 'node:stream';
import type { GatewayOptions } from '../../src/http/app.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startEchoBackend, type EchoBackend } from '../helpers/mcp-backend.js';
import { ALICE, BOB, startUpstreamIdp, type IdpUser, type UpstreamIdp } from '../helpers/upstream-idp.js';

export const REDIRECT = 'http://127.0.0.1:49152/callback';
/** RFC 7636 appendix B: verifier `dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk` → this S256 challenge. */
export const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
export const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

/** A user whose IdP claims try header injection (S18 / input hardening). */
export const EVE: IdpUser = {
  sub: 'eve',
  email: 'eve@example.com',
  name: 'Eve\r\nX-Injected: 1\r\n\r\n<script>alert(1)</script>',
  picture: 'https://example.com/e.png\r\nSet-Cookie: a=b',
  groups: ['staff\r\nX-Group-Injected: 1', 'Zoë'],
};

export interface SecurityWorld {
  idp: UpstreamIdp;
  backend: EchoBackend;
  gw: StartedGateway;
}

export async function securityWorld(
  extra: Record<string, unknown> = {},
  options: GatewayOptions = {},
  services?: (backend: string) => Record<string, unknown>,
  providerExtra: Record<string, unknown> = {},
): Promise<SecurityWorld> {
  const idp = await startUpstreamIdp([ALICE, BOB, EVE]);
  const backend = await startEchoBackend();
  const gw = await startGateway(
    () => ({
      oauth_providers: {
        myidp: {
          issuer: idp.issuer,
          client_id: 'gateway',
          client_secret: 'gateway-upstream-secret-value',
          allow_insecure_http: true,
          scopes: ['openid', 'email', 'profile', 'groups'],
          ...providerExtra,
        },
      },
      mcp_services: services?.(backend.url) ?? {
        calc: { name: 'Calculator', url: backend.url, oauth_provider: 'myidp', scopes: ['mcp:tools', 'mcp:read'] },
        weather: {
          name: 'Weather',
          url: backend.url,
          oauth_provider: 'myidp',
          scopes: ['weather:read'],
          policy: { email_domains: ['example.com'] },
        },
        pub: { name: 'Public', url: backend.url, auth_required: false },
      },
      limits: { shutdown_grace: 1 },
      // Many registrations per test from one IP: limits are tested on their own (S17).
      rate_limits: { enabled: false },
      ...extra,
    }),
    options,
  );
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-upstream-secret-value', redirect_uris: [`${gw.url}/oauth/callback`] });
  return { idp, backend, gw };
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

async function toReply(res: Response): Promise<Reply> {
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    const parsed: unknown = text ? JSON.parse(text) : {};
    if (parsed && typeof parsed === 'object') json = parsed as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json };
}

export async function postForm(url: string, body: Record<string, string>, headers: Record<string, string> = {}): Promise<Reply> {
  return toReply(
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(body),
    }),
  );
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return toReply(
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return toReply(await fetch(url, { headers, redirect: 'manual' }));
}

export async function register(gw: string, body: Record<string, unknown> = {}): Promise<Reply> {
  return postJson(`${gw}/oauth/register`, { redirect_uris: [REDIRECT], ...body });
}

export function authorizeUrl(gw: string, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  const all: Record<string, string | undefined> = {
    response_type: 'code',
    redirect_uri: REDIRECT,
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    state: 'st-1',
    resource: `${gw}/calc/mcp`,
    ...params,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) q.set(k, v);
  return `${gw}/oauth/authorize?${q}`;
}

export const basicAuth = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A writable that keeps every log line, for secret scans. */
export function logCapture() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

export function gidOf(jwt: string): string {
  return String((JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { gid?: unknown }).gid);
}
