/**
 * Demo mode (README): what `npm start` runs when there is no configuration at all. A gateway on
 * http://127.0.0.1:8080 with SQLite storage in ./data, the built-in demo MCP service on a loopback port,
 * and the development sign-in form. It can never run on a public address: the development provider
 * refuses non-loopback hosts and NODE_ENV=production.
 */
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { startDemoMcpServer } from './mcp-server.js';

export interface DemoOptions {
  host?: string;
  port?: number;
  dataDir?: string;
  /** `--debug`: debug-level logs (proxied requests, refused authorizations) instead of warnings only. */
  debug?: boolean;
}

/**
 * The demo's SQLite file, relative to the folder `npm start` runs in. A file rather than memory so that the
 * admin commands (`clients list`, `grants list`, `revoke`), run from the same folder without a
 * configuration, can inspect what the demo did. It is the one file the demo writes.
 */
export const DEMO_DB = './data/demo.db';

export async function startDemoBackend(): Promise<{ url: string; close(): Promise<void> }> {
  return startDemoMcpServer(0);
}

/** Origins of the MCP Inspector's web UI (its default port), allowed by the demo for browser-side OAuth. */
export const INSPECTOR_ORIGINS = ['http://localhost:6274', 'http://127.0.0.1:6274'];

export function demoConfig(backendUrl: string, options: DemoOptions = {}): GatewayConfig {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const publicHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return parseConfig({
    host,
    port,
    issuer: `http://${publicHost.includes(':') ? `[${publicHost}]` : publicHost}:${port}`,
    // A fresh secret per start: the demo's cookies only need to live for one sign-in.
    session_secret: randomBytes(32).toString('base64url'),
    // Quiet console: the banner says what to do; warnings and errors still show (everything with --debug).
    logging: { level: options.debug ? 'debug' : 'warn' },
    oauth_providers: { dev: {} },
    mcp_services: {
      demo: {
        name: 'Demo MCP service',
        url: backendUrl,
        oauth_provider: 'dev',
        scopes: ['mcp:tools'],
      },
    },
    storage: { type: 'sqlite', sqlite: { path: options.dataDir ? `${options.dataDir}/demo.db` : DEMO_DB } },
    // The MCP Inspector's web UI runs the OAuth flow (and, connected directly, MCP) from the browser.
    cors: { allow_origins: INSPECTOR_ORIGINS },
  });
}

export function demoBanner(issuer: string, db = DEMO_DB): string {
  const url = `${issuer}/demo/mcp`;
  return [
    '',
    '  mcp-oauth-gateway demo (no configuration found, so the built-in demo is running)',
    '',
    `  MCP URL:      ${url}`,
    '  Sign-in:      a local development form (name + email): for trying things out only',
    '',
    '  Connect a client:',
    `    MCP Inspector:  npx @modelcontextprotocol/inspector   (add the server: Streamable HTTP, ${url}; connect and it signs in)`,
    `    Claude Code:    claude mcp add --transport http demo ${url}`,
    `    VS Code:        code --add-mcp '{"name":"demo","type":"http","url":"${url}"}'`,
    '',
    '  Then call the tool "whoami" to see the identity the gateway injects.',
    `  Data:         ${db} (SQLite). Inspect it from this folder: npm start -- clients list, npm start -- grants list`,
    '  Logs:         JSON lines on stdout (warnings only; --debug shows every proxied request); this text is on stderr.',
    '  Your own setup: cp examples/google.yaml config.yaml, edit it, npm start (docs/configuration.md).',
    '',
  ].join('\n');
}
