/**
 * A minimal Vault HTTP client on undici `request` (no vault library: we need a handful of endpoints).
 *
 * Auth:
 * - `token`: the configured token; if `lookup-self` says it is renewable, it is renewed (`renew-self`)
 *   at half its TTL, for as long as Vault allows.
 * - `approle` / `kubernetes`: log in at start, log in again at 2/3 of the lease, and once more (then
 *   retry the request) if Vault answers 403 (token expired or revoked behind our back).
 *
 * Errors never carry the token, role_id, secret_id or JWT. Network errors, timeouts and 5xx answers become
 * GW_ERR_STORE_UNAVAILABLE; a 403 that re-login cannot fix says "permission denied" and what to check.
 *
 * TLS options go to an npm-undici `Agent` used with npm-undici `request` only (never with Node's global
 * fetch: Node's bundled undici and the npm undici are different majors with different dispatcher contracts).
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import type { StorageConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';

export type VaultConfig = NonNullable<StorageConfig['vault']>;

export interface VaultResponse {
  status: number;
  body: Record<string, unknown> | undefined;
}

export class VaultHttpError extends Error {
  readonly status: number;
  readonly errors: string[];
  constructor(status: number, errors: string[], message: string) {
    super(message);
    this.name = 'VaultHttpError';
    this.status = status;
    this.errors = errors;
  }
}

export const CAS_MISMATCH = 'check-and-set parameter did not match the current version';

export class VaultClient {
  readonly baseUrl: string;
  readonly #cfg: VaultConfig;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #onWarning: ((m: string) => void) | undefined;
  #token: string | undefined;
  #login: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Last authentication problem, reported by health(). */
  authProblem: string | undefined;

  private constructor(cfg: VaultConfig, agent: Agent, onWarning?: (m: string) => void) {
    this.#cfg = cfg;
    this.baseUrl = cfg.url.replace(/\/+$/, '');
    this.#agent = agent;
    this.#timeoutMs = Math.round(cfg.timeout * 1000);
    this.#onWarning = onWarning;
    if (cfg.auth_method === 'token') this.#token = cfg.token;
  }

  /** Builds the client and authenticates, or throws `cannot connect to Vault at <url>: <reason>`. */
  static async create(cfg: VaultConfig, onWarning?: (m: string) => void): Promise<VaultClient> {
    const ca = cfg.ca_cert ? await readFile(cfg.ca_cert) : undefined;
    const agent = new Agent({ connect: { rejectUnauthorized: cfg.verify_ssl, ...(ca && { ca }) }, connections: 32 });
    const client = new VaultClient(cfg, agent, onWarning);
    try {
      await client.#authenticate();
    } catch (err) {
      await client.close();
      throw new Error(`cannot connect to Vault at ${client.baseUrl}: ${(err as Error).message}`, { cause: err });
    }
    return client;
  }

  async #authenticate(): Promise<void> {
    if (this.#cfg.auth_method === 'token') {
      const res = await this.#send('GET', '/v1/auth/token/lookup-self');
      if (res.status !== 200) throw this.#error('GET', 'auth/token/lookup-self', res);
      const data = (res.body?.data ?? {}) as { renewable?: boolean; ttl?: number };
      if (data.renewable && typeof data.ttl === 'number' && data.ttl > 0) this.#schedule(data.ttl, () => this.#renew());
      this.authProblem = undefined;
      return;
    }
    await this.#relogin();
  }

  /** Logs in with AppRole or Kubernetes; concurrent callers share one login. */
  #relogin(): Promise<void> {
    this.#login ??= this.#doLogin().finally(() => (this.#login = undefined));
    return this.#login;
  }

  async #doLogin(): Promise<void> {
    const cfg = this.#cfg;
    let mount: string;
    let body: Record<string, unknown>;
    if (cfg.auth_method === 'approle') {
      mount = cfg.auth_mount ?? 'approle';
      body = { role_id: cfg.role_id, secret_id: cfg.secret_id };
    } else {
      mount = cfg.auth_mount ?? 'kubernetes';
      const jwt = (
        await readFile(cfg.jwt_path, 'utf8').catch((e: Error) => {
          throw new Error(
            `cannot read the Kubernetes service-account token at ${cfg.jwt_path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`,
          );
        })
      ).trim();
      body = { role: cfg.role, jwt };
    }
    const path = `/v1/auth/${trimSlashes(mount)}/login`;
    const res = await this.#send('POST', path, body, false);
    const auth = res.body?.auth as { client_token?: string; lease_duration?: number } | undefined;
    if (res.status !== 200 || !auth?.client_token) {
      const err = this.#error('POST', `auth/${trimSlashes(mount)}/login`, res);
      this.authProblem = err.message;
      throw err;
    }
    this.#token = auth.client_token;
    this.authProblem = undefined;
    const lease = auth.lease_duration ?? 0;
    if (lease > 0) this.#schedule((lease * 2) / 3, () => this.#relogin(), true);
  }

  async #renew(): Promise<void> {
    const res = await this.#send('POST', '/v1/auth/token/renew-self', {});
    const lease = (res.body?.auth as { lease_duration?: number } | undefined)?.lease_duration;
    if (res.status !== 200 || !lease) {
      this.#onWarning?.(`Vault token renewal failed (${res.status}); the token will expire at the end of its TTL`);
      return;
    }
    this.#schedule(lease, () => this.#renew());
  }

  #schedule(seconds: number, fn: () => Promise<void>, exact = false): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    const ms = Math.max(500, Math.round((exact ? seconds : seconds / 2) * 1000));
    this.#timer = setTimeout(() => {
      fn().catch((err: Error) => this.#onWarning?.(`Vault token refresh failed: ${err.message}`));
    }, ms);
    this.#timer.unref();
  }

  /** One HTTP exchange. `auth`: send the token. Network failures throw GW_ERR_STORE_UNAVAILABLE. */
  async #send(method: string, path: string, body?: unknown, auth = true): Promise<VaultResponse> {
    if (this.#closed) throw new GatewayError('GW_ERR_STORE_UNAVAILABLE', 'Vault store is closed');
    const headers: Record<string, string> = { accept: 'application/json' };
    if (auth && this.#token) headers['x-vault-token'] = this.#token;
    if (this.#cfg.namespace) headers['x-vault-namespace'] = this.#cfg.namespace;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    try {
      const res = await request(`${this.baseUrl}${path}`, {
        method: method as 'GET',
        headers,
        body: payload,
        dispatcher: this.#agent,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const text = await res.body.text();
      let parsed: Record<string, unknown> | undefined;
      if (text) {
        try {
          const v: unknown = JSON.parse(text);
          if (v && typeof v === 'object' && !Array.isArray(v)) parsed = v as Record<string, unknown>;
        } catch {
          /* non-JSON error page (a proxy in front of Vault): keep the status */
        }
      }
      return { status: res.statusCode, body: parsed };
    } catch (err) {
      const e = err as { code?: string; name?: string; message?: string };
      const why =
        e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT'
          ? `no answer within ${this.#timeoutMs} ms`
          : (e.code ?? e.message ?? 'network error');
      throw new GatewayError('GW_ERR_STORE_UNAVAILABLE', `Vault at ${this.baseUrl} is unreachable: ${why}`, { cause: err });
    }
  }

  /**
   * An authenticated call. 404 is returned to the caller (absent secret/folder); other non-2xx answers
   * throw. With AppRole/Kubernetes a 403 triggers one re-login and one retry.
   */
  async call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<VaultResponse> {
    let res = await this.#send(method, path, body);
    if (res.status === 403 && this.#cfg.auth_method !== 'token') {
      await this.#relogin();
      res = await this.#send(method, path, body);
    }
    if (res.status < 300) this.authProblem = undefined;
    // KV v2 answers a missing secret or folder with 404 {"errors":[]}; a 404 WITH errors is "no handler for
    // route": the mount does not exist.
    if (res.status < 300 || (res.status === 404 && errorsOf(res).length === 0)) return res;
    if (res.status === 400 && errorsOf(res).includes(CAS_MISMATCH)) return res; // the caller handles CAS races
    throw this.#error(method, undefined, res);
  }

  #error(method: string, what: string | undefined, res: VaultResponse): Error {
    const errors = errorsOf(res);
    const detail = errors.length ? errors.join('; ') : `HTTP ${res.status}`;
    const op = what ? `${method} ${what}` : `${method} on mount "${this.#cfg.mount_point}"`;
    if (res.status === 403) {
      const hint =
        this.#cfg.auth_method === 'token'
          ? 'the Vault token has expired or been revoked, or its policy does not allow this path'
          : 'login succeeded but the policy does not allow this path, or the new token was rejected';
      this.authProblem = `permission denied (${hint})`;
      return new GatewayError('GW_ERR_STORE_UNAVAILABLE', `Vault denied ${op}: permission denied: ${hint}`, {
        cause: new VaultHttpError(res.status, errors, detail),
      });
    }
    if (res.status >= 500 || res.status === 429) {
      return new GatewayError('GW_ERR_STORE_UNAVAILABLE', `Vault ${op} failed with HTTP ${res.status}: ${detail}`, {
        cause: new VaultHttpError(res.status, errors, detail),
      });
    }
    return new VaultHttpError(res.status, errors, `Vault ${op} failed with HTTP ${res.status}: ${detail}`);
  }

  /** `GET /v1/sys/health` (unauthenticated). Active, standby and performance standby count as up. */
  async health(timeoutMs: number): Promise<{ ok: boolean; detail?: string }> {
    try {
      const res = await Promise.race([
        this.#send('GET', '/v1/sys/health', undefined, false),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
      ]);
      if (![200, 429, 473].includes(res.status)) {
        const sealed = res.body?.sealed === true ? ' (sealed)' : '';
        return { ok: false, detail: `Vault at ${this.baseUrl} health answered HTTP ${res.status}${sealed}` };
      }
      if (this.authProblem) return { ok: false, detail: `Vault at ${this.baseUrl}: ${this.authProblem}` };
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#agent.close().catch(() => undefined);
  }
}

export function errorsOf(res: VaultResponse): string[] {
  const e = res.body?.errors;
  return Array.isArray(e) ? e.filter((x): x is string => typeof x === 'string') : [];
}

export function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}
