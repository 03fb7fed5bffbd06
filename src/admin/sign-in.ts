/**
 * Who may use the console, and how they get in (docs/console.md, Access).
 *
 * 1. GET /admin/login      a fresh attempt: state, nonce and PKCE verifier kept server-side under the
 *                          same key the sign-in interaction uses (`gw:upstream-state:{state}`) with
 *                          `resume: '/admin/callback'`, and a browser-binding cookie; 303 to the provider.
 * 2. GET /oauth/callback   the gateway's one upstream redirect URI (src/authz/interactions.ts) sends the
 *                          browser on to /admin/callback for such an attempt (no second redirect URI to
 *                          register at the provider).
 * 3. GET /admin/callback   the attempt is taken (single use), the binding cookie must match (login CSRF),
 *                          the code exchanged; the person must be listed in `admin.users` / `admin.groups`,
 *                          else the refusal page. A session is stored (`gw:admin-session:{sha256(id)}`, TTL
 *                          `admin.session_ttl`, indexed by the person) and its id set as an HttpOnly cookie.
 *
 * A session is bound to the person: every request re-reads it from storage (so a revoked one ends at
 * once, on every instance) and re-checks the person against the current `admin` lists. The CSRF token of
 * every form is an HMAC of the session id (session-bound, never stored).
 */
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import { checkPolicy } from '../kernel/policy.js';
import type { UpstreamChecks, UpstreamIdp } from '../upstream/index.js';
import type { UpstreamProfile } from '../upstream/profile.js';

/** src/authz/interactions.ts ATTEMPT_PREFIX: the upstream callback finds every attempt here. */
const ATTEMPT_PREFIX = 'gw:upstream-state:';
const SESSION_PREFIX = 'gw:admin-session:';
const ATTEMPT_TTL_S = 600;
export const SESSION_COOKIE = 'gw_admin';
const BINDING_COOKIE = 'gw_admin_login';

export interface AdminSession {
  user: string;
  name: string;
  email?: string | undefined;
  groups: string[];
  createdAt: number;
  expiresAt: number;
}

export interface SignedIn {
  /** The session id from the cookie (never stored in clear, never logged). */
  id: string;
  session: AdminSession;
  csrf: string;
}

interface ConsoleAttempt {
  uid: 'admin';
  checks: UpstreamChecks;
  resume: '/admin/callback';
  /** sha256 of the binding cookie's value. */
  binding: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

export class ConsoleAccess {
  readonly #csrfKey: Buffer;
  readonly #callbackUrl: string;
  readonly #secure: boolean;

  constructor(
    private readonly ctx: GatewayContext,
    readonly upstream: UpstreamIdp,
  ) {
    this.#csrfKey = Buffer.from(hkdfSync('sha256', ctx.config.session_secret, 'mcp-oauth-gateway', 'admin console csrf', 32));
    this.#callbackUrl = `${ctx.issuer}/oauth/callback`;
    this.#secure = ctx.issuer.startsWith('https:');
  }

  /** Whether this person may use the console now (`admin.users`: ids or verified emails; `admin.groups`). */
  allowed(profile: Pick<UpstreamProfile, 'id' | 'email' | 'emailVerified' | 'groups'>): boolean {
    const admin = this.ctx.config.admin;
    // An empty list must never mean "everyone" (checkPolicy's rule for a policy without rules).
    if (!admin || (admin.users.length === 0 && admin.groups.length === 0)) return false;
    const policy = { users: admin.users, emails: admin.users.filter((u) => u.includes('@')), groups: admin.groups };
    return checkPolicy(policy, profile).allowed;
  }

