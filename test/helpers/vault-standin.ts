/**
 * An in-process stand-in for the parts of HashiCorp Vault's HTTP API the Vault back-end uses, on
 * 127.0.0.1:0 (node:http). Shapes follow the public API docs (KV v2 secrets engine, token / AppRole /
 * Kubernetes auth, sys/health):
 *
 *   GET    /v1/sys/health                         200 {initialized, sealed, standby, ...}; 503 when sealed
 *   GET    /v1/auth/token/lookup-self             {data: {id, ttl, renewable, expire_time, policies, ...}}
 *   POST   /v1/auth/token/renew-self              {auth: {client_token, lease_duration, renewable, ...}}
 *   POST   /v1/auth/<approle mount>/login         {role_id, secret_id} -> {auth: {...}}
 *   POST   /v1/auth/<kubernetes mount>/login      {role, jwt} -> {auth: {...}}
 *   GET    /v1/<mount>/data/<path>                {data: {data, metadata: {version, created_time, ...}}}; 404 {"errors":[]}
 *   POST|PUT /v1/<mount>/data/<path>             {data, options: {cas}} -> {data: {version, ...}}; 400 on cas mismatch
 *   DELETE /v1/<mount>/data/<path>                soft delete of the current version (204)
 *   GET    /v1/<mount>/metadata/<path>?list=true  {data: {keys: [...]}} (folders end in "/"); 404 {"errors":[]} when empty
 *   DELETE /v1/<mount>/metadata/<path>            hard delete of all versions (204)
 *
 * Tokens: `X-Vault-Token` is required for everything except sys/health and logins; unknown or expired
 * tokens get 403 {"errors":["permission denied"]}. `X-Vault-Namespace` selects a separate data set; a token
 * issued in a namespace only works there (root-namespace tokens work everywhere).
 *
 * Known differences from real Vault (not verifiable here): the `LIST` HTTP method is not served (Node's
 * HTTP parser rejects unknown methods; the back-end uses `?list=true`); only the current version of a
 * secret is kept (`?version=` is ignored); no policies (a valid token may do everything); no `cas_required`,
 * `max_versions` or `delete_version_after`; namespaces only via the header, not as a path prefix;
 * error strings for failed AppRole/Kubernetes logins are approximations.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Secret {
  version: number;
  data: Record<string, unknown> | null;
  created: string;
  deleted: string;
}

interface Token {
  namespace: string;
  expiresAt: number | undefined; // undefined: no expiry (root)
  ttlSeconds: number;
  renewable: boolean;
  policies: string[];
}

export interface VaultStandinOptions {
  rootToken?: string;
  mounts?: string[];
  approle?: { mount?: string; roleId: string; secretId: string; tokenTtlSeconds?: number };
  kubernetes?: { mount?: string; role: string; jwt: string; tokenTtlSeconds?: number };
}

const MAX_BODY = 32 * 1024 * 1024; // Vault's default max_request_size

export class VaultStandin {
  readonly rootToken: string;
  #server: Server | undefined;
  #port = 0;
  #tokens = new Map<string, Token>();
  /** namespace -> mount -> path -> secret */
  #data = new Map<string, Map<string, Map<string, Secret>>>();
  #opts: VaultStandinOptions;
  #mounts: Set<string>;
  sealed = false;
  /** When true, requests are accepted but never answered (a hung Vault or a black-holed proxy). */
  hang = false;
  /** Counters for tests: "METHOD route-kind" -> n. */
  readonly requests = new Map<string, number>();
  logins = 0;

  private constructor(options: VaultStandinOptions) {
    this.#opts = options;
    this.rootToken = options.rootToken ?? `hvs.root-${randomUUID()}`;
    this.#mounts = new Set(options.mounts ?? ['secret']);
    this.#tokens.set(this.rootToken, { namespace: '', expiresAt: undefined, ttlSeconds: 0, renewable: false, policies: ['root'] });
  }

  static async start(options: VaultStandinOptions = {}): Promise<VaultStandin> {
    const v = new VaultStandin(options);
    await v.start();
    return v;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** (Re)starts listening, on the same port as before if there was one. Data survives stop/start. */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((req, res) => void this.#handle(req, res));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Simulates an outage: closes the listener and every open connection. */
  async stop(): Promise<void> {
    const s = this.#server;
    if (!s) return;
    this.#server = undefined;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  issueToken(options: { ttlSeconds?: number; renewable?: boolean; namespace?: string } = {}): string {
    const token = `hvs.${randomUUID()}`;
    const ttl = options.ttlSeconds ?? 3600;
    this.#tokens.set(token, {
      namespace: options.namespace ?? '',
      expiresAt: ttl > 0 ? Date.now() + ttl * 1000 : undefined,
      ttlSeconds: ttl,
      renewable: options.renewable ?? true,
      policies: ['default'],
    });
    return token;
  }

  /** Makes a token invalid at once (as if its TTL ran out). */
  expireToken(token: string): void {
    const t = this.#tokens.get(token);
    if (t) t.expiresAt = Date.now() - 1;
  }

  /** Expires every token except the root token. */
  expireAllTokens(): void {
    for (const [id, t] of this.#tokens) if (id !== this.rootToken) t.expiresAt = Date.now() - 1;
  }

  /** Number of secrets stored under `mount` (optionally in `namespace`), for assertions. */
  secretPaths(mount = 'secret', namespace = ''): string[] {
    return [...(this.#data.get(namespace)?.get(mount)?.keys() ?? [])].sort();
  }

  #count(key: string): void {
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.hang) return; // the socket stays open until the client gives up or stop() closes it
    try {
      const body = await readBody(req);
      if (body === undefined) return send(res, 413, { errors: ['http: request body too large'] });
      const url = new URL(req.url ?? '/', 'http://x');
      const path = decodeURIComponent(url.pathname);
      if (!path.startsWith('/v1/')) return send(res, 404, { errors: [] });
      const rest = path.slice(4);
      const method = req.method ?? 'GET';
      let json: Record<string, unknown> = {};
      if (body.length > 0) {
        try {
          const parsed: unknown = JSON.parse(body);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          json = parsed as Record<string, unknown>;
        } catch {
          return send(res, 400, { errors: ['error parsing JSON'] });
        }
      }
      if (rest === 'sys/health') {
        this.#count('GET sys/health');
        return send(res, this.sealed ? 503 : 200, {
          initialized: true,
          sealed: this.sealed,
          standby: false,
          performance_standby: false,
          replication_performance_mode: 'disabled',
          replication_dr_mode: 'disabled',
          server_time_utc: Math.floor(Date.now() / 1000),
          version: '1.17.0-standin',
          cluster_name: 'vault-standin',
        });
      }
      if (this.sealed) return send(res, 503, { errors: ['Vault is sealed'] });
      const namespace = normaliseNamespace(req.headers['x-vault-namespace']);

      const approleMount = this.#opts.approle?.mount ?? 'approle';
      const k8sMount = this.#opts.kubernetes?.mount ?? 'kubernetes';
      if (method === 'POST' && rest === `auth/${approleMount}/login` && this.#opts.approle) {
        this.#count('POST approle login');
        const a = this.#opts.approle;
        if (json.role_id !== a.roleId || json.secret_id !== a.secretId) return send(res, 400, { errors: ['invalid role or secret ID'] });
        return this.#login(res, namespace, a.tokenTtlSeconds ?? 3600, { role_name: 'gateway' });
      }
      if (method === 'POST' && rest === `auth/${k8sMount}/login` && this.#opts.kubernetes) {
        this.#count('POST kubernetes login');
        const k = this.#opts.kubernetes;
        if (json.role !== k.role) return send(res, 400, { errors: [`invalid role name "${String(json.role)}"`] });
        if (json.jwt !== k.jwt) return send(res, 403, { errors: ['permission denied'] });
        return this.#login(res, namespace, k.tokenTtlSeconds ?? 3600, { role: k.role });
      }

      const tokenId = header(req, 'x-vault-token');
      const token = tokenId ? this.#tokens.get(tokenId) : undefined;
      const valid =
        token &&
        (token.expiresAt === undefined || token.expiresAt > Date.now()) &&
        (token.namespace === '' || token.namespace === namespace);
      if (!tokenId || !token || !valid) {
        this.#count('403');
        return send(res, 403, { errors: ['permission denied'] });
      }

      if (rest === 'auth/token/lookup-self' && method === 'GET') {
        this.#count('GET lookup-self');
        return send(res, 200, envelope({ data: this.#lookup(tokenId, token) }));
      }
      if (rest === 'auth/token/renew-self' && (method === 'POST' || method === 'PUT')) {
        this.#count('POST renew-self');
        if (!token.renewable || token.expiresAt === undefined) return send(res, 400, { errors: ['lease is not renewable'] });
        const inc = typeof json.increment === 'number' ? json.increment : token.ttlSeconds;
        token.expiresAt = Date.now() + inc * 1000;
        return send(res, 200, envelope({ auth: authBlock(tokenId, token) }));
      }

      const slash = rest.indexOf('/');
      const mount = slash < 0 ? rest : rest.slice(0, slash);
      if (!this.#mounts.has(mount)) return send(res, 404, { errors: [`no handler for route "${rest}". route entry not found.`] });
      const after = slash < 0 ? '' : rest.slice(slash + 1);
      const kind =
        after.startsWith('data/') || after === 'data' ? 'data' : after.startsWith('metadata/') || after === 'metadata' ? 'metadata' : '';
      const secretPath = after.slice(kind.length + 1).replace(/^\/+/, '');
      const store = this.#store(namespace, mount);
      this.#count(`${method} ${kind}`);
      if (kind === 'data') return this.#dataRoute(res, method, store, secretPath, json);
      if (kind === 'metadata') return this.#metadataRoute(res, method, url, store, secretPath);
      return send(res, 404, { errors: [`no handler for route "${rest}"`] });
    } catch (err) {
      send(res, 500, { errors: [`internal error: ${(err as Error).message}`] });
    }
  }

  #login(res: ServerResponse, namespace: string, ttl: number, metadata: Record<string, string>): void {
    this.logins++;
    const id = this.issueToken({ ttlSeconds: ttl, renewable: true, namespace });
    const t = this.#tokens.get(id)!;
    send(res, 200, envelope({ auth: { ...authBlock(id, t), metadata } }));
  }

  #lookup(id: string, t: Token): Record<string, unknown> {
    const ttl = t.expiresAt === undefined ? 0 : Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000));
    return {
      accessor: `acc-${id.slice(-8)}`,
      creation_ttl: t.ttlSeconds,
      display_name: 'token',
      expire_time: t.expiresAt === undefined ? null : new Date(t.expiresAt).toISOString(),
      explicit_max_ttl: 0,
      id,
      meta: null,
      num_uses: 0,
      orphan: false,
      path: 'auth/token/create',
      policies: t.policies,
      renewable: t.renewable,
      ttl,
      type: 'service',
      namespace_path: t.namespace === '' ? '' : `${t.namespace}/`,
    };
  }

  #store(namespace: string, mount: string): Map<string, Secret> {
    let ns = this.#data.get(namespace);
    if (!ns) this.#data.set(namespace, (ns = new Map()));
    let m = ns.get(mount);
    if (!m) ns.set(mount, (m = new Map()));
    return m;
  }

  #dataRoute(res: ServerResponse, method: string, store: Map<string, Secret>, path: string, body: Record<string, unknown>): void {
    if (!path || path.endsWith('/')) return send(res, 405, { errors: ['unsupported operation'] });
    const s = store.get(path);
    if (method === 'GET') {
      if (!s) return send(res, 404, { errors: [] });
      if (s.data === null) return send(res, 404, envelope({ data: { data: null, metadata: metadataOf(s) } }));
      return send(res, 200, envelope({ data: { data: s.data, metadata: metadataOf(s) } }));
    }
    if (method === 'POST' || method === 'PUT') {
      const data = body.data;
      if (typeof data !== 'object' || data === null || Array.isArray(data)) return send(res, 400, { errors: ['no data provided'] });
      const options = (body.options ?? {}) as { cas?: unknown };
      if (options.cas !== undefined) {
        if (typeof options.cas !== 'number') return send(res, 400, { errors: ['cas must be an integer'] });
        if (options.cas !== (s?.version ?? 0))
          return send(res, 400, { errors: ['check-and-set parameter did not match the current version'] });
      }
      const next: Secret = {
        version: (s?.version ?? 0) + 1,
        data: structuredClone(data as Record<string, unknown>),
        created: new Date().toISOString(),
        deleted: '',
      };
      store.set(path, next);
      return send(res, 200, envelope({ data: metadataOf(next) }));
    }
    if (method === 'DELETE') {
      if (s && s.data !== null) {
        s.data = null;
        s.deleted = new Date().toISOString();
      }
      return send(res, 204);
    }
    return send(res, 405, { errors: ['unsupported operation'] });
  }

  #metadataRoute(res: ServerResponse, method: string, url: URL, store: Map<string, Secret>, path: string): void {
    if (method === 'GET' && url.searchParams.get('list') === 'true') {
      const folder = path === '' || path.endsWith('/') ? path : `${path}/`;
      const keys = new Set<string>();
      for (const p of store.keys()) {
        if (!p.startsWith(folder)) continue;
        const tail = p.slice(folder.length);
        const cut = tail.indexOf('/');
        keys.add(cut < 0 ? tail : tail.slice(0, cut + 1));
      }
      if (keys.size === 0) return send(res, 404, { errors: [] });
      return send(res, 200, envelope({ data: { keys: [...keys].sort() } }));
    }
    if (method === 'DELETE') {
      store.delete(path);
      return send(res, 204);
    }
    if (method === 'GET') {
      const s = store.get(path);
      if (!s) return send(res, 404, { errors: [] });
      return send(
        res,
        200,
        envelope({
          data: {
            current_version: s.version,
            oldest_version: s.version,
            created_time: s.created,
            updated_time: s.created,
            versions: { [s.version]: metadataOf(s) },
          },
        }),
      );
    }
    return send(res, 405, { errors: ['unsupported operation'] });
  }
}

function metadataOf(s: Secret) {
  return { created_time: s.created, custom_metadata: null, deletion_time: s.deleted, destroyed: false, version: s.version };
}

function authBlock(id: string, t: Token) {
  const lease = t.expiresAt === undefined ? 0 : Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000));
  return {
    client_token: id,
    accessor: `acc-${id.slice(-8)}`,
    policies: t.policies,
    token_policies: t.policies,
    metadata: null,
    lease_duration: lease,
    renewable: t.renewable,
    entity_id: '',
    token_type: 'service',
    orphan: true,
  };
}

function envelope(fields: Record<string, unknown>) {
  return {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: null,
    mount_type: 'kv',
    ...fields,
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function normaliseNamespace(v: string | string[] | undefined): string {
  const s = (Array.isArray(v) ? v[0] : v) ?? '';
  return s.replace(/^\/+|\/+$/g, '');
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}
