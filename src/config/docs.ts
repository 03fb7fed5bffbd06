/**
 * Generates the configuration reference (docs/configuration.md) and the JSON Schema (config.schema.json)
 * from the zod schema, so the documentation can never drift from what is validated. A test fails when
 * the committed files differ from what this produces (`npm run docs:config` rewrites them).
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  required?: string[];
  minimum?: number;
  maximum?: number;
  [k: string]: unknown;
};

/** The JSON Schema of what a user writes (input side), with defaults copied from the output side. */
export function configJsonSchema(): JsonSchema {
  const input = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const output = z.toJSONSchema(configSchema, { io: 'output', unrepresentable: 'any' }) as JsonSchema;
  copyDefaults(input, output);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/mcp-oauth-gateway/mcp-oauth-gateway/config.schema.json',
    title: 'mcp-oauth-gateway configuration',
    description: 'Values after ${VAR} substitution. Generated from src/config/schema.ts; do not edit.',
    ...withoutKey(input, '$schema'),
  };
}

function withoutKey(o: JsonSchema, key: string): JsonSchema {
  const { [key]: _drop, ...rest } = o;
  return rest;
}

function copyDefaults(into: JsonSchema, from: JsonSchema): void {
  if (from.default !== undefined && into.default === undefined) into.default = from.default;
  for (const [k, v] of Object.entries(into.properties ?? {})) {
    const f = from.properties?.[k];
    if (f) copyDefaults(v, f);
  }
  if (typeof into.additionalProperties === 'object' && typeof from.additionalProperties === 'object')
    copyDefaults(into.additionalProperties, from.additionalProperties);
  if (into.items && from.items) copyDefaults(into.items, from.items);
  into.anyOf?.forEach((a, i) => {
    const f = from.anyOf?.[i];
    if (f) copyDefaults(a, f);
  });
}

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((e) => `\`${String(e)}\``).join(' \\| ');
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(' \\| ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && typeof s.additionalProperties === 'object' && !s.properties) return `map of ${typeOf(s.additionalProperties)}`;
  if (s.type === 'integer' && (s.minimum !== undefined || s.maximum !== undefined))
    return `integer (${s.minimum ?? ''}–${s.maximum ?? ''})`;
  return Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
}

function fmtDefault(v: unknown): string {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return `\`${s.length > 60 ? `${s.slice(0, 57)}...` : s}\``;
}

function esc(s: string | undefined): string {
  return (s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** One row per leaf or object key, depth-first, with dotted paths (`<id>` for map keys, `[]` for lists). */
function rows(s: JsonSchema, path: string, required: boolean, out: string[]): void {
  if (path) {
    out.push(
      `| \`${path}\` | ${typeOf(s)} | ${required && s.default === undefined ? 'yes' : ''} | ${fmtDefault(s.default)} | ${esc(s.description)} |`,
    );
  }
  const req = new Set(s.required ?? []);
  for (const [k, v] of Object.entries(s.properties ?? {})) rows(v, path ? `${path}.${k}` : k, req.has(k), out);
  if (typeof s.additionalProperties === 'object' && s.additionalProperties.properties)
    rows(s.additionalProperties, `${path}.<name>`, false, out);
  if (s.items?.properties) rows(s.items, `${path}[]`, false, out);
}

export function configMarkdown(): string {
  const schema = configJsonSchema();
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'The gateway reads one YAML file (`--config FILE`, `$MCP_CONFIG_PATH`, or `./config.yaml`).',
    '`mcp-oauth-gateway check-config FILE` validates it and lists every problem with its line. It applies',
    'every rule the server applies when it starts (with the same environment, so `NODE_ENV=production`',
    'refusals too). What it cannot know is the machine: whether Redis or Vault answer, certificate files',
    'can be read, the port is free.',
    '',
    '- **Variables**: `${VAR}` and `${VAR:-default}` are replaced in string values after YAML parsing',
    '  (never in keys or comments). A missing `${VAR}` without default is an error naming the variable;',
    '  `:-` uses the default when the variable is unset or empty. `$${` writes a literal `${`. Inside',
    '  flow collections (`[a, b]`) quote substituted values: `["${A}", b]`.',
    '- **Environment overrides** (win over the file): `MCP_GATEWAY_HOST` → `host`, `MCP_GATEWAY_PORT` →',
    '  `port`, `MCP_ISSUER` → `issuer`, `MCP_SESSION_SECRET` → `session_secret`, `MCP_DEBUG` → `debug`.',
    '  Command-line `--host`, `--port` and `--debug` win over both.',
    '- Numbers and booleans may be given as strings (`"8080"`, `"false"`); `"false"` means false.',
    '- Unknown keys are errors (a typo never silently does nothing).',
    '- A JSON Schema of this format is in [`config.schema.json`](../config.schema.json), for editors.',
    '',
    '| Key | Type | Required | Default | Description |',
    '|---|---|---|---|---|',
  ];
  rows(schema, '', false, out);
  out.push(
    '',
    '## Rules checked across keys',
    '',
    '- At most one entry under `oauth_providers`; if any service has `auth_required: true`, exactly one,',
    '  and each such service names it in `oauth_provider`.',
    '- The provider kind follows its key (`google`, `github`, `okta`, `dev`); any other key is an OpenID',
    '  Connect provider when `issuer` is set, else a custom OAuth 2.0 provider that needs',
    '  `authorization_url`, `token_url` and `userinfo_url`. `type:` overrides the kind.',
    '- `session_secret` must be at least 32 characters and not a known placeholder unless `debug: true`.',
    '- `issuer` is an origin (scheme, host, optional port) without path; a trailing slash is removed.',
    "- Service ids are one URL path segment and must not be one of the gateway's own route names.",
    '- `storage.type: vault` needs the `storage.vault` section with the credentials of its `auth_method`.',
    '',
  );
  return out.join('\n');
}

export function configSchemaJson(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
