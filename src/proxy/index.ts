/**
 * The MCP reverse proxy on `/{service-id}/mcp` and below (design in docs/proxy.md).
 *
 * Each request runs a short pipeline of named steps:
 *   resolveService → checkOrigin (→ preflight) → checkMethod → authenticate → checkAccess
 *   → checkProtocolVersion (→ a local stdio service: handed to src/stdio) → checkSession → checkLimits
 *   → buildUpstreamHeaders → forward → RelayHandler
 * Everything per service is precomputed (service-state.ts). The route is hijacked: the proxy writes the
 * raw response itself, so fastify never buffers, parses or serialises MCP traffic.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import type { GatewayContext } from '../context.js';
import { AccessTokenVerifier, parseBearer, tokenFingerprint, type TokenEntry, type VerifyResult } from './access-token.js';
import { BODY_TOO_LARGE, forward, type ForwardInput, type RelayCheck } from './forward.js';
import { buildUpstreamHeaders } from './headers.js';
import { AssertionCache } from './identity.js';
import { OriginPolicy } from '../kernel/origin.js';
import { upstreamTarget } from './path.js';
import { challenged, proxyError, sendPreflight, sendProxyError, type ProxyError } from './respond.js';
import { buildServiceStates, countStatus, type ServiceState } from './service-state.js';
import { SessionBindings, type BindingCheck } from './sessions.js';
import { checkToolCalls, replayRewriter } from './tool-calls.js';
import type { VerifiedUser } from '../kernel/claims.js';

/**
 * A local (stdio) service's request, handed over once the caller is authenticated and admitted (origin,
 * method, token, scopes, policy, pinned versions): src/stdio answers it (docs/stdio.md).
 */
export interface LocalExchange {
  serviceId: string;
  req: IncomingMessage;
  res: ServerResponse;
  /** The verified user (from the token only); undefined on a public service. */
  user: VerifiedUser | undefined;
  cors: Record<string, string> | undefined;
  maxRequestBytes: number;
  timeoutMs: number;
  /** The body, when the proxy already read it (a service with tool rules: the calls were decided on it). */
  body?: Buffer | undefined;
  /** upstream_auth: the user's upstream token (bare), for the process environment (MCP_UPSTREAM_TOKEN). */
  upstreamToken?: string | undefined;
  /** Tool rules: an answer to `method` as the user may see it (lists filtered; src/proxy/tool-policy.ts). */
  filterAnswer?: ((method: string, answer: Record<string, unknown>) => Record<string, unknown>) | undefined;
}

/** The stdio bridge as the proxy sees it (implemented by src/stdio, wired by src/http). */
export interface LocalServices {
  handle(exchange: LocalExchange): void;
  close(): Promise<void>;
}

/** Methods proxied (MCP Streamable HTTP: POST, GET, DELETE; and OPTIONS for CORS); anything else is 405. */
const PROXIED_METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'DELETE', 'OPTIONS']);

/** 429 answers by their wait in seconds (at most one rate-limit window: a few dozen entries). */
const rateLimitedFor = new Map<number, ProxyError>();

/**
 * The proxy's answers, built once from the registry (src/errors.ts): refusing a request allocates nothing,
 * except the protocol-version refusal, which echoes the requested version.
 */
