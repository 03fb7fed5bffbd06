/**
 * The seed configurations (`../shared/fixtures/seed-configs/*.yaml`, written as our users write their
 * `config.yaml`) and the world they describe: the real test IdP on `IDP_PORT`, real MCP SDK backends on
 * `CALC_PORT`/`NOTES_PORT`, and the gateway started from the file, loaded unchanged through the real
 * loader with its variables set. Used by test/fixtures/seed-configs.test.ts and scripts/conformance.ts
 * (which runs outside vitest: pass `{ cleanup: false }` and call `close()`).
 *
 * The files are read from the shared folder at run time and never copied into the repository: they are
 * the users' acceptance material, and a copy would drift from it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/schema.js';
import { createGateway, type Gateway } from '../../src/http/app.js';
import { startMcpBackend, type McpBackend } from './mcp-backend.js';
import { freePort } from './ports.js';
import { startUpstreamIdp, type UpstreamIdp } from './upstream-idp.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The folder holding the seed configurations: `$GW_SEED_CONFIGS`, else `../shared/fixtures/seed-configs`
 * relative to the repository root (CI clones the repository with `shared/` beside it). Throws when it is
 * missing or holds no `.yaml` file: a missing folder must fail the suite, never skip it.
 */
export function seedConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.GW_SEED_CONFIGS ? resolve(env.GW_SEED_CONFIGS) : resolve(REPO_ROOT, '../shared/fixtures/seed-configs');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(
      `seed configurations not found: ${dir} does not exist. The suite reads ../shared/fixtures/seed-configs beside the repository ` +
        `(clone the repository with shared/ next to it) or the folder named by GW_SEED_CONFIGS.`,
    );
  }
  return dir;
}

/** Absolute paths of every `*.yaml` seed configuration, sorted. Throws when there is none. */
export function seedConfigFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = seedConfigDir(env);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`seed configurations not found: ${dir} holds no .yaml file`);
  return files;
}

/** The seed configuration `name` (e.g. `local-custom.yaml`); throws when it is not in the folder. */
export function seedConfigFile(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const file = seedConfigFiles(env).find((f) => basename(f) === name);
  if (!file) throw new Error(`seed configuration ${name} not found in ${seedConfigDir(env)}`);
  return file;
}

/** `${VAR}` references without a default (must be set) and `${VAR:-default}` ones (may be left unset). */
export function variablesOf(text: string): { required: string[]; optional: string[] } {
  const required = new Set<string>();
  const optional = new Set<string>();
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)) (m[2] === undefined ? required : optional).add(m[1]!);
  for (const name of required) optional.delete(name);
  return { required: [...required].sort(), optional: [...optional].sort() };
}

/** Variables every seed file may use whose values need a shape (ports, a long secret). */
export const PORT_VARIABLES = ['GW_PORT', 'IDP_PORT', 'CALC_PORT', 'NOTES_PORT'] as const;
export type SeedPorts = Record<(typeof PORT_VARIABLES)[number], number>;

/** The test IdP's client, as the local fixtures' defaults name it (`IDP_CLIENT_ID`, `IDP_CLIENT_SECRET`). */
export const IDP_CLIENT = { id: 'gateway-client', secret: 'gateway-secret-0123456789abcdef' } as const;

/**
 * The environment a person would set for `file`: the four ports (free loopback ports, distinct), a fresh
 * `SESSION_SECRET`, and a placeholder for every other variable the file requires (provider client ids and
 * secrets, Vault AppRole ids). Variables with a default are left unset so the file's defaults apply, as
 * they do for our users. Nothing from the caller's environment leaks in (an `MCP_ISSUER` set on the
 * machine would otherwise override the file).
 */
