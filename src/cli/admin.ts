/**
 * Operator sub-commands that work directly against the configured storage. They are safe while gateways
 * run: every instance re-reads shared state, and revocations reach running proxies through the
 * revocation markers (src/kernel/revocation.ts) within about a second.
 *
 *   clients list | clients show ID | clients delete ID
 *   grants list [--user USER]
 *   revoke --grant ID | --user USER | --client ID
 *   connections list [--user USER] | connections revoke --user USER [--provider P | --service S]
 *   keys rotate
 *   storage migrate --from A.yaml --to B.yaml
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createStore } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { pino } from 'pino';
import { KeyManager } from '../kernel/keys.js';
import { rotateSigningKey } from '../kernel/key-rotation.js';
import { RevocationList, upstreamTokensIndex } from '../kernel/revocation.js';
import {
  ACCOUNT_PREFIX,
  CLIENT_PREFIX,
  GRANT_PREFIX,
  deleteClient,
  listGrants,
  revokeGrants as revokeStoredGrants,
  type ClientPayload,
} from '../kernel/directory.js';
import { AuditLog } from '../observability/audit.js';
import { connectionKey, listConnections } from '../credentials/index.js';
import type { GatewayConfig } from '../config/schema.js';
import { loadConfigFile } from '../config/load.js';
import { DEMO_DB, demoConfig } from '../demo/demo.js';
import { loadForCli, resolveConfigPath, type CliValues, type Output } from './common.js';

type Handler = (store: Store, config: GatewayConfig, args: string[], values: CliValues, output: Output) => Promise<number>;

const COMMANDS: Record<string, Handler> = {
  'clients list': clientsList,
  'clients show': clientsShow,
  'clients delete': clientsDelete,
  'grants list': grantsList,
  revoke,
  'keys rotate': keysRotate,
  'connections list': connectionsList,
  'connections revoke': connectionsRevoke,
};

export async function runAdmin(
  command: string,
  rest: string[],
  values: CliValues,
  env: NodeJS.ProcessEnv,
  output: Output,
): Promise<number> {
  if (command === 'storage' && rest[0] === 'migrate') return storageMigrate(values, env, output);
  const name = command === 'revoke' ? 'revoke' : `${command} ${rest[0] ?? ''}`;
  const handler = COMMANDS[name];
  if (!handler) {
    output.err(`unknown command '${[command, ...rest].join(' ')}'\n\nRun mcp-oauth-gateway --help for usage.`);
    return 2;
  }
  const target = adminConfig(values, env, output);
  if (!target) return 1;
  const { config, path } = target;
  if (config.storage.type === 'memory') {
    output.err(memoryRefusal(path));
    return 1;
  }
  const store = await createStore(config.storage, { baseDir: dirname(path) });
  try {
    const health = await store.health();
    if (!health.ok) throw new Error(`storage (${config.storage.type}) is unreachable: ${health.detail ?? 'no detail'}`);
    return await handler(store, config, command === 'revoke' ? rest : rest.slice(1), values, output);
  } finally {
    await store.close();
  }
}

/**
 * Everything printed came from outside (client names and redirect URIs from registrations, user ids from
 * identity providers, ids typed by the operator): control characters, bidi controls and line separators
 * would forge table rows, reorder text or drive the terminal (P6 in docs/security.md). Shown as `\xHH`/`\u{HHHH}`
 * escapes, with `\` itself doubled so that the output stays unambiguous.
 */
