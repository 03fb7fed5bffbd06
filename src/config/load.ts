/**
 * Loading a configuration: read the YAML file, substitute `${VAR}` in string values, apply the
 * environment overrides, validate against the schema, and report *every* problem at once with its key
 * path and YAML line. Loading never writes a file.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { ZodError } from 'zod';
import { configSchema, providerKind, providerSchema, type GatewayConfig, type IssueParams } from './schema.js';
import { devSignInProductionProblem, type RuleProblem } from './rules.js';
import { substituteDeep, type SubstitutionProblem } from './substitute.js';

export interface ConfigProblem {
  /** Dotted key path, for example `mcp_services.calc.url`; empty for the document itself. */
  path: string;
  /** 1-based line in the YAML file, when the key exists there. */
  line?: number;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'GW_ERR_CONFIG_INVALID';
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(formatProblems(source, problems));
    this.name = 'ConfigError';
  }
}

export function formatProblems(source: string, problems: ConfigProblem[]): string {
  const lines = problems.map((p) => {
    const where = `${source}${p.line ? `:${p.line}` : ''}`;
    return `  ${where}${p.path ? ` ${p.path}` : ''}: ${p.message}`;
  });
  return `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

/** Environment variables that override top-level keys (they win over the file). */
export const ENV_OVERRIDES: Record<string, keyof GatewayConfig> = {
  MCP_GATEWAY_HOST: 'host',
  MCP_GATEWAY_PORT: 'port',
  MCP_ISSUER: 'issuer',
  MCP_SESSION_SECRET: 'session_secret',
  MCP_DEBUG: 'debug',
};

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** CLI overrides (win over everything). */
  overrides?: Partial<Pick<GatewayConfig, 'host' | 'port' | 'debug'>>;
}

/** Loads and validates a configuration file. Throws ConfigError listing every problem. */
export function loadConfigFile(file: string, options: LoadOptions = {}): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigError(file, [{ path: '', message: `cannot read configuration: ${reason}` }]);
  }
  return loadConfigText(text, file, options);
}

/** Loads and validates YAML text; `source` names it in messages. */
export function loadConfigText(text: string, source: string, options: LoadOptions = {}): GatewayConfig {
  const env = options.env ?? process.env;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({
        path: '',
        line: e.linePos?.[0]?.line,
        message: `YAML syntax error: ${e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    );
  }
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError(source, [{ path: '', line: 1, message: 'the configuration must be a YAML mapping (key: value pairs)' }]);
  }
  const lineOf = (path: (string | number)[]): number | undefined => yamlLine(doc, lineCounter, path);
  return validate((raw ?? {}) as Record<string, unknown>, source, env, options, lineOf);
}

/** Validates an already-parsed configuration object (used by tests and by the demo). */
export function parseConfig(raw: Record<string, unknown>, options: LoadOptions = {}): GatewayConfig {
  return validate(raw, '<config>', options.env ?? {}, options, () => undefined);
}

function validate(
  raw: Record<string, unknown>,
  source: string,
  env: NodeJS.ProcessEnv,
  options: LoadOptions,
  lineOf: (path: (string | number)[]) => number | undefined,
): GatewayConfig {
  const subProblems: SubstitutionProblem[] = [];
  const substituted = substituteDeep(raw, env, subProblems) as Record<string, unknown>;
  for (const [name, key] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v !== undefined && v !== '') substituted[key] = v;
  }
  if (options.overrides) {
    for (const [k, v] of Object.entries(options.overrides)) if (v !== undefined) substituted[k] = v;
  }
  const problems: ConfigProblem[] = subProblems.map((p) => ({ path: p.path.join('.'), line: lineOf(p.path), message: p.message }));
  const badPaths = new Set(problems.map((p) => p.path));
  // Where a top-level value came from when not from the file: the note tells the reader where to fix it.
  const origin = (key: string | number | undefined): string | undefined => {
    const envName = Object.entries(ENV_OVERRIDES).find(([n, k]) => k === key && env[n])?.[0];
    if (envName) return `value from environment variable ${envName}`;
    if (typeof key === 'string' && options.overrides && (options.overrides as Record<string, unknown>)[key] !== undefined)
      return `value from the command line option --${key}`;
    return undefined;
  };
  const result = configSchema.safeParse(substituted);
  const issues = result.success ? [] : [...flattenIssues(result.error, substituted), ...crossFieldIssues(substituted, result.error)];
  for (const issue of [...issues, ...productionProblems(substituted, env)]) {
    const dotted = issue.path.join('.');
    if (badPaths.has(dotted)) continue; // already reported as a missing variable
    const from = origin(issue.path[0]);
    problems.push({
      path: dotted,
      line: lineOf(issue.path) ?? (issue.linePath && lineOf(issue.linePath)),
      message: from ? `${issue.message} (${from})` : issue.message,
    });
  }
  if (problems.length > 0) {
    // One message per key: the first is the root cause (a missing variable, then the field check, then the
    // rules); a rule restating it ("client_id is required" after "too small") would only add noise.
    const seen = new Set<string>();
    const unique = problems.filter((p) => !seen.has(p.path) && seen.add(p.path));
    throw new ConfigError(source, unique);
  }
  const cfg = result.data!;
  cfg.issuer = new URL(cfg.issuer).origin;
  return cfg;
}

