/**
 * `mcp-oauth-gateway` (no sub-command): load the configuration, start the gateway, stop gracefully on
 * SIGINT/SIGTERM (a second signal forces the exit).
 */
import { dirname } from 'node:path';
import { createGateway } from '../http/app.js';
import { loadConfigFile } from '../config/load.js';
import { cliOverrides, resolveConfigPath, type CliValues, type Output } from './common.js';

export async function runServe(values: CliValues, env: NodeJS.ProcessEnv, output: Output): Promise<number> {
  const source = resolveConfigPath(values.config, env);
  if (source.kind === 'none') {
    output.err(
      [
        'No configuration found.',
        '  Looked for: --config FILE, $MCP_CONFIG_PATH, ./config.yaml',
        '  Start from an example:  cp examples/minimal.yaml config.yaml   (then edit it)',
        '  or run:                 npm start -- --config examples/minimal.yaml',
        'The built-in demo (no configuration at all) is not available in this version yet.',
      ].join('\n'),
    );
    return 1;
  }
  const config = loadConfigFile(source.path, { env, overrides: cliOverrides(values) });
  const gateway = await createGateway(config, { storeOptions: { baseDir: dirname(source.path), onWarning: (m) => output.err(`WARNING: ${m}`) } });
  let address: string;
  try {
    address = await gateway.listen();
  } catch (err) {
    await gateway.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new Error(`cannot listen on ${config.host}:${config.port}: the address is already in use`);
    if (e.code === 'EACCES') throw new Error(`cannot listen on ${config.host}:${config.port}: permission denied`);
    throw err;
  }
  output.out(`mcp-oauth-gateway listening on ${address} (issuer ${config.issuer}, config ${source.path})`);
  for (const s of gateway.ctx.services.values()) output.out(`  ${s.id}: ${s.canonicalUri} -> ${s.backend.origin}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        output.err(`received ${signal} again: exiting now`);
        resolve(130);
        return;
      }
      stopping = true;
      output.out(`received ${signal}: shutting down (grace ${config.limits.shutdown_grace}s)`);
      gateway.close().then(
        () => resolve(0),
        (err: unknown) => {
          output.err(`error during shutdown: ${(err as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
