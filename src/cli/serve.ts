/**
 * `mcp-oauth-gateway` (no sub-command): load the configuration, start the gateway, stop gracefully on
 * SIGINT/SIGTERM (a second signal forces the exit).
 *
 * The gateway (src/http/app.ts, and with it oidc-provider, fastify, undici, the storage drivers) and the
 * demo are loaded only in the process that runs them: with `workers: N` the primary, which only supervises,
 * stays at the configuration's own modules.
 */
import { dirname } from 'node:path';
import type { Gateway } from '../http/app.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { cliOverrides, resolveConfigPath, type CliValues, type Output } from './common.js';
import { checkFdLimit } from './fd-limit.js';
import { isWorker, onPrimaryShutdown, runPrimary, workerCount } from './workers.js';

export async function runServe(values: CliValues, env: NodeJS.ProcessEnv, output: Output): Promise<number> {
  const source = resolveConfigPath(values.config, env);
  let config: GatewayConfig;
  let baseDir: string | undefined;
  let demo: { close(): Promise<void> } | undefined;
  let banner: ((issuer: string) => string) | undefined;
  if (source.kind === 'none') {
    // No configuration at all runs the demo (README, Quick start) (loopback only; the dev sign-in refuses otherwise).
    const { demoBanner, demoConfig, startDemoBackend } = await import('../demo/demo.js');
    banner = demoBanner;
    const backend = await startDemoBackend();
    demo = backend;
    try {
      config = demoConfig(backend.url, {
        host: values.host,
        port: values.port === undefined ? undefined : Number(values.port),
        debug: values.debug === true,
      });
    } catch (err) {
      await backend.close();
      // The demo's configuration is built from the command line: say so instead of naming a file.
      if (err instanceof ConfigError)
        throw new ConfigError(
          'demo mode (no configuration file)',
          err.problems.map((p) =>
            p.path === 'host' || p.path === 'port' ? { ...p, message: `${p.message} (value from the command line option --${p.path})` } : p,
          ),
        );
      throw err;
    }
  } else {
    config = loadConfigFile(source.path, { env, overrides: cliOverrides(values) });
    baseDir = dirname(source.path);
  }
  // `workers` > 1: this process only supervises; each worker runs this same function (src/cli/workers.ts).
  const workers = workerCount(config.workers);
  if (workers > 1 && !isWorker() && !demo) return runPrimary(workers, output, config.limits.shutdown_grace);
  let gateway: Gateway;
  try {
    const { createGateway } = await import('../http/app.js');
    gateway = await createGateway(config, {
      storeOptions: { baseDir, onWarning: (m) => output.err(`WARNING: ${m}`) },
      ...(source.kind === 'file' ? { configPath: source.path } : {}),
    });
  } catch (err) {
    await demo?.close();
    throw err;
  }
  gateway.app.addHook('onClose', async () => demo?.close());
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
  // Text for people goes to stderr: stdout carries the JSON log lines only, so a log collector (or
  // `npm start | jq`) never meets a banner in the middle of them.
  if (banner) output.err(banner(config.issuer));
  output.err(
    `mcp-oauth-gateway listening on ${address} (issuer ${config.issuer}${source.kind === 'file' ? `, config ${source.path}` : ', demo mode'})`,
  );
  for (const s of gateway.ctx.services.values())
    output.err(`  ${s.id}: ${s.canonicalUri} -> ${s.stdio ? `local process ${s.stdio.command[0]} (stdio)` : s.backend.origin}`);
  // Open streams are bounded by the open-file limit (Node raised the soft limit to the hard one at start).
  const fd = checkFdLimit();
  if (fd.warning) gateway.ctx.log.warn({ soft: fd.limits?.soft, hard: fd.limits?.hard }, fd.warning);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        output.err(`received ${signal} again: exiting now`);
        resolve(130);
        return;
      }
      stopping = true;
      output.err(`received ${signal}: shutting down (grace ${config.limits.shutdown_grace}s)`);
      gateway.close().then(
        () => done(0),
        (err: unknown) => {
          output.err(`error during shutdown: ${(err as Error).message}`);
          done(1);
        },
      );
    };
    // A worker is asked by its primary (an IPC message); a signal to the whole process group counts once.
    const offPrimary = isWorker()
      ? onPrimaryShutdown(() => {
          if (!stopping) stop('SIGTERM');
        })
      : undefined;
    const done = (code: number) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      offPrimary?.();
      resolve(code);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
