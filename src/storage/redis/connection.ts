/**
 * Builds the ioredis client for `storage.redis`: standalone (host/port or `url`), Sentinel
 * (`sentinels` + `sentinel_name`) or Cluster (`cluster_nodes`), with TLS, ACL user/password and timeouts.
 *
 * Failure behaviour matters more than the happy path here:
 * - `enableOfflineQueue: false`: while the connection is down, commands reject at once instead of queueing
 *   until Redis returns (the ioredis default would hang callers and then replay stale writes).
 * - `maxRetriesPerRequest: 1` and `commandTimeout` (= `socket_timeout`): a command in flight when the
 *   socket dies fails within about one timeout.
 * - `retryStrategy`: reconnect forever with a capped backoff (100 ms steps up to 2 s), so the store heals
 *   by itself once Redis is back.
 */
import { readFile } from 'node:fs/promises';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { StorageConfig } from '../../config/schema.js';

export type RedisConfig = NonNullable<StorageConfig['redis']>;
export type RedisClient = Redis | Cluster;

const MAX_BACKOFF_MS = 2000;
export const reconnectDelay = (attempt: number): number => Math.min(attempt * 100, MAX_BACKOFF_MS);

/** `host:port` (or the node list) for messages; never includes credentials. */
export function describeTarget(cfg: RedisConfig): string {
  if (cfg.cluster_nodes?.length) return `cluster ${cfg.cluster_nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (cfg.sentinels?.length)
    return `sentinel master "${cfg.sentinel_name ?? ''}" via ${cfg.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (cfg.url) {
    try {
      const u = new URL(cfg.url);
      return `${u.hostname}:${u.port || '6379'}`;
    } catch {
      return '(unparsable url)';
    }
  }
  return `${cfg.host}:${cfg.port}`;
}

async function tlsOptions(cfg: RedisConfig): Promise<RedisOptions['tls']> {
  const useTls = cfg.ssl || (cfg.url?.startsWith('rediss://') ?? false);
  if (!useTls) return undefined;
  const [ca, cert, key] = await Promise.all([
    cfg.ssl_ca_certs ? readFile(cfg.ssl_ca_certs) : undefined,
    cfg.ssl_certfile ? readFile(cfg.ssl_certfile) : undefined,
    cfg.ssl_keyfile ? readFile(cfg.ssl_keyfile) : undefined,
  ]);
  // `optional` behaves like `required` for a server certificate (a server always presents one).
  return { rejectUnauthorized: cfg.ssl_cert_reqs !== 'none', ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
}

/** Connection options shared by every node connection (standalone, sentinel master, cluster nodes). */
async function nodeOptions(cfg: RedisConfig): Promise<RedisOptions> {
  const opts: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: Math.round(cfg.socket_timeout * 1000),
    connectTimeout: Math.round(cfg.socket_connect_timeout * 1000),
    retryStrategy: reconnectDelay,
    // Resend nothing automatically after a reconnect: a write whose reply was lost is reported as failed.
    autoResendUnfulfilledCommands: false,
    db: cfg.db,
    enableAutoPipelining: true,
  };
  if (cfg.username) opts.username = cfg.username;
  if (cfg.password) opts.password = cfg.password;
  const tls = await tlsOptions(cfg);
  if (tls) opts.tls = tls;
  return opts;
}

/** Creates (but does not connect) the client. */
export async function buildClient(cfg: RedisConfig): Promise<RedisClient> {
  const base = await nodeOptions(cfg);
  if (cfg.cluster_nodes?.length) {
    const { retryStrategy: _r, enableOfflineQueue: _o, db: _db, ...redisOptions } = base;
    const clusterOptions: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: Math.round(cfg.socket_connect_timeout * 1000),
      redisOptions,
    };
    return new Cluster(cfg.cluster_nodes, clusterOptions);
  }
  if (cfg.sentinels?.length) {
    return new Redis({
      ...base,
      sentinels: cfg.sentinels,
      name: cfg.sentinel_name ?? 'mymaster',
      sentinelRetryStrategy: reconnectDelay,
      ...(base.tls && { enableTLSForSentinelMode: true }),
    });
  }
  if (cfg.url) {
    // The URL's credentials and db win over the separate keys (documented in the schema).
    return new Redis(cfg.url, base);
  }
  return new Redis({ ...base, host: cfg.host, port: cfg.port });
}

/** Connects, or throws `cannot connect to Redis at <target>: <reason>` after `socket_connect_timeout`. */
export async function connectClient(client: RedisClient, cfg: RedisConfig): Promise<void> {
  const target = describeTarget(cfg);
  const limitMs = Math.round(cfg.socket_connect_timeout * 1000) + 500;
  let timer: NodeJS.Timeout | undefined;
  let lastError: Error | undefined;
  const onError = (e: Error) => (lastError = e);
  client.on('error', onError);
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(lastError ?? new Error(`no answer within ${limitMs} ms`)), limitMs);
      }),
    ]);
  } catch (err) {
    client.disconnect();
    // connect() often rejects with a bare "Connection is closed."; the 'error' event carries the cause
    // (ECONNREFUSED, WRONGPASS, certificate errors).
    const reason = lastError && lastError !== err ? lastError : (err as Error);
    throw new Error(`cannot connect to Redis at ${target}: ${redact(reason.message, cfg)}`, { cause: reason });
  } finally {
    clearTimeout(timer);
    client.off('error', onError);
  }
}

/** Removes the configured password from a message (ioredis can echo connection strings). */
export function redact(message: string, cfg: RedisConfig): string {
  let m = message;
  const secrets = [cfg.password, cfg.url ? safeUrlPassword(cfg.url) : undefined].filter((s): s is string => !!s && s.length > 0);
  for (const s of secrets) m = m.split(s).join('***');
  return m;
}

function safeUrlPassword(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p ? decodeURIComponent(p) : undefined;
  } catch {
    return undefined;
  }
}