export async function seedEnv(file: string): Promise<{ env: Record<string, string>; ports: SeedPorts }> {
  const ports = {} as SeedPorts;
  const used = new Set<number>();
  for (const name of PORT_VARIABLES) {
    let p = await freePort();
    while (used.has(p)) p = await freePort();
    used.add(p);
    ports[name] = p;
  }
  const env: Record<string, string> = { SESSION_SECRET: randomBytes(32).toString('base64url') };
  for (const name of PORT_VARIABLES) env[name] = String(ports[name]);
  for (const name of variablesOf(readFileSync(file, 'utf8')).required) env[name] ??= `seed-${name.toLowerCase().replace(/_/g, '-')}`;
  return { env, ports };
}

export interface SeedWorld {
  file: string;
  env: Record<string, string>;
  ports: SeedPorts;
  config: GatewayConfig;
  /** The gateway's base URL (its issuer, from the file). */
  url: string;
  gateway: Gateway;
  idp: UpstreamIdp;
  /** Backends by port variable (only those the file uses). */
  backends: Partial<Record<'CALC_PORT' | 'NOTES_PORT', McpBackend>>;
  close(): Promise<void>;
}

export interface SeedWorldOptions {
  /** Register cleanup with the running vitest test (default true; false outside vitest). */
  cleanup?: boolean;
  /** Where the gateway logs (default: silent). */
  logStream?: NodeJS.WritableStream;
  /**
   * Seconds a closing gateway waits for open connections (a harness setting, not the file's): real
   * browsers keep speculative connections open that would hold each close for the default 10 s.
   */
  shutdownGrace?: number;
}

/**
 * Starts the world of a local seed configuration (`local-custom.yaml`, `local-oidc.yaml`): the test IdP on
 * `IDP_PORT` knowing the gateway's client (`gateway-client` with redirect `{issuer}/oauth/callback`), an MCP
 * SDK backend on each of `CALC_PORT`/`NOTES_PORT` the file uses, and the gateway built from the file as
 * loaded by `loadConfigFile` (the loader `serve` and `check-config` use), listening on `GW_PORT`.
 * Retries with new ports when one was taken between choosing and binding it.
 */
export async function startSeedWorld(file: string, options: SeedWorldOptions = {}): Promise<SeedWorld> {
  for (let attempt = 0; ; attempt++) {
    try {
      const world = await startOnce(file, options);
      if (options.cleanup !== false) onTestFinished(() => world.close());
      return world;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 4) continue;
      throw err;
    }
  }
}

async function startOnce(file: string, options: SeedWorldOptions): Promise<SeedWorld> {
  const { env, ports } = await seedEnv(file);
  const text = readFileSync(file, 'utf8');
  const config = loadConfigFile(file, { env });
  const started: Array<{ close(): Promise<void> }> = [];
  const close = async () => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
  };
  try {
    const idp = await startUpstreamIdp(undefined, { cleanup: false, port: ports.IDP_PORT });
    started.push(idp);
    const issuer = config.issuer.replace(/\/+$/, '');
    // Custom providers authenticate with client_secret_post (src/upstream/oauth2.ts); openid-client's
    // discovery client defaults to it as well. oidc-provider accepts one method per client.
    idp.addClient({
      client_id: env.IDP_CLIENT_ID ?? IDP_CLIENT.id,
      client_secret: env.IDP_CLIENT_SECRET ?? IDP_CLIENT.secret,
      redirect_uris: [`${issuer}/oauth/callback`],
      token_endpoint_auth_method: 'client_secret_post',
    });
    const backends: SeedWorld['backends'] = {};
    for (const name of ['CALC_PORT', 'NOTES_PORT'] as const) {
      if (!text.includes(`\${${name}}`)) continue;
      const b = await startMcpBackend({ cleanup: false, port: ports[name], json: name === 'NOTES_PORT' });
      started.push(b);
      backends[name] = b;
    }
    if (options.shutdownGrace !== undefined) config.limits.shutdown_grace = options.shutdownGrace;
    const gateway = await createGateway(config, options.logStream ? { logStream: options.logStream } : { silent: true });
    started.push(gateway);
    await gateway.listen();
    return { file, env, ports, config, url: issuer, gateway, idp, backends, close };
  } catch (err) {
    await close();
    throw err;
  }
}