const E = {
  unknownService: proxyError('GW_ERR_BACKEND_UNKNOWN'),
  origin: proxyError('GW_ERR_ORIGIN_FORBIDDEN'),
  method: proxyError('GW_ERR_METHOD_NOT_ALLOWED'),
  overloaded: proxyError('GW_ERR_OVERLOADED'),
  revocationUnavailable: proxyError('GW_ERR_STORE_UNAVAILABLE', {
    description: 'Token status cannot be checked right now, try again later',
  }),
  storeUnavailable: proxyError('GW_ERR_STORE_UNAVAILABLE'),
  sessionNotFound: proxyError('GW_ERR_SESSION_UNKNOWN'),
  internal: proxyError('GW_ERR_INTERNAL'),
  policyDenied: proxyError('GW_ERR_POLICY_DENIED'),
  tokenMissing: challenged('GW_ERR_TOKEN_MISSING'),
  tokenInvalid: challenged('GW_ERR_TOKEN_INVALID'),
  tokenExpired: challenged('GW_ERR_TOKEN_INVALID', 'The access token expired'),
  insufficientScope: challenged('GW_ERR_INSUFFICIENT_SCOPE'),
  rateLimited: (wait: number) => {
    let err = rateLimitedFor.get(wait);
    if (err === undefined) {
      // Waits come from the window (or a peer's block message): bounded, but never let the cache grow.
      if (rateLimitedFor.size >= 128) rateLimitedFor.clear();
      err = proxyError('GW_ERR_RATE_LIMITED', {
        description: `Too many rejected access tokens, retry in ${wait} s`,
        headers: { 'retry-after': String(wait) },
      });
      rateLimitedFor.set(wait, err);
    }
    return err;
  },
  protocolVersion: (requested: string, supported: readonly string[] | undefined) =>
    proxyError('GW_ERR_PROTOCOL_VERSION', {
      description: `Unsupported protocol version: ${requested}`,
      data: { supported, requested },
      alwaysRpc: true,
    }),
};

/**
 * What the proxy reads of a request: a FastifyRequest satisfies it, and so does the object the HTTP
 * layer's fast path builds straight from node:http (src/http/proxy-fast-path.ts), which skips fastify's
 * routing and hooks for `/{id}/mcp`. Use only these fields here: anything else would be missing on the fast path.
 */
export interface ProxyRequest {
  readonly raw: IncomingMessage;
  readonly headers: IncomingMessage['headers'];
  readonly method: string;
  readonly params: { service: string };
  /** The client address (the trusted-proxy rule applied). */
  readonly ip: string;
  /** The X-Forwarded-For chain with the socket address (trust_proxy on), else undefined. */
  readonly ips?: string[] | undefined;
}

interface Exchange {
  state: ServiceState;
  res: ServerResponse;
  jsonRpc: boolean;
  cors: Record<string, string> | undefined;
}

export class McpProxy implements RelayCheck {
  readonly states: Map<string, ServiceState>;
  readonly #pools: Array<{ destroy(): Promise<void> }>;
  readonly #origins: OriginPolicy;
  readonly #tokens: AccessTokenVerifier;
  readonly #assertions: AssertionCache;
  readonly #sessions: SessionBindings;
  readonly #failClosed: boolean;
  readonly #trustProxy: boolean;
  readonly #forwardedProto: string;
  readonly #forwardedHost: string;

  readonly #local: LocalServices | undefined;

