/**
 * A real MCP SDK client auth driver. `BrowserDriver` plays the person's browser: it follows redirects
 * through the gateway, answers the consent page (approve or deny), fills the development sign-in form
 * (`devLogin`), passes the upstream IdP, and stops at the client's loopback redirect URI, capturing
 * `code`, `state` and `iss`. Every page shown and URL visited is kept in the `WalkResult`. `TestOAuthProvider` is the
 * SDK's `OAuthClientProvider` backed by it; `obtainToken` runs the SDK `auth()` flow end to end.
 */
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

export interface WalkResult {
  /** The final redirect to the client, parsed. */
  redirect?: URL;
  /** Pages that were shown, by kind. */
  pages: Array<'consent' | 'error' | 'return' | 'dev-login' | 'chooser'>;
  /** The HTML of every page shown, in order (with its status and headers). */
  shown: Array<{ status: number; body: string; headers: Headers }>;
  /** Every URL the browser requested, in order (upstream callbacks included). */
  visited: URL[];
  /** The last HTML body when the walk ended on a page (no redirect). */
  finalPage?: { status: number; body: string };
}

export class BrowserDriver {
  readonly #jar = new Map<string, Map<string, string>>();
  /** What to answer on the consent page. */
  consent: 'approve' | 'deny' = 'approve';
  /** What to type into the development sign-in form (without it the walk stops on that page). */
  devLogin: { name: string; email: string; groups?: string } | undefined;
  /** Which provider to pick on the sign-in chooser (without it the walk stops on that page). */
  provider: string | undefined;

  /** The Cookie header this browser sends to `url`'s host (to send it on a connection of the test's own). */
  cookieHeader(url: URL): string {
    const jar = this.#jar.get(url.host);
    return jar ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }

  #store(url: URL, res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const jar = this.#jar.get(url.host) ?? new Map<string, string>();
      this.#jar.set(url.host, jar);
      const expired = attrs.some((a) => /expires=.*1970/i.test(a)) || attrs.some((a) => /max-age=0\b/i.test(a.trim()));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
  }

  /** Drops the cookies of `url`'s host except those `keep` names (a browser whose gateway session ended). */
  keepCookies(url: URL, keep: (name: string) => boolean): void {
    const jar = this.#jar.get(url.host);
    if (jar) for (const name of [...jar.keys()]) if (!keep(name)) jar.delete(name);
  }

  async request(url: URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.#store(url, res);
    return res;
  }

  /** Follows the browser journey from `start` until a redirect whose URL starts with `redirectUri`. */
  async walk(start: URL, redirectUri: string): Promise<WalkResult> {
    const result: WalkResult = { pages: [], shown: [], visited: [] };
    let next: { url: URL; init?: RequestInit } | undefined = { url: start };
    for (let hops = 0; next && hops < 30; hops++) {
      result.visited.push(next.url);
      const res = await this.request(next.url, next.init);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        const target: URL = new URL(location, next.url);
        if (target.href.startsWith(redirectUri)) {
          result.redirect = target;
          return result;
        }
        next = { url: target };
        continue;
      }
      const body = await res.text();
      result.shown.push({ status: res.status, body, headers: res.headers });
      const form = parseForm(body);
      if (!form) {
        result.finalPage = { status: res.status, body };
        return result;
      }
      const isConsent = form.action.includes('/decision');
      const isDevLogin = form.action.endsWith('/dev-login');
      const isChooser = form.action.endsWith('/provider');
      result.pages.push(isConsent ? 'consent' : isDevLogin ? 'dev-login' : isChooser ? 'chooser' : 'return');
      const fields = new URLSearchParams(form.fields);
      if (isConsent) fields.set('action', this.consent);
      if (isChooser) {
        if (!this.provider) {
          result.finalPage = { status: res.status, body };
          return result;
        }
        fields.set('provider', this.provider);
      }
      if (isDevLogin) {
        if (!this.devLogin) {
          result.finalPage = { status: res.status, body };
          return result;
        }
        fields.set('name', this.devLogin.name);
        fields.set('email', this.devLogin.email);
        fields.set('groups', this.devLogin.groups ?? '');
      }
      next = {
        url: new URL(form.action, next.url),
        init: { method: 'POST', body: fields, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      };
    }
    return result;
  }
}

function parseForm(html: string): { action: string; fields: Record<string, string> } | undefined {
  const m = /<form[^>]*action="([^"]+)"/i.exec(html);
  if (!m) return undefined;
  const fields: Record<string, string> = {};
  for (const input of html.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi)) fields[input[1]!] = decode(input[2]!);
  return { action: decode(m[1]!), fields };
}

function decode(s: string): string {
  return s
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');
}

export interface TestProviderOptions {
  redirectUri?: string;
  clientMetadata?: Partial<OAuthClientMetadata>;
  clientInformation?: OAuthClientInformationMixed;
  clientMetadataUrl?: string;
  browser?: BrowserDriver;
  /** Fill the development sign-in form with these values. */
  devLogin?: { name: string; email: string; groups?: string };
  /** Pick this provider on the sign-in chooser. */
  chooseProvider?: string;
}