  csrfFor(sessionId: string): string {
    return createHmac('sha256', this.#csrfKey).update(sessionId).digest('base64url');
  }

  csrfValid(signedIn: SignedIn, token: unknown): boolean {
    if (typeof token !== 'string' || token.length === 0 || token.length > 128) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(signedIn.csrf);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Step 1: the provider's authorization URL, with the attempt stored and the binding cookie set. */
  async start(reply: FastifyReply): Promise<URL> {
    const { url, checks } = await this.upstream.start(this.#callbackUrl);
    const binding = randomBytes(32).toString('base64url');
    const attempt: ConsoleAttempt = { uid: 'admin', checks, resume: '/admin/callback', binding: sha256(binding) };
    await this.ctx.store.set(ATTEMPT_PREFIX + checks.state, attempt, { ttlSeconds: ATTEMPT_TTL_S });
    reply.header('set-cookie', this.#cookie(BINDING_COOKIE, binding, ATTEMPT_TTL_S));
    return url;
  }

  /**
   * Step 3: the verified profile, or why not. `mismatch`: no such attempt, a replay, or another browser
   * (the binding cookie differs).
   */
  async finish(req: FastifyRequest): Promise<{ profile: UpstreamProfile } | { failure: 'mismatch' }> {
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
    const state = new URLSearchParams(query).get('state');
    const attempt =
      state && /^[\x21-\x7e]{1,256}$/.test(state) ? await this.ctx.store.take<ConsoleAttempt>(ATTEMPT_PREFIX + state) : undefined;
    const binding = cookieValue(req, BINDING_COOKIE);
    if (!attempt || attempt.uid !== 'admin' || !binding || !same(sha256(binding), attempt.binding)) return { failure: 'mismatch' };
    return { profile: await this.upstream.finish(new URL(this.#callbackUrl + query), attempt.checks) };
  }

  /** A new session for an admitted person; sets the session cookie (and clears the binding one). */
  async open(reply: FastifyReply, profile: UpstreamProfile): Promise<void> {
    const id = randomBytes(32).toString('base64url');
    const ttl = this.ctx.config.admin?.session_ttl ?? 900;
    const now = Date.now();
    const session: AdminSession = {
      user: profile.id,
      name: profile.name ?? profile.email ?? profile.id,
      email: profile.emailVerified ? profile.email : undefined,
      groups: profile.groups,
      createdAt: now,
      expiresAt: now + ttl * 1000,
    };
    await this.ctx.store.set(SESSION_PREFIX + sha256(id), session, { ttlSeconds: ttl, indexes: [`admin-user:${profile.id}`] });
    reply.header('set-cookie', [this.#cookie(SESSION_COOKIE, id, ttl), this.#cookie(BINDING_COOKIE, '', 0)]);
  }

  /** The session of this request, if any and still valid for a person still listed in `admin`. */
  async current(req: FastifyRequest): Promise<SignedIn | undefined> {
    const id = cookieValue(req, SESSION_COOKIE);
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const rec = await this.ctx.store.get<AdminSession>(SESSION_PREFIX + sha256(id));
    const session = rec?.value;
    if (!session || session.expiresAt <= Date.now()) return undefined;
    if (!this.allowed({ id: session.user, email: session.email, emailVerified: session.email !== undefined, groups: session.groups }))
      return undefined;
    return { id, session, csrf: this.csrfFor(id) };
  }

  async close(reply: FastifyReply, signedIn: SignedIn): Promise<void> {
    await this.ctx.store.delete(SESSION_PREFIX + sha256(signedIn.id));
    reply.header('set-cookie', this.#cookie(SESSION_COOKIE, '', 0));
  }

  /** Ends every console session of one person (revoking a user, or their own sessions). Resolves to how many. */
  endSessionsOf(user: string): Promise<number> {
    return this.ctx.store.deleteByIndex(`admin-user:${user}`);
  }

  /** Open console sessions (for the People page), without their ids. */
  async sessions(): Promise<AdminSession[]> {
    return (await this.ctx.store.list<AdminSession>(SESSION_PREFIX, { limit: 10_000 }))
      .map((r) => r.value)
      .filter((s) => s.expiresAt > Date.now());
  }

  /** SameSite=Lax: sent on the top-level GET that arrives from the provider's redirect, never on cross-site POSTs. */
  #cookie(name: string, value: string, maxAge: number): string {
    return `${name}=${value}; Path=/admin; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${this.#secure ? '; Secure' : ''}`;
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