  constructor(
    private readonly ctx: GatewayContext,
    local?: LocalServices,
  ) {
    this.#local = local;
    const { states, pools } = buildServiceStates(ctx);
    this.states = states;
    this.#pools = pools;
    this.#origins = new OriginPolicy(ctx.config.cors, ctx.issuer);
    this.#tokens = new AccessTokenVerifier(ctx);
    this.#assertions = new AssertionCache(ctx);
    this.#sessions = new SessionBindings(ctx.store, {}, (err, op) =>
      ctx.log.warn({ op, err: { message: (err as Error)?.message } }, 'proxy: session binding storage error'),
    );
    this.#failClosed = (ctx.config.storage.redis?.revocation_fail_mode ?? 'closed') === 'closed';
    const tp = ctx.config.trust_proxy;
    this.#trustProxy = tp !== false && !(Array.isArray(tp) && tp.length === 0);
    const issuer = new URL(ctx.issuer);
    this.#forwardedProto = issuer.protocol.slice(0, -1);
    this.#forwardedHost = issuer.host;
  }

  /** Runs after the server stopped (in-flight requests finished or were cut at the grace deadline). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#pools.map((p) => p.destroy()), this.#local?.close()]);
  }

  /**
   * Entry point for a proxied request (the fastify route and the fast path). Never rejects: one promise per
   * request, and an unexpected failure becomes a logged 500, never an unhandled rejection.
   */
  async handle(request: ProxyRequest, res: ServerResponse): Promise<void> {
    try {
      const started = performance.now();
      const headers = request.headers;
      const method = request.method;
      // JSON-RPC detection without touching the body: a POST with a JSON content type.
      const ct = headers['content-type'];
      const jsonRpc = method === 'POST' && ct !== undefined && ct.includes('json');

      // resolveService: backends resolve only from configured ids (allowlists: docs/principles.md).
      const state = this.states.get(request.params.service);
      if (state === undefined) return sendProxyError(res, jsonRpc, E.unknownService, undefined);

      // checkOrigin (MCP transports: MUST validate Origin; invalid → 403).
      const origin = headers.origin;
      const verdict = this.#origins.check(origin);
      if (verdict === 'forbidden') return this.#fail({ state, res, jsonRpc, cors: undefined }, E.origin);
      const cors = verdict === 'allowed' ? this.#origins.responseHeaders(origin!) : undefined;
      const ex: Exchange = { state, res, jsonRpc, cors };

      // CORS preflight (no credentials are sent on a preflight, so it is answered before authentication).
      if (method === 'OPTIONS' && cors !== undefined && headers['access-control-request-method'] !== undefined) {
        countStatus(this.ctx, state, 204);
        return sendPreflight(res, this.#origins.preflightHeaders(origin!, headers['access-control-request-headers']));
      }
      if (!PROXIED_METHODS.has(method)) return this.#fail(ex, E.method);

      const path = upstreamTarget(state.target, request.raw.url ?? '/');
      if (typeof path !== 'string') return this.#fail(ex, path);

      let entry: TokenEntry | undefined;
      if (state.service.authRequired) {
        const authenticated = this.#authenticate(ex, headers.authorization, request);
        entry = authenticated instanceof Promise ? await authenticated : authenticated;
        if (entry === undefined) return;
        if (!this.#checkAccess(ex, entry)) return;
      }

      if (!this.#checkProtocolVersion(ex, single(headers['mcp-protocol-version']))) return;

      // A local (stdio) service: its process bridge answers from here on (src/stdio, docs/stdio.md), after the
      // tool rules decided the calls in the body, exactly as for an HTTP backend.
      if (state.service.stdio !== undefined && this.#local !== undefined) {
        const { maxRequestBytes, timeoutMs, toolPolicy } = state;
        let body: Buffer | undefined;
        if (toolPolicy !== undefined && method === 'POST') {
          const cl = headers['content-length'];
          if (cl !== undefined && Number(cl) > maxRequestBytes) return this.#fail(ex, BODY_TOO_LARGE);
          const decided = await this.#checkToolCalls(ex, toolPolicy, request, entry);
          if (decided === undefined) return;
          body = decided.body;
        }
        // upstream_auth: the user's upstream token, obtained (refreshed, exchanged) as for an HTTP backend.
        let upstreamToken: string | undefined;
        if (state.credential !== undefined && entry !== undefined) {
          const credential = await this.#credential(ex, state.credential, entry.user.id);
          if (credential === undefined) return;
          upstreamToken = credential.value;
        }
        const user = entry?.user;
        const filterAnswer = toolPolicy && ((m: string, a: Record<string, unknown>) => toolPolicy.filterAnswer(m, a, user));
        return this.#local.handle({
          serviceId: state.id,
          req: request.raw,
          res,
          user,
          cors,
          maxRequestBytes,
          timeoutMs,
          body,
          filterAnswer,
          upstreamToken,
        });
      }

      const sessionId = single(headers['mcp-session-id']);
      if (sessionId !== undefined && (entry !== undefined || state.checkAnonymousSessions)) {
        const caller = entry?.user.id;
        // A binding seen in the last seconds is answered from the cache, without a promise.
        const known = this.#sessions.cached(state.sessionScope, sessionId, caller);
        if (!(known === undefined ? await this.#checkSession(ex, sessionId, caller) : this.#sessionAdmitted(ex, known))) return;
      }

      // checkLimits: declared size up front (the stream itself is counted when chunked), then concurrency.
      const cl = headers['content-length'];
      const chunked = headers['transfer-encoding'] !== undefined;
      if (cl !== undefined && Number(cl) > state.maxRequestBytes) return this.#fail(ex, BODY_TOO_LARGE);

      // checkToolCalls: only services with tools / prompts / resources rules read the body (docs/proxy.md).
      let decided: { body?: Buffer | undefined; rewrite: ForwardInput['rewrite'] } | undefined;
      if (state.toolPolicy !== undefined && method === 'POST') {
        decided = await this.#checkToolCalls(ex, state.toolPolicy, request, entry);
        if (decided === undefined) return;
      } else if (state.toolPolicy !== undefined && method === 'GET' && headers['last-event-id'] !== undefined) {
        decided = { body: undefined, rewrite: replayRewriter(state.toolPolicy, entry) };
      }

      let assertion: { header: string; value: string } | undefined;
      if (entry?.assertionClaims && state.signedIdentity) {
        const { key, claims } = entry.assertionClaims;
        const a = this.#assertions.get(key, entry.user.id, claims, state.service.canonicalUri, state.signedIdentity.ttl);
        assertion = { header: state.signedIdentity.header, value: typeof a === 'string' ? a : await a };
      }

      // upstream_auth: the user's upstream token for this backend (never the client's own token).
      let credential: { header: string; value: string } | undefined;
      if (state.credential !== undefined && entry !== undefined) {
        credential = await this.#credential(ex, state.credential, entry.user.id);
        if (credential === undefined) return;
      }

      const upstreamHeaders = buildUpstreamHeaders({
        incoming: headers,
        stripped: state.strippedHeaders,
        identity: entry?.identity,
        assertion,
        credential,
        forwardedFor: this.#forwardedFor(request),
        forwardedProto: this.#forwardedProto,
        forwardedHost: this.#forwardedHost,
      });
      // A response the gateway may rewrite (list filtering) must come uncompressed.
      if (decided?.rewrite !== undefined) delete upstreamHeaders['accept-encoding'];

      if (res.destroyed) return;
      // checkLimits (concurrency) right before counting in: nothing async happens in between.
      if (state.inFlight >= state.maxConcurrent) return this.#fail(ex, E.overloaded);
      state.inFlight++;
      const userId = entry?.user.id;
      forward(this.ctx, {
        state,
        req: request.raw,
        res,
        method: method as Dispatcher.HttpMethod,
        path,
        headers: upstreamHeaders,
        hasBody: chunked || (cl !== undefined && cl !== '0'),
        contentLength: chunked || cl === undefined ? 0 : Number(cl),
        chunked,
        started,
        cors,
        jsonRpc,
        userId,
        sessionId,
        relayCheck: userId === undefined ? undefined : this,
        body: decided?.body,
        rewrite: decided?.rewrite,
      });
    } catch (err) {
      this.ctx.log.error(
        { service: request.params.service, err: { message: (err as Error)?.message, code: (err as { code?: unknown })?.code } },
        'proxy: unexpected failure',
      );
      sendProxyError(res, false, E.internal, undefined);
    }
  }

  /**
   * authenticate: Bearer → verified token entry, or a 401/503 already written. Synchronous for a token
   * seen before (the common case: no promise, no parsing); a promise only when the signature is checked.
   */
  #authenticate(
    ex: Exchange,
    authorization: string | undefined,
    request: ProxyRequest,
  ): TokenEntry | undefined | Promise<TokenEntry | undefined> {
    const known = authorization === undefined ? undefined : this.#tokens.lookup(authorization, ex.state);
    if (known !== undefined) return this.#admit(ex, known, authorization!, request);
    const { state } = ex;
    const parsed = parseBearer(authorization);
    if (parsed.kind === 'absent') {
      // RFC 6750 §3.1 / RFC 9728 §5.1: no credentials → challenge with resource_metadata and no error code.
      this.ctx.metrics.authFailures.inc({ service: state.id, reason: 'missing' });
      this.#fail(ex, E.tokenMissing(state.challenges.missing));
      return undefined;
    }
    if (parsed.kind === 'malformed') return this.#invalidToken(ex, 'malformed', request, authorization ?? '');
    return this.#tokens.verify(parsed.token, authorization!, state).then((result) => this.#admit(ex, result, authorization!, request));
  }

  /** The revocation check (every request, cached or not) on a verification result. */
  #admit(ex: Exchange, result: VerifyResult, authorization: string, request: ProxyRequest): TokenEntry | undefined {
    if (!result.ok) return this.#invalidToken(ex, result.reason, request, bearerToken(authorization));
    const entry = result.entry;
    // Revocation: a synchronous in-memory lookup fed by storage polling (src/kernel/revocation.ts).
    if (!this.ctx.revocations.healthy && this.#failClosed) {
      this.ctx.metrics.authFailures.inc({ service: ex.state.id, reason: 'revocation_unknown' });
      this.#fail(ex, E.revocationUnavailable);
      return undefined;
    }
    if (this.ctx.revocations.isRevoked(entry.user.grantId)) {
      this.#tokens.forget(authorization);
      return this.#invalidToken(ex, 'revoked', request, bearerToken(authorization));
    }
    return entry;
  }

  #invalidToken(ex: Exchange, reason: string, request: ProxyRequest, token: string): undefined {
    this.ctx.metrics.authFailures.inc({ service: ex.state.id, reason });
    // Failed-authentication limits (P5 in docs/security.md), decided here where the token was rejected: only a rejected token
    // is ever refused with 429; a valid one from the same address always gets through.
    const limits = this.ctx.limits;
    if (limits.enabled) {
      const ip = request.ip;
      const fingerprint = tokenFingerprint(token);
      const wait = limits.blockedFor(ip, fingerprint);
      if (wait > 0) {
        this.#fail(ex, E.rateLimited(wait));
        return undefined;
      }
      void limits.failedAuth(ip, fingerprint);
    }
    // RFC 6750 §3.1: invalid_token for expired, revoked, malformed or foreign-audience tokens.
    this.#fail(ex, (reason === 'expired' ? E.tokenExpired : E.tokenInvalid)(ex.state.challenges.invalid));
    return undefined;
  }

  /** checkAccess: required scopes (RFC 6750 §3.1 insufficient_scope, 403) and the access policy (403). */
  #checkAccess(ex: Exchange, entry: TokenEntry): boolean {
    const { state } = ex;
    if (entry.missingScopes.length > 0) {
      this.ctx.metrics.authFailures.inc({ service: state.id, reason: 'insufficient_scope' });
      const scope = state.service.requiredScopes.join(' ');
      this.#fail(ex, E.insufficientScope(state.challenges.scope, { scope }, `The access token lacks required scopes: ${scope}`));
      return false;
    }
    if (entry.policyDenial !== undefined) {
      this.ctx.metrics.policyDenials.inc({ service: state.id, stage: 'request' });
      this.ctx.audit.emit('policy.denied', {
        user: entry.user.id,
        client_id: entry.user.clientId,
        service: state.id,
        reason: 'access policy',
      });
      this.#fail(ex, E.policyDenied);
      return false;
    }
    return true;
  }

  /** checkToolCalls: the calls in a POST body decided by the service's tool rules (tool-calls.ts); undefined: refused. */
  #checkToolCalls(ex: Exchange, policy: NonNullable<ServiceState['toolPolicy']>, request: ProxyRequest, entry: TokenEntry | undefined) {
    const { state, res, jsonRpc, cors } = ex;
    return checkToolCalls(this.ctx, {
      state,
      policy,
      req: request.raw,
      res,
      jsonRpc,
      entry,
      cors,
      fail: (e: ProxyError) => this.#fail(ex, e),
    });
  }

  /** checkProtocolVersion: only when the operator pinned versions (MCP: unsupported → 400, -32022). */
  #checkProtocolVersion(ex: Exchange, version: string | undefined): boolean {
    const pinned = ex.state.pinnedVersions;
    if (pinned === undefined || version === undefined || pinned.has(version)) return true;
    this.#fail(ex, E.protocolVersion(version.slice(0, 64), ex.state.pinnedVersionList));
    return false;
  }

  /**
   * checkSession: a bound legacy session may only be used by its owner, through any route to its backend
   * (404, never reaching the backend). `userId` undefined: an anonymous caller, refused any bound id.
   */
  async #checkSession(ex: Exchange, sessionId: string, userId: string | undefined): Promise<boolean> {
    let verdict;
    try {
      verdict = await this.#sessions.check(ex.state.sessionScope, sessionId, userId);
    } catch (err) {
      this.ctx.log.error({ service: ex.state.id, err: { message: (err as Error)?.message } }, 'proxy: session binding lookup failed');
      this.#fail(ex, E.storeUnavailable);
      return false;
    }
    return this.#sessionAdmitted(ex, verdict);
  }

  #sessionAdmitted(ex: Exchange, verdict: BindingCheck): boolean {
    if (verdict === 'foreign') {
      this.ctx.metrics.authFailures.inc({ service: ex.state.id, reason: 'session_owner' });
      this.#fail(ex, E.sessionNotFound);
      return false;
    }
    return true;
  }

  /** RelayCheck (forward.ts), for an authenticated user's request once the backend's headers are known. */
  beforeRelay(
    f: ForwardInput,
    status: number,
    h: Record<string, string | string[] | undefined>,
  ): Promise<ProxyError | undefined> | undefined {
    const { state, userId } = f;
    if (status === 401 && state.credential?.target.auth.mode === 'oauth') return this.#backendRefused(state, userId!);
    return this.#trackSession(state, userId!, f.method, status, f.sessionId, h['mcp-session-id'], f.path, f.headers);
  }

  /**
   * After the backend answered: bind a new session id to the user, or drop the binding of a deleted one.
   * Resolves to a refusal when the response must not be relayed; never rejects.
   */
  #trackSession(
    state: ServiceState,
    userId: string,
    method: string,
    status: number,
    requested: string | undefined,
    returned: string | string[] | undefined,
    path: string,
    upstreamHeaders: Record<string, string>,
  ): Promise<ProxyError | undefined> | undefined {
    if (typeof returned === 'string' && returned !== requested && status < 400)
      return this.#bindNewSession(state, userId, returned, path, upstreamHeaders);
    if (method === 'DELETE' && requested !== undefined && status >= 200 && status < 300) {
      // The backend ended the session: a binding left behind is harmless (the id is dead, its TTL ends it).
      return this.#sessions.unbind(state.sessionScope, requested).then(
        () => undefined,
        (err: unknown) =>
          void this.ctx.log.warn({ service: state.id, err: { message: (err as Error)?.message } }, 'proxy: session unbind failed'),
      );
    }
    return undefined;
  }

  /**
   * Fail closed: a session whose binding could not be written would be usable by anyone who
   * learns its id (MCP transports, session management), and belong to nobody. The client gets the 503 storage error instead
   * of the backend's response (so it never learns the id and retries the initialization), and the backend
   * is asked to end the session (best effort: MCP Streamable HTTP, a DELETE with the session id).
   */
  async #bindNewSession(
    state: ServiceState,
    userId: string,
    sessionId: string,
    path: string,
    upstreamHeaders: Record<string, string>,
  ): Promise<ProxyError | undefined> {
    try {
      await this.#sessions.bind(state.sessionScope, sessionId, userId);
      return undefined;
    } catch (err) {
      this.ctx.log.error(
        { service: state.id, err: { message: (err as Error)?.message } },
        'proxy: session binding write failed; response refused, backend session closed',
      );
      const { 'content-length': _l, 'content-type': _t, 'transfer-encoding': _e, ...headers } = upstreamHeaders;
      state.pool
        .request({
          origin: state.origin,
          path,
          method: 'DELETE',
          headers: { ...headers, 'mcp-session-id': sessionId },
          headersTimeout: state.timeoutMs,
          bodyTimeout: state.timeoutMs,
        })
        .then((r) => r.body.dump())
        .catch((e: unknown) =>
          this.ctx.log.warn(
            { service: state.id, err: { message: (e as Error)?.message } },
            'proxy: closing the unbound backend session failed',
          ),
        );
      return E.storeUnavailable;
    }
  }

  /** The upstream token (src/credentials), or the refusal already written: connect link, or 502 when the provider failed. */
  async #credential(
    ex: Exchange,
    c: NonNullable<ServiceState['credential']>,
    userId: string,
  ): Promise<{ header: string; value: string } | undefined> {
    let result;
    try {
      result = await this.ctx.credentials!.credentialFor(c.target, userId);
    } catch (err) {
      this.ctx.log.error({ service: ex.state.id, err: { message: (err as Error)?.message } }, 'proxy: upstream token lookup failed');
      this.#fail(ex, E.storeUnavailable);
      return undefined;
    }
    if (result.ok) return { header: c.target.header, value: result.value };
    this.#fail(ex, result.reason === 'not_connected' ? c.connect : c.failed);
    return undefined;
  }

  /**
   * mode: oauth: the backend refused the token its own authorization server issued (revoked there before it
   * expired). Relaying its 401 would make the client re-authorize at the gateway, which cannot help; the
   * token is dropped and the client gets the connect link instead.
   */
  async #backendRefused(state: ServiceState, userId: string): Promise<ProxyError> {
    await this.ctx.credentials!.disconnect(userId, { service: state.id }).catch(() => undefined);
    return state.credential!.connect;
  }

  /** X-Forwarded-For: the socket address, appended to the incoming chain only when that chain is trusted. */
  #forwardedFor(request: ProxyRequest): string {
    const socketIp = request.raw.socket.remoteAddress ?? '';
    if (!this.#trustProxy) return socketIp;
    const ips = request.ips;
    return ips && ips.length > 1 ? [...ips].reverse().join(', ') : socketIp;
  }

  #fail(ex: Exchange, error: ProxyError): void {
    countStatus(this.ctx, ex.state, error.status);
    sendProxyError(ex.res, ex.jsonRpc, error, ex.cors);
  }
}

