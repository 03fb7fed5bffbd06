/**
 * Rate limits (docs/operations-multi-instance.md, "Rate limits"): fixed one-minute windows counted by @fastify/rate-limit's own
 * stores: its Redis store (one Lua INCR + PEXPIRE per hit, shared by every instance on the same Redis)
 * when storage is Redis, its local LRU store otherwise.
 *
 * | bucket         | what is counted                                   | key                  | limit (per minute)       |
 * |----------------|---------------------------------------------------|----------------------|--------------------------|
 * | `register`     | every non-OPTIONS request to /oauth/register[/…]  | client IP            | `register_per_minute`    |
 * | `token`        | POST /oauth/token                                 | client IP            | `token_per_minute`       |
 * | `token_client` | POST /oauth/token with HTTP Basic client auth     | client_id            | `token_per_minute`       |
 * | `authorize`    | GET/POST /oauth/authorize (not the resume URL)    | client IP            | `authorize_per_minute`   |
 * | `failed_auth`  | rejected bearer tokens at the proxy               | client IP            | `failed_auth_per_minute` |
 * | `failed_token` | rejected bearer tokens at the proxy               | token fingerprint    | `failed_auth_per_token_per_minute` |
 *
 * Each OAuth route declares its bucket where it is registered (src/authz/index.ts: `ctx.limits.guard`), as
 * the first of its route-level onRequest hooks, before oidc-provider is handed the request. The token
 * endpoint's body is not parsed at that point (and must not be consumed: oidc-provider reads the stream),
 * so the per-client bucket only sees clients that authenticate with HTTP Basic; public clients
 * (client_id in the form body) are limited per IP.
 *
 * Failed bearer authentication at the proxy (P5 in docs/security.md): counted where the proxy rejects a token,
 * per client IP and per token fingerprint (a client looping on one stale token). A request that carries a
 * VALID token is never refused by these buckets, and requests without a token (the MCP discovery 401) and
 * public services are never counted: only a request whose token was just rejected gets 429 instead of
 * 401 while its IP or its token is over the limit. Token guessing is hopeless against ES256 JWTs, so what
 * the attacker gains is bounded, and one broken client behind a shared address locks out nobody else.
 * The check is a synchronous lookup in a local map (no I/O on the proxy's path); counts are shared through
 * Redis, and the instance whose count reaches the limit publishes the block on the `ratelimit-blocks`
 * channel so that every instance applies it within milliseconds.
 *
 * Over the limit: `429`, `Retry-After: <seconds until the window ends>`, `Cache-Control: no-store` and
 * `{"error":"too_many_requests","error_description":"…"}` (OAuth-shaped; RFC 6749 has no code for it,
 * `temporarily_unavailable` is kept for outages). If the counter store fails (Redis down) the request is
 * not limited (the storage guard in availability.ts answers 503 for the OAuth routes anyway).
 *
 * IPs: `request.ip` (honours `trust_proxy`), IPv6 grouped by /56 as @fastify/rate-limit does.
 */
import { createRequire } from 'node:module';
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, onRequestHookHandler } from 'fastify';
import type { GatewayConfig } from '../config/schema.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../storage/store.js';
import { sendError } from './errors.js';

export type Bucket = 'register' | 'token' | 'token_client' | 'authorize' | 'failed_auth' | 'failed_token';
/** The buckets a route declares (`guard`). */
export type RouteBucket = 'register' | 'token' | 'authorize';

const WINDOW_MS = 60_000;
const BLOCK_CHANNEL = 'ratelimit-blocks';
/** Upper bound of locally remembered blocked IPs (oldest dropped first). */
const MAX_BLOCKED = 100_000;

/** The callback contract shared by @fastify/rate-limit's LocalStore and RedisStore. */
interface CounterStore {
  incr(key: string, cb: (err: Error | null, res: { current: number; ttl: number } | null) => void, timeWindow: number, max: number): void;
}
type CounterStoreCtor = new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  backing?: unknown,
  nameSpace?: string,
) => CounterStore;

// The stores are CommonJS files of the package without type declarations of their own.
const require = createRequire(import.meta.url);
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as CounterStoreCtor;
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as CounterStoreCtor;

export interface HitResult {
  allowed: boolean;
  /** Seconds until the window ends (≥ 1 when not allowed). */
  retryAfter: number;
}

export interface RateLimitsOptions {
  /** An ioredis client (standalone or Cluster): counters are shared through it. */
  redis?: unknown;
  /** Redis key prefix of the counters (default `gw:ratelimit:`). */
  keyPrefix?: string;
  /** Store for the cross-instance block messages (its optional publish/subscribe). */
  pubsub?: Pick<Store, 'publish' | 'subscribe'>;
  metrics?: Metrics;
  onError?: (operation: string, err: unknown) => void;
}