// eslint-disable-next-line no-control-regex
const TERMINAL_UNSAFE = /[\\\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

export function terminalSafe(s: string): string {
  return s.replace(TERMINAL_UNSAFE, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/** JSON output: JSON.stringify escapes C0 but not DEL, C1 or bidi controls; those become `\uHHHH` (still valid JSON). */
function jsonSafe(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `storage.type: memory` lives inside the running gateway process: a command would open an empty store of
 * its own and report "(none)" or "revoked 0 grant(s)" as if that were the gateway's state.
 */
function memoryRefusal(path: string): string {
  return [
    `${path}: storage.type is memory, which lives inside the running gateway process: this command cannot see it`,
    '(it would only open an empty store of its own and report on that).',
    'Use storage.type: sqlite (a file the gateway and these commands share), or redis / vault for several instances.',
  ].join('\n');
}

/**
 * The configuration a command works on. With none at all (no --config, no $MCP_CONFIG_PATH, no ./config.yaml)
 * `npm start` runs the demo, so the commands use the demo's database, ./data/demo.db, when it exists (and
 * never create it: listing must not write files).
 */
function adminConfig(values: CliValues, env: NodeJS.ProcessEnv, output: Output): { config: GatewayConfig; path: string } | undefined {
  if (resolveConfigPath(values.config, env).kind === 'file') return loadForCli(values, env);
  const db = resolve(DEMO_DB);
  if (!existsSync(db)) {
    output.err(
      `no configuration found (pass --config FILE, set MCP_CONFIG_PATH, or create ./config.yaml), and no demo database at ${db} (it is created when npm start runs the demo from this folder)`,
    );
    return undefined;
  }
  output.err(`no configuration found: using the demo's database ${db}`);
  const config = demoConfig('http://127.0.0.1:9/mcp', { dataDir: dirname(db) });
  return { config, path: db };
}

function print(output: Output, values: CliValues, rows: Record<string, unknown>[], columns: string[]): void {
  if (values.json) {
    output.out(jsonSafe(rows));
    return;
  }
  if (rows.length === 0) {
    output.out('(none)');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => terminalSafe(String(r[c] ?? ''))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  output.out(columns.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  for (const r of cells) output.out(r.map((v, i) => v.padEnd(widths[i]!)).join('  '));
}

const iso = (epochSeconds: number | undefined) => (epochSeconds ? new Date(epochSeconds * 1000).toISOString() : '');

async function clientsList(store: Store, _c: GatewayConfig, _a: string[], values: CliValues, output: Output): Promise<number> {
  const rows = (await store.list<ClientPayload>(CLIENT_PREFIX, { limit: 100_000 })).map((r) => ({
    client_id: r.value.client_id,
    name: r.value.client_name ?? '',
    auth: r.value.token_endpoint_auth_method ?? '',
    redirect_uris: (r.value.redirect_uris ?? []).join(' '),
    registered: iso(r.value.client_id_issued_at),
  }));
  print(output, values, rows, ['client_id', 'name', 'auth', 'registered', 'redirect_uris']);
  return 0;
}

async function clientsShow(store: Store, _c: GatewayConfig, args: string[], _v: CliValues, output: Output): Promise<number> {
  const id = args[0];
  if (!id) {
    output.err('usage: clients show CLIENT_ID');
    return 2;
  }
  const rec = await store.get<ClientPayload>(CLIENT_PREFIX + id);
  if (!rec) {
    output.err(`no client '${terminalSafe(id)}'`);
    return 1;
  }
  const { client_secret: secret, registration_access_token: _rat, ...visible } = rec.value;
  output.out(jsonSafe({ ...visible, ...(secret ? { client_secret: '[set, not shown]' } : {}) }));
  return 0;
}

async function revokeGrants(store: Store, config: GatewayConfig, ids: string[], output: Output): Promise<void> {
  // The one revocation (src/kernel/directory.ts, revokeGrant's order: the marker first, then the records).
  await revokeStoredGrants(store, new RevocationList(store, config.tokens.access_token_ttl + 60), ids, cliAudit(output));
}

async function clientsDelete(store: Store, config: GatewayConfig, args: string[], _v: CliValues, output: Output): Promise<number> {
  const id = args[0];
  if (!id) {
    output.err('usage: clients delete CLIENT_ID');
    return 2;
  }
  const markers = new RevocationList(store, config.tokens.access_token_ttl + 60);
  const { deleted, grants } = await deleteClient(store, markers, id, cliAudit(output));
  if (!deleted && grants === 0) {
    output.err(`no client '${terminalSafe(id)}'`);
    return 1;
  }
  output.out(`deleted client ${terminalSafe(id)}${grants ? ` and revoked ${grants} grant(s)` : ''}`);
  return 0;
}

async function grantsList(store: Store, _c: GatewayConfig, _a: string[], values: CliValues, output: Output): Promise<number> {
  const grants = await listGrants(store, (g) => !values.user || g.accountId === values.user);
  print(
    output,
    values,
    grants.map(({ id, grant }) => ({
      grant_id: id,
      user: grant.accountId ?? '',
      client_id: grant.clientId ?? '',
      services: Object.keys(grant.resources ?? {}).join(' '),
      issued: iso(grant.iat),
      expires: iso(grant.exp),
    })),
    ['grant_id', 'user', 'client_id', 'issued', 'expires', 'services'],
  );
  return 0;
}

async function revoke(store: Store, config: GatewayConfig, _a: string[], values: CliValues, output: Output): Promise<number> {
  const given = [values.grant, values.user, values.client].filter(Boolean).length;
  if (given !== 1) {
    output.err('usage: revoke --grant ID | --user USER_ID | --client CLIENT_ID (exactly one)');
    return 2;
  }
  let ids: string[];
  if (values.grant) {
    const exists = await store.get(GRANT_PREFIX + values.grant);
    if (!exists) {
      output.err(`no grant '${terminalSafe(values.grant)}'`);
      return 1;
    }
    ids = [values.grant];
  } else {
    ids = (await listGrants(store, (g) => (values.user ? g.accountId === values.user : g.clientId === values.client))).map((g) => g.id);
    // A mistyped user id must not look like success (P11 in docs/security.md): no grants and no account → say so.
    if (values.user && ids.length === 0 && !(await store.get(ACCOUNT_PREFIX + values.user))) {
      const providers = Object.keys(config.oauth_providers ?? {});
      output.err(
        `no user '${terminalSafe(values.user)}': no account and no grants in storage. User ids are {provider}:{subject}` +
          `${providers.length ? ` (providers here: ${providers.map(terminalSafe).join(', ')})` : ''}, e.g. 'github:12345'; 'grants list' shows the user of every grant`,
      );
      return 1;
    }
  }
  await revokeGrants(store, config, ids, output);
  output.out(`revoked ${ids.length} grant(s); running gateways refuse their access tokens within about a second`);
  return 0;
}

/**
 * The CLI's audit sink: the same pino line the server writes (`audit: true`, `event`, fields), on stderr,
 * so a command's security events reach the operator's log collection like the server's (docs/observability.md).
 */
function cliAudit(output: Output): AuditLog {
  return new AuditLog(pino({ base: { source: 'cli' } }, { write: (line: string) => output.err(line.trimEnd()) }));
}

async function keysRotate(store: Store, config: GatewayConfig, _a: string[], _v: CliValues, output: Output): Promise<number> {
  // The server's rotation (src/kernel/key-rotation.ts): same retirement, same audit event.
  const next = await rotateSigningKey({ config, keys: await KeyManager.load(store, config.keys), audit: cliAudit(output) });
  output.out(
    `new signing key ${next.kid} published now; it signs from ${new Date(next.activeAt).toISOString()} (after ${config.tokens.key_rotation_grace}s)`,
  );
  return 0;
}

async function storageMigrate(values: CliValues, env: NodeJS.ProcessEnv, output: Output): Promise<number> {
  if (!values.from || !values.to) {
    output.err('usage: storage migrate --from SOURCE.yaml --to TARGET.yaml');
    return 2;
  }
  const from = loadConfigFile(values.from, { env });
  const to = loadConfigFile(values.to, { env });
  for (const [file, cfg] of [
    [values.from, from],
    [values.to, to],
  ] as const) {
    if (cfg.storage.type === 'memory') {
      output.err(memoryRefusal(file));
      return 1;
    }
  }
  const { migrateStore } = (await import('../storage/migrate.js')) as {
    migrateStore: (a: Store, b: Store, o?: { onProgress?(n: number): void }) => Promise<{ copied: number; skipped: number }>;
  };
  const source = await createStore(from.storage, { baseDir: dirname(values.from) });
  try {
    const target = await createStore(to.storage, { baseDir: dirname(values.to) });
    try {
      const result = await migrateStore(source, target, { onProgress: (n) => output.err(`  ${n} records...`) });
      output.out(`copied ${result.copied} records from ${from.storage.type} to ${to.storage.type} (${result.skipped} skipped)`);
      return 0;
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

const isoMs = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : '');

/** The upstream tokens held for users (docs/upstream-auth.md): metadata and key id only, never a token. */
async function connectionsList(store: Store, _c: GatewayConfig, _a: string[], values: CliValues, output: Output): Promise<number> {
  const rows = (await listConnections(store, values.user)).map((c) => ({
    user: c.user,
    kind: c.kind === 'sign_in' ? 'provider' : 'service',
    name: c.name,
    refresh_token: c.has_refresh_token ? 'yes' : 'no',
    connected: isoMs(c.created_at),
    updated: isoMs(c.updated_at),
    expires: isoMs(c.expires_at),
    key_id: c.key_id ?? '',
  }));
  print(output, values, rows, ['user', 'kind', 'name', 'refresh_token', 'connected', 'updated', 'expires', 'key_id']);
  return 0;
}

async function connectionsRevoke(store: Store, _c: GatewayConfig, _a: string[], values: CliValues, output: Output): Promise<number> {
  if (!values.user || (values.provider && values.service)) {
    output.err('usage: connections revoke --user USER_ID [--provider NAME | --service ID]');
    return 2;
  }
  const user = values.user;
  // Deleting needs no encryption key: the records are found by key or by the user's index tag.
  const n = values.provider
    ? Number(await store.delete(connectionKey('sign_in', values.provider, user)))
    : values.service
      ? Number(await store.delete(connectionKey('exchange', values.service, user)))
      : await store.deleteByIndex(upstreamTokensIndex(user));
  if (n === 0) {
    output.err(
      `no connection of '${terminalSafe(user)}'${values.provider ? ` at provider '${terminalSafe(values.provider)}'` : ''}${values.service ? ` for service '${terminalSafe(values.service)}'` : ''} ('connections list --user' shows them)`,
    );
    return 1;
  }
  cliAudit(output).emit('upstream.disconnected', { user, provider: values.provider, service: values.service, source: 'cli' });
  output.out(
    `deleted ${n} connection(s) of ${terminalSafe(user)}; the next request to a service that needs it asks the user to connect again`,
  );
  return 0;
}
