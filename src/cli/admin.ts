/**
 * Operator sub-commands that work directly against the configured storage (the gateway may be running:
 * every instance re-reads shared state).
 */
import { createStore } from '../storage/index.js';
import { KeyManager } from '../authz/keys.js';
import { loadForCli, type CliValues, type Output } from './common.js';
import { dirname } from 'node:path';

export async function runAdmin(command: string, rest: string[], values: CliValues, env: NodeJS.ProcessEnv, output: Output): Promise<number> {
  const sub = rest[0];
  if (command === 'keys' && sub === 'rotate') return rotateKeys(values, env, output);
  output.err(`unknown command '${[command, ...rest].join(' ')}'\n\nRun mcp-oauth-gateway --help for usage.`);
  return 2;
}

async function rotateKeys(values: CliValues, env: NodeJS.ProcessEnv, output: Output): Promise<number> {
  const { config, path } = loadForCli(values, env);
  const store = await createStore(config.storage, { baseDir: dirname(path) });
  try {
    const keys = await KeyManager.load(store, config.keys);
    const longest = Math.max(config.tokens.access_token_ttl, 300);
    const next = await keys.rotate(config.tokens.key_rotation_grace, longest);
    output.out(`new signing key ${next.kid} published now; it signs from ${new Date(next.activeAt).toISOString()} (after ${config.tokens.key_rotation_grace}s)`);
    return 0;
  } finally {
    await store.close();
  }
}