/**
 * Development conveniences are refused in production, when the configuration is loaded (so
 * check-config says it too), not at the first sign-in. NODE_ENV is read from the loader's environment,
 * falling back to the process's (the gateway checks the process's again at start-up). They are read from
 * the raw values: they hold even when other keys of the provider are invalid.
 */
function productionProblems(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): FlatIssue[] {
  const nodeEnv = env.NODE_ENV ?? process.env.NODE_ENV;
  if (nodeEnv !== 'production') return [];
  const providers = raw.oauth_providers;
  if (!providers || typeof providers !== 'object') return [];
  const out: FlatIssue[] = [];
  for (const [name, p] of Object.entries(providers as Record<string, unknown>)) {
    const fields = p && typeof p === 'object' ? (p as Record<string, unknown>) : {};
    const type = providerSchema.shape.type.safeParse(fields.type);
    const kind = providerKind(name, {
      type: type.success ? type.data : undefined,
      issuer: typeof fields.issuer === 'string' ? fields.issuer : undefined,
    });
    const dev: RuleProblem | undefined = kind === 'dev' ? devSignInProductionProblem(name, nodeEnv) : undefined;
    if (dev) out.push(dev);
    const flag = providerSchema.shape.allow_insecure_http.safeParse(fields.allow_insecure_http);
    if (!flag.success || !flag.data) continue;
    out.push({
      path: ['oauth_providers', name, 'allow_insecure_http'],
      message:
        'allow_insecure_http is refused when NODE_ENV=production: use https provider URLs (plain http on 127.0.0.1, ::1 or localhost is accepted without this flag)',
    });
  }
  return out;
}

/**
 * zod skips the schema-level rules (superRefine: provider/service consistency, secret strength) while a
 * field has an aborting problem (a wrong type, an unknown key, a value outside an enum). Custom issues
 * (refinements, the rules themselves) never abort, so when every issue is one the rules have run. Else,
 * to still report every problem at once, drop the invalid values (defaults fill in), re-validate, and keep
 * the rule violations found on that repaired copy.
 */
function crossFieldIssues(input: Record<string, unknown>, first: ZodError): FlatIssue[] {
  if (first.issues.every((i) => i.code === 'custom')) return []; // the rules already ran
  const repaired = structuredClone(input);
  const removed: string[] = [];
  let issues = first.issues;
  for (let round = 0; round < 20; round++) {
    for (const issue of issues) {
      // A refinement or a rule names a value that is the right type (a bad URL, "client_id is required"
      // next to the empty value that failed): it does not stop the rules, and removing at its path could
      // climb to the parent and drop the whole provider or service, which the next round would report as a
      // second, misleading problem ("no OAuth providers are configured"). Only aborting failures are repaired.
      if (issue.code === 'custom') continue;
      const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
      if (issue.code === 'unrecognized_keys') for (const k of issue.keys) removeAt(repaired, [...path, k]);
      else if (issue.code === 'invalid_type' && issue.input === undefined && issue.expected === 'string')
        setAt(repaired, path, 'http://placeholder.invalid/');
      else removeAt(repaired, path);
      removed.push(path.join('.'));
    }
    const next = configSchema.safeParse(repaired);
    if (next.success) return [];
    if (next.error.issues.every((i) => i.code === 'custom'))
      return flattenIssues(next.error, repaired).filter((i) => !removed.some((r) => dependsOnRemoved(i.path, r)));
    issues = next.error.issues;
  }
  return [];
}

/**
 * Whether a rule violation found on the repaired copy may only exist because of a value that was dropped:
 * the same key, a key below it (the rule is about a whole provider or service, or about `oauth_providers`
 * itself), or a sibling in the same provider or service (`required_scopes` checked against `scopes` that
 * were dropped; a custom provider's URLs checked after a bad `type` was dropped). Such a message would be
 * a second, misleading one for the same mistake; a real one shows up once the first is fixed.
 */
