/**
 * The `mcp-oauth-gateway` command line.
 *
 *   mcp-oauth-gateway [--config FILE] [--host H] [--port N] [--debug]   run the gateway
 *   mcp-oauth-gateway check-config [FILE]                                 validate a configuration
 *   mcp-oauth-gateway keys rotate [--config FILE]                         rotate the signing key
 *   mcp-oauth-gateway storage migrate --from A.yaml --to B.yaml           copy all state between back-ends
 *
 * Starting never writes a file it was not asked to write (the SQLite file named in the configuration
 * is the one file it creates). Configuration errors exit 1 with every problem listed, never a stack trace.
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { VERSION } from '../version.js';
import { ConfigError } from '../config/load.js';
import { resolveConfigPath, loadForCli, type Output } from './common.js';

export const HELP = `mcp-oauth-gateway ${VERSION}: OAuth 2.1 sign-in in front of MCP servers

Usage:
  mcp-oauth-gateway [options]                    run the gateway
  mcp-oauth-gateway check-config [FILE]          validate a configuration file (exit 0 = OK)
  mcp-oauth-gateway clients list | show ID | delete ID
                                                 registered OAuth clients (delete also revokes their grants)
  mcp-oauth-gateway grants list [--user USER_ID] who has authorized which client for which services
  mcp-oauth-gateway revoke --grant ID | --user USER_ID | --client CLIENT_ID
                                                 revoke grants: refresh tokens stop at once, access
                                                 tokens are refused by every instance within ~1 s
  mcp-oauth-gateway connections list [--user USER_ID]
                                                 upstream accounts held for upstream_auth services (never a token)
  mcp-oauth-gateway connections revoke --user USER_ID [--provider NAME | --service ID]
                                                 delete a user's upstream tokens (all, or one provider / service)
  mcp-oauth-gateway keys rotate                  add a new signing key (signs after the grace period)
  mcp-oauth-gateway demo-server [--host H] [--port N]
                                                 run only the demo MCP backend (no auth: put it behind the gateway)
  mcp-oauth-gateway storage migrate --from A.yaml --to B.yaml
                                                 copy all state from one storage back-end to another

Options:
  -c, --config FILE   configuration file (default: $MCP_CONFIG_PATH, then ./config.yaml; with none, the
                      gateway runs the demo and the admin commands read its ./data/demo.db)
      --host HOST     address to bind (overrides the configuration)
  -p, --port PORT     port to bind (overrides the configuration)
      --debug         development mode (verbose logs, weak secrets allowed)
      --json          machine-readable output for list/show commands
  -h, --help          show this help
  -v, --version       print the version

Environment overrides: MCP_GATEWAY_HOST, MCP_GATEWAY_PORT, MCP_ISSUER, MCP_SESSION_SECRET, MCP_DEBUG.
Output: JSON log lines on stdout; banners, status lines and warnings for people on stderr.
Documentation: docs/configuration.md
`;

const consoleOutput: Output = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
};

/** Long options that take a value (`--grant ID`): the ids the gateway generates may start with `-`. */
const VALUE_OPTIONS = new Set([
  '--config',
  '--host',
  '--port',
  '--from',
  '--to',
  '--user',
  '--client',
  '--grant',
  '--provider',
  '--service',
]);

/**
 * `--grant -Xy…` as `--grant=-Xy…`: grant and client ids are random base64url and one in 64 starts with
 * `-`, which node:util parseArgs would otherwise refuse as an ambiguous option argument.
 */
function joinDashValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (VALUE_OPTIONS.has(a) && next !== undefined && next.startsWith('-') && next !== '--') {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Runs the CLI; resolves to the exit code (the server command resolves only when it has stopped). */
export async function main(argv: string[], output: Output = consoleOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinDashValues(argv),
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string', short: 'p' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        from: { type: 'string' },
        to: { type: 'string' },
        user: { type: 'string' },
        client: { type: 'string' },
        grant: { type: 'string' },
        provider: { type: 'string' },
        service: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (err) {
    // A positional id that starts with `-` (clients show|delete ID) goes after `--`.
    output.err(
      `${(err as Error).message}\n\nAn id that starts with '-' goes after '--' (clients show -- -Xy…). Run mcp-oauth-gateway --help for usage.`,
    );
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    output.out(HELP);
    return 0;
  }
  if (values.version) {
    output.out(VERSION);
    return 0;
  }
  const [command, ...rest] = positionals;
  try {
    // Each command loads its own modules only: `check-config` and a `workers` primary never load the gateway.
    switch (command) {
      case undefined:
        return await (await import('./serve.js')).runServe(values, env, output);
      case 'check-config':
        return (await import('./check-config.js')).runCheckConfig(rest[0] ?? values.config, env, output);
      case 'demo-server':
        return await (await import('./demo-server.js')).runDemoServer(values, output);
      case 'keys':
      case 'storage':
      case 'clients':
      case 'grants':
      case 'revoke':
      case 'connections':
        return await (await import('./admin.js')).runAdmin(command, rest, values, env, output);
      default:
        output.err(`unknown command '${command}'\n\nRun mcp-oauth-gateway --help for usage.`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      output.err(err.message);
      return 1;
    }
    output.err(`error: ${(err as Error).message}`);
    return 1;
  }
}

export { resolveConfigPath, loadForCli };

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`fatal: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