/** The token of an Authorization header already parsed as Bearer (for the rejected-token fingerprint). */
function bearerToken(authorization: string): string {
  const parsed = parseBearer(authorization);
  return parsed.kind === 'token' ? parsed.token : authorization;
}

/** Node joins repeated unknown fields into one string; the array form only exists for set-cookie. */
function single(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' || v === undefined ? v : v.join(', ');
}

/** Serves one proxied request on a raw response (never rejects): what both the fastify route and the fast path call. */
export type ProxyServe = (request: ProxyRequest, res: ServerResponse) => Promise<void>;

export async function registerProxy(app: FastifyInstance, ctx: GatewayContext, local?: LocalServices): Promise<ProxyServe> {
  const proxy = new McpProxy(ctx, local);
  app.addHook('onClose', async () => proxy.close());
  // `--debug` / `logging.level: debug`: one line per proxied request (method, service, status, duration),
  // never the URL query, headers or body. Decided once: the hot path stays free of it otherwise.
  const debug = ctx.log.level === 'debug' || ctx.log.level === 'trace';
  // `telemetry`: a span per request (src/observability/tracing.ts); off, one undefined check.
  const tracing = ctx.tracing;
  const serve: ProxyServe = (request, res) => {
    if (debug) logProxied(ctx, request.method, request.params.service, res);
    if (tracing !== undefined) tracing.proxy(request.raw, res, request.params.service);
    return proxy.handle(request, res);
  };

  await app.register(async (scope) => {
    // Bodies are streamed raw to the backend, never parsed by fastify (docs/proxy.md, Streaming).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));

    const handler = (request: FastifyRequest<{ Params: { service: string } }>, reply: FastifyReply) => {
      reply.hijack();
      return serve(request, reply.raw);
    };
    // The per-request access log is off on the hot path; errors are logged by the proxy itself. One shared
    // warn-level logger instead of a child per request: creating a pino child redacts its bindings, which
    // showed up in the profile (docs/performance.md).
    const proxyLog = app.log.child({ component: 'proxy' }, { level: 'warn' });
    const opts = { logLevel: 'warn' as const, childLoggerFactory: () => proxyLog };
    scope.all<{ Params: { service: string } }>('/:service/mcp', opts, handler);
    scope.all<{ Params: { service: string } }>('/:service/mcp/*', opts, handler);
  });
  return serve;
}

function logProxied(ctx: GatewayContext, method: string, service: string, res: ServerResponse): void {
  const started = performance.now();
  res.once('close', () => {
    const ms = Math.round((performance.now() - started) * 10) / 10;
    ctx.log.debug(
      { method, service, status: res.statusCode, duration_ms: ms, completed: res.writableFinished },
      `proxied ${method} /${service}/mcp -> ${res.statusCode} in ${ms} ms`,
    );
  });
}
