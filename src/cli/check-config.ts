/** `mcp-oauth-gateway check-config [FILE]`: prints OK or every problem; exit code 0 or 1. */
import { ConfigError, loadConfigFile } from '../config/load.js';
import { plainHttpNotice } from '../config/schema.js';
import { resolveConfigPath, type Output } from './common.js';

export function runCheckConfig(file: string | undefined, env: NodeJS.ProcessEnv, output: Output): number {
  const source = resolveConfigPath(file, env);
  if (source.kind === 'none') {
    output.err('check-config: no configuration file given (usage: mcp-oauth-gateway check-config FILE)');
    return 1;
  }
  try {
    const config = loadConfigFile(source.path, { env });
    const services = Object.keys(config.mcp_services);
    const providers = Object.keys(config.oauth_providers);
    const named = providers.length === 0 ? '' : `, provider${providers.length === 1 ? '' : 's'} ${providers.join(', ')}`;
    output.out(
      `OK: ${source.path} (issuer ${config.issuer}, storage ${config.storage.type}, ${services.length} service${services.length === 1 ? '' : 's'}${named})`,
    );
    for (const provider of providers) {
      const notice = plainHttpNotice(provider, config.oauth_providers[provider]!);
      if (notice) output.err(`WARNING: ${notice}`);
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      output.err(err.message);
      return 1;
    }
    throw err;
  }
}