function dependsOnRemoved(issuePath: (string | number)[], removed: string): boolean {
  const path = issuePath.join('.');
  if (path === removed || removed.startsWith(`${path}.`)) return true;
  const parent = issuePath.slice(0, -1).join('.');
  return issuePath.length >= 3 && removed.startsWith(`${parent}.`);
}

function setAt(root: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node: unknown = root;
  for (const p of path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return;
    node = (node as Record<string | number, unknown>)[p];
  }
  if (node !== null && typeof node === 'object') (node as Record<string | number, unknown>)[path[path.length - 1]!] = value;
}

function removeAt(root: Record<string, unknown>, path: (string | number)[]): void {
  if (path.length === 0) return;
  let node: unknown = root;
  for (const p of path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return;
    node = (node as Record<string | number, unknown>)[p];
  }
  const last = path[path.length - 1]!;
  if (node === null || typeof node !== 'object') return;
  const container = node as Record<string | number, unknown>;
  // A required key that is missing cannot be "removed": drop its parent instead (a service without url).
  if (container[last] === undefined && path.length > 1) removeAt(root, path.slice(0, -1));
  else if (Array.isArray(container)) container.splice(Number(last), 1);
  else delete container[last];
}

interface FlatIssue {
  path: (string | number)[];
  message: string;
  /** The key whose line to show when `path` is not in the file (IssueParams.linePath). */
  linePath?: (string | number)[];
}

function paramsOf(issue: ZodError['issues'][number]): IssueParams {
  return issue.code === 'custom' && issue.params ? (issue.params as IssueParams) : {};
}

function flattenIssues(error: ZodError, root: unknown): FlatIssue[] {
  const out: FlatIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push({ path: [...path, key], message: `unknown key '${key}' (check the spelling; see docs/configuration.md)` });
      continue;
    }
    if (issue.code === 'invalid_union' && 'errors' in issue) {
      out.push({ path, message: issue.message });
      continue;
    }
    out.push({ path, message: humanMessage(issue, valueAt(root, path)), linePath: paramsOf(issue).linePath });
  }
  return out;
}

/**
 * zod 4 does not keep the offending input in its issues, so the value is looked up in the validated object.
 * Values of secret-looking keys are described by their type only (a numeric password must not be echoed).
 */
function humanMessage(issue: ZodError['issues'][number], found: { present: boolean; value?: unknown; secret: boolean }): string {
  const got = found.present ? ` (got ${found.secret ? typeName(found.value) : describe(found.value)})` : '';
  if (issue.code === 'invalid_type') {
    if (!found.present) return `required (expected ${issue.expected})`;
    return `expected ${issue.expected}${got}`;
  }
  if (issue.code === 'invalid_value' && 'values' in issue) return `must be one of: ${issue.values.map((v) => String(v)).join(', ')}${got}`;
  if (issue.code === 'too_small' || issue.code === 'too_big' || paramsOf(issue).showValue) return `${issue.message}${got}`;
  return issue.message;
}

const SECRET_KEY = /secret|password|token|key|jwk/i;

function valueAt(root: unknown, path: (string | number)[]): { present: boolean; value?: unknown; secret: boolean } {
  let node: unknown = root;
  for (const p of path) {
    if (node === null || typeof node !== 'object' || !(p in (node as object))) return { present: false, secret: false };
    node = (node as Record<string | number, unknown>)[p];
  }
  const last = path[path.length - 1];
  return { present: node !== undefined, value: node, secret: typeof last === 'string' && SECRET_KEY.test(last) && !last.endsWith('_url') };
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `a ${typeof v}`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${String(v)}`;
}

/** Finds the line of the deepest existing node on `path` (the key itself when it exists). */
function yamlLine(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n);
    if (sub.length === 0) return undefined;
    const parent = sub.length === 1 ? doc.contents : doc.getIn(sub.slice(0, -1), true);
    const key = sub[sub.length - 1];
    if (parent && isNode(parent) && 'items' in parent && Array.isArray(parent.items)) {
      for (const [i, item] of (parent.items as unknown[]).entries()) {
        if (item && typeof item === 'object' && 'key' in item) {
          const k = (item as { key: unknown }).key;
          const kv = isNode(k) && 'value' in k ? (k as { value: unknown }).value : k;
          if (String(kv) === String(key) && isNode(k) && k.range) return lc.linePos(k.range[0]).line;
        } else if (i === key && isNode(item) && item.range) {
          return lc.linePos(item.range[0]).line;
        }
      }
    }
  }
  return undefined;
}