export class TestOAuthProvider implements OAuthClientProvider {
  readonly browser: BrowserDriver;
  readonly redirectUri: string;
  clientMetadataUrl?: string;
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier = '';
  #state = '';
  readonly #meta: Partial<OAuthClientMetadata>;
  /** The last browser journey. */
  lastWalk: WalkResult | undefined;
  /** The code captured at the redirect URI (or the error). */
  captured: { code?: string; error?: string; errorDescription?: string; iss?: string; stateOk: boolean } | undefined;

  constructor(opts: TestProviderOptions = {}) {
    this.browser = opts.browser ?? new BrowserDriver();
    if (opts.devLogin) this.browser.devLogin = opts.devLogin;
    if (opts.chooseProvider) this.browser.provider = opts.chooseProvider;
    this.redirectUri = opts.redirectUri ?? 'http://127.0.0.1:49152/callback';
    this.#meta = opts.clientMetadata ?? {};
    this.#client = opts.clientInformation;
    if (opts.clientMetadataUrl) this.clientMetadataUrl = opts.clientMetadataUrl;
  }

  get redirectUrl(): string {
    return this.redirectUri;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'Test MCP Client',
      redirect_uris: [this.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...this.#meta,
    };
  }
  state(): string {
    this.#state = crypto.randomUUID();
    return this.#state;
  }
  clientInformation() {
    return this.#client;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.#client = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
  }
  saveCodeVerifier(v: string): void {
    this.#verifier = v;
  }
  codeVerifier(): string {
    return this.#verifier;
  }
  async redirectToAuthorization(url: URL): Promise<void> {
    this.lastWalk = await this.browser.walk(url, this.redirectUri);
    const r = this.lastWalk.redirect;
    if (!r) {
      const page = this.lastWalk.finalPage;
      const alert = page ? /<p role="alert"[^>]*>([\s\S]*?)<\/p>/.exec(page.body)?.[1] : undefined;
      throw Object.assign(
        new Error(`the browser journey ended on a page (${page?.status}): ${alert ? decode(alert) : page?.body.slice(0, 300)}`),
        { page },
      );
    }
    const p = r.searchParams;
    this.captured = {
      code: p.get('code') ?? undefined,
      error: p.get('error') ?? undefined,
      errorDescription: p.get('error_description') ?? undefined,
      iss: p.get('iss') ?? undefined,
      stateOk: p.get('state') === this.#state,
    };
  }
}

export interface ObtainTokenOptions extends TestProviderOptions {
  provider?: TestOAuthProvider;
  scope?: string;
}

/**
 * Runs the SDK's `auth()` as an MCP client does after a 401 from `{gateway}/{service}/mcp`: PRM → AS
 * metadata → registration (DCR or CIMD) → browser sign-in → code exchange. Throws with the OAuth error
 * when the journey ends in one.
 */
export async function obtainToken(
  gatewayUrl: string,
  serviceId: string,
  opts: ObtainTokenOptions = {},
): Promise<{ tokens: OAuthTokens; provider: TestOAuthProvider }> {
  const provider = opts.provider ?? new TestOAuthProvider(opts);
  const serverUrl = `${gatewayUrl}/${serviceId}/mcp`;
  const resourceMetadataUrl = new URL(`${gatewayUrl}/.well-known/oauth-protected-resource/${serviceId}/mcp`);
  const first = await auth(provider, { serverUrl, resourceMetadataUrl, ...(opts.scope ? { scope: opts.scope } : {}) });
  if (first === 'AUTHORIZED') return { tokens: provider.tokens()!, provider };
  const c = provider.captured;
  if (!c?.stateOk) throw new Error('state mismatch at the redirect URI');
  if (c.error)
    throw Object.assign(new Error(`authorization error: ${c.error}`), { oauthError: c.error, description: c.errorDescription, iss: c.iss });
  await auth(provider, { serverUrl, resourceMetadataUrl, authorizationCode: c.code! });
  return { tokens: provider.tokens()!, provider };
}

/**
 * Runs the SDK `auth()` up to the redirect back to the client (registration and browser journey) and
 * stops there: the code is in `provider.captured`, unredeemed.
 */
export async function authorizeOnly(gatewayUrl: string, serviceId: string, opts: ObtainTokenOptions = {}): Promise<TestOAuthProvider> {
  const provider = opts.provider ?? new TestOAuthProvider(opts);
  const resourceMetadataUrl = new URL(`${gatewayUrl}/.well-known/oauth-protected-resource/${serviceId}/mcp`);
  await auth(provider, { serverUrl: `${gatewayUrl}/${serviceId}/mcp`, resourceMetadataUrl, ...(opts.scope ? { scope: opts.scope } : {}) });
  if (!provider.captured?.code) throw new Error(`no code: ${provider.captured?.error ?? 'journey failed'}`);
  return provider;
}
