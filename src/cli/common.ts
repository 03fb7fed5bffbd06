import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile, type LoadOptions } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export interface CliValues {
  config?: string;
  host?: string;
  port?: string;
  debug?: boolean;
  from?: string;
  to?: string;
  user?: string;
  client?: string;
  grant?: string;
  provider?: string;
  service?: string;
  json?: boolean;
}

export type ConfigSource = { kind: 'file'; path: string; how: string } | { kind: 'none' };

/** Config lookup order: --config, then $MCP_CONFIG_PATH, then ./config.yaml (then the demo, by the caller). */
export function resolveConfigPath(explicit: string | undefined, env: NodeJS.ProcessEnv, cwd = process.cwd()): ConfigSource {
  if (explicit) return { kind: 'file', path: resolve(cwd, explicit), how: '--config' };
  if (env.MCP_CONFIG_PATH) return { kind: 'file', path: resolve(cwd, env.MCP_CONFIG_PATH), how: 'MCP_CONFIG_PATH' };
  const local = resolve(cwd, 'config.yaml');
  if (existsSync(local)) return { kind: 'file', path: local, how: './config.yaml' };
  return { kind: 'none' };
}

export function cliOverrides(values: CliValues): LoadOptions['overrides'] {
  const overrides: NonNullable<LoadOptions['overrides']> = {};
  if (values.host) overrides.host = values.host;
  if (values.port !== undefined) overrides.port = values.port as unknown as number; // validated by the schema
  if (values.debug) overrides.debug = true;
  return overrides;
}

/** Loads the configuration a command should use; throws ConfigError, or Error when there is none. */
export function loadForCli(values: CliValues, env: NodeJS.ProcessEnv): { config: GatewayConfig; path: string } {
  const source = resolveConfigPath(values.config, env);
  if (source.kind === 'none') {
    throw new Error('no configuration found: pass --config FILE, set MCP_CONFIG_PATH, or create ./config.yaml (see examples/)');
  }
  return { config: loadConfigFile(source.path, { env, overrides: cliOverrides(values) }), path: source.path };
}