export class RateLimits {
  readonly enabled: boolean;
  /** `redis` when counters are shared, `local` otherwise. */
  readonly kind: 'redis' | 'local';
  readonly #limits: Record<Bucket, number>;
  readonly #stores: Record<Bucket, CounterStore>;
  readonly #opts: RateLimitsOptions;
  /** `ip:<ip>` / `tok:<fingerprint>` → blocked until (epoch ms), for rejected bearer tokens. */
  readonly #blocked = new Map<string, number>();
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(config: GatewayConfig['rate_limits'], options: RateLimitsOptions = {}) {
    this.enabled = config.enabled;
    this.#opts = options;
    this.kind = options.redis ? 'redis' : 'local';
    this.#limits = {
      register: config.register_per_minute,
      token: config.token_per_minute,
      token_client: config.token_per_minute,
      authorize: config.authorize_per_minute,
      failed_auth: config.failed_auth_per_minute,
      failed_token: config.failed_auth_per_token_per_minute,
    };
    const prefix = options.keyPrefix ?? 'gw:ratelimit:';
    const make = (bucket: Bucket): CounterStore =>
      options.redis ? new RedisStore(false, false, options.redis, `${prefix}${bucket}:`) : new LocalStore(false, false, 10_000);
    this.#stores = {
      register: make('register'),
      token: make('token'),
      token_client: make('token_client'),
      authorize: make('authorize'),
      failed_auth: make('failed_auth'),
      failed_token: make('failed_token'),
    };
  }

  /** Subscribes to block messages of other instances (when the store has pub/sub). */
  async start(): Promise<void> {
    const sub = this.#opts.pubsub?.subscribe;
    if (!this.enabled || !sub) return;
    try {
      this.#unsubscribe = await sub.call(this.#opts.pubsub, BLOCK_CHANNEL, (m) => this.#onBlockMessage(m));
    } catch (err) {
      this.#opts.onError?.('subscribe', err);
    }
  }

  async stop(): Promise<void> {
    const u = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (u) await u().catch(() => undefined);
  }

  /**
   * The onRequest hook a route declares to be limited by `bucket` (route-level hooks run after the
   * global availability guard and before oidc-provider is handed the request). `token` also counts per
   * client_id for HTTP Basic clients (the form body is not parsed here and must not be consumed).
   * Preflights are never counted. With `rate_limits.enabled: false` the hook does nothing.
   */
  guard(bucket: RouteBucket): onRequestHookHandler {
    return (request, reply, done) => {
      const method = request.method;
      const counted =
        bucket === 'token' ? method === 'POST' : bucket === 'authorize' ? method === 'GET' || method === 'POST' : method !== 'OPTIONS';
      if (!this.enabled || !counted) return done();
      const ip = normalizeIP(request.ip);
      const checks = [this.hit(bucket, ip)];
      if (bucket === 'token') {
        const clientId = basicClientId(request.headers.authorization);
        if (clientId !== undefined) checks.push(this.hit('token_client', clientId));
      }
      Promise.all(checks).then(
        (results) => {
          const denied = results.filter((r) => !r.allowed);
          if (denied.length === 0) return done();
          sendTooManyRequests(reply, Math.max(...denied.map((r) => r.retryAfter)));
        },
        () => done(),
      );
    };
  }

  /** Counts one request in `bucket` for `key`. Fails open (allowed) if the counter store fails. */
  hit(bucket: Bucket, key: string): Promise<HitResult> {
    const max = this.#limits[bucket];
    return new Promise((resolve) => {
      this.#stores[bucket].incr(
        key,
        (err, res) => {
          if (err || !res) {
            this.#opts.onError?.('ratelimit', err);
            return resolve({ allowed: true, retryAfter: 0 });
          }
          const retryAfter = Math.max(1, Math.ceil(res.ttl / 1000));
          if (res.current <= max) return resolve({ allowed: true, retryAfter });
          this.#opts.metrics?.rateLimited.inc({ bucket });
          resolve({ allowed: false, retryAfter });
        },
        WINDOW_MS,
        max,
      );
    });
  }

  /**
   * Synchronous: seconds a request whose bearer token was just rejected must wait (its IP or its token
   * is over the failed-authentication limit), 0 when it may get its 401. `ip` is `request.ip` (normalised
   * here); `fingerprint` comes from `tokenFingerprint`.
   */
  blockedFor(ip: string, fingerprint: string): number {
    if (!this.enabled || this.#blocked.size === 0) return 0;
    return Math.max(this.#left(`ip:${normalizeIP(ip)}`), this.#left(`tok:${fingerprint}`));
  }

  #left(key: string): number {
    const until = this.#blocked.get(key);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left <= 0) {
      this.#blocked.delete(key);
      return 0;
    }
    return Math.ceil(left / 1000);
  }

  /**
   * Records one rejected bearer token from `ip`; resolves to whether the IP or the token is now blocked.
   * Never rejects.
   */
  async failedAuth(ip: string, fingerprint: string): Promise<boolean> {
    if (!this.enabled) return false;
    const [byIp, byToken] = await Promise.all([
      this.#countFailure('failed_auth', `ip:${normalizeIP(ip)}`),
      this.#countFailure('failed_token', `tok:${fingerprint}`),
    ]);
    return byIp || byToken;
  }

  async #countFailure(bucket: 'failed_auth' | 'failed_token', key: string): Promise<boolean> {
    const max = this.#limits[bucket];
    const res = await new Promise<{ current: number; ttl: number } | undefined>((resolve) => {
      this.#stores[bucket].incr(
        key,
        (err, r) => {
          if (err || !r) this.#opts.onError?.('ratelimit', err);
          resolve(r ?? undefined);
        },
        WINDOW_MS,
        max,
      );
    });
    if (!res || res.current < max) return false;
    const until = Date.now() + Math.max(1000, res.ttl);
    if (!this.#blocked.has(key)) this.#opts.metrics?.rateLimited.inc({ bucket });
    this.#block(key, until);
    const publish = this.#opts.pubsub?.publish;
    if (publish && res.current === max) {
      // Only the request that reached the limit tells the others (not every later failure).
      publish
        .call(this.#opts.pubsub, BLOCK_CHANNEL, JSON.stringify({ key, until }))
        .catch((err: unknown) => this.#opts.onError?.('publish', err));
    }
    return true;
  }

  #block(key: string, until: number): void {
    if (this.#blocked.size >= MAX_BLOCKED) {
      const now = Date.now();
      for (const [k, u] of this.#blocked) if (u <= now) this.#blocked.delete(k);
      while (this.#blocked.size >= MAX_BLOCKED) this.#blocked.delete(this.#blocked.keys().next().value as string);
    }
    const known = this.#blocked.get(key);
    if (known === undefined || known < until) this.#blocked.set(key, until);
  }

  /** Messages from other instances; anyone with Redis access could publish, so validate. */
  #onBlockMessage(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    const { key, until } = (parsed ?? {}) as { key?: unknown; until?: unknown };
    if (typeof key !== 'string' || !/^(ip|tok):[^\s]{1,64}$/.test(key) || typeof until !== 'number' || !Number.isFinite(until)) return;
    const now = Date.now();
    const bounded = Math.min(until, now + WINDOW_MS);
    if (bounded > now) this.#block(key, bounded);
  }
}

/**
 * P5: behind a reverse proxy without `trust_proxy` (a common mistake), every person counts as the
 * proxy's address for rate limits and logs. The first request that arrives with `X-Forwarded-For` while
 * nothing is trusted says so once; the hook then removes its own cost (a flag check).
 */
function warnUntrustedForwarding(app: FastifyInstance, trustProxy: unknown): void {
  if (trustProxy !== false && trustProxy !== undefined) return;
  let warned = false;
  app.addHook('onRequest', (request, _reply, done) => {
    if (!warned && request.headers['x-forwarded-for'] !== undefined) {
      warned = true;
      app.log.warn(
        { remote_address: request.socket.remoteAddress },
        'requests arrive with X-Forwarded-For but trust_proxy is off: every client behind that proxy shares its address for rate limits and logs; set trust_proxy (a hop count or the proxy addresses)',
      );
    }
    done();
  });
}

/** client_id from `Authorization: Basic` (RFC 6749 §2.3.1: form-encoded id before the colon). */
export function basicClientId(header: string | undefined): string | undefined {
  if (!header || header.length > 4096 || !/^basic\s/i.test(header)) return undefined;
  let decoded: string;
  try {
    decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  let id: string;
  try {
    id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
  // eslint-disable-next-line no-control-regex
  return id.length > 0 && id.length <= 256 && !/[\u0000-\u001f\u007f]/.test(id) ? id : undefined;
}

/** The registry's GW_ERR_RATE_LIMITED; its Retry-After is computed (`'computed'` in src/errors.ts): the wait until the window frees. */
export function sendTooManyRequests(reply: FastifyReply, retryAfter: number): FastifyReply {
  return sendError(reply.header('retry-after', String(retryAfter)), 'GW_ERR_RATE_LIMITED', `Too many requests, retry in ${retryAfter} s`);
}

/**
 * The start-up side of the rate limits: the `X-Forwarded-For` warning (a global hook). The limits
 * themselves are declared with the routes they protect (`RateLimits.guard`, src/authz/index.ts).
 */
export function registerRateLimits(app: FastifyInstance, options: { trustProxy: unknown }): void {
  warnUntrustedForwarding(app, options.trustProxy);
}
