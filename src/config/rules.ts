/**
 * Start-up rules that both the configuration loader (check-config, start-up) and the components they
 * protect apply: the loader reports every violation at once with file, line and key; the components keep
 * a guard for programmatic callers of createGateway (a config object that never went through the loader).
 * One definition each, so the two can never disagree again (docs/configuration.md: check-config runs every rule the server enforces).
 *
 * This module depends on nothing but Node: every layer imports from src/config, never the other way.
 */
import { createPrivateKey, createPublicKey, sign, verify, type JsonWebKey } from 'node:crypto';
import { isIP } from 'node:net';

/** RFC 9110 §5.1: field-name = token; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** Request headers an identity header must never replace: the client's credentials, the cookie, the target host. */
export const RESERVED_IDENTITY_HEADER_NAMES: readonly string[] = ['authorization', 'host', 'cookie'];

/** How an identity header name is sent (HTTP field names are case-insensitive, RFC 9110 §5.1). */
export function normalizeHeaderName(name: string): string {
  return name.trim().toLowerCase();
}

/** Why `name` cannot be an identity header injected towards a backend, or undefined when it can. */
export function headerNameProblem(name: string): string | undefined {
  const n = normalizeHeaderName(name);
  if (!FIELD_NAME.test(n))
    return `'${name}' is not a valid HTTP header name (RFC 9110 §5.1: letters, digits and !#$%&'*+-.^_\`|~ only, no spaces or colons), for example x-user-id`;
  if (RESERVED_IDENTITY_HEADER_NAMES.includes(n))
    return `'${n}' cannot be an identity header name (it would replace the request's ${n} header): choose another name (the defaults start with x-user-)`;
  return undefined;
}

/** 127.0.0.0/8, ::1 (also bracketed and IPv4-mapped), `localhost` and `*.localhost` (RFC 6761 §6.3). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  return isIP(h) === 6 && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/.test(h);
}

export interface RuleProblem {
  /** Key path of the value that breaks the rule. */
  path: (string | number)[];
  message: string;
}

/**
 * `workers` > 1 (or `auto`) runs several processes (node:cluster): they must share tokens, grants, keys
 * and revocations, which in-process `memory` storage cannot do. (`auto` on a one-core machine still runs
 * one worker process, and is refused with memory all the same: the configuration would break on a bigger one.)
 */
export function workersProblems(config: { workers: 'auto' | number; storage: { type: string } }): RuleProblem[] {
  if (config.workers === 1 || config.storage.type !== 'memory') return [];
  return [
    {
      path: ['workers'],
      message: `workers: ${config.workers} runs several gateway processes, which cannot share storage type memory (each would have its own tokens, grants and revocations); use storage type sqlite (WAL, several processes) or redis, or set workers: 1`,
    },
  ];
}

/**
 * The development sign-in (`type: dev`) lets anyone be anyone, so it runs only where nobody else can
 * reach it (docs/authorization.md, development sign-in): never with NODE_ENV=production, only on a loopback bind address
 * and a loopback issuer. The address rules follow from the file (schema.ts); the environment rule from
 * the loader's environment (load.ts); src/upstream/dev.ts applies both to programmatic callers.
 */
export function devSignInProblems(name: string, config: { host: string; issuer: string }, nodeEnv: string | undefined): RuleProblem[] {
  const production = devSignInProductionProblem(name, nodeEnv);
  return [...(production ? [production] : []), ...devSignInAddressProblems(name, config)];
}

const devWhere = (name: string) => `oauth_providers.${name} (type: dev, the development sign-in)`;

export function devSignInProductionProblem(name: string, nodeEnv: string | undefined): RuleProblem | undefined {
  if (nodeEnv !== 'production') return undefined;
  return {
    path: ['oauth_providers', name],
    message: `${devWhere(name)} is refused when NODE_ENV=production: anyone could sign in as anyone. Configure a real identity provider.`,
  };
}

export function devSignInAddressProblems(name: string, config: { host: string; issuer: string }): RuleProblem[] {
  const out: RuleProblem[] = [];
  if (!isLoopbackHost(config.host)) {
    out.push({
      path: ['host'],
      message: `${devWhere(name)} is only allowed on a loopback address, but host is '${config.host}'. Bind to 127.0.0.1 (or ::1, localhost), or configure a real identity provider.`,
    });
  }
  const issuer = URL.parse(config.issuer);
  if (issuer && !isLoopbackHost(issuer.hostname)) {
    out.push({
      path: ['issuer'],
      message: `${devWhere(name)} is only allowed with a loopback issuer, but issuer is '${config.issuer}'. Configure a real identity provider for a public address.`,
    });
  }
  return out;
}

/**
 * `trust_proxy` entries, as fastify's proxy-addr compiles them at start-up: an address, `address/prefix`,
 * an IPv4 `address/netmask`, or one of the names `loopback`, `linklocal`, `uniquelocal`.
 */
export function trustProxyEntryProblem(entry: string): string | undefined {
  if (entry === 'loopback' || entry === 'linklocal' || entry === 'uniquelocal') return undefined;
  const slash = entry.lastIndexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const kind = isIP(address);
  if (kind === 0)
    return `'${entry}' is not an IP address, address/prefix (10.0.0.0/8) or one of loopback, linklocal, uniquelocal (list one address per entry)`;
  if (slash === -1) return undefined;
  const range = entry.slice(slash + 1);
  const max = kind === 6 ? 128 : 32;
  const ok = /^\d+$/.test(range) ? Number(range) > 0 && Number(range) <= max : kind === 4 && isNetmask(range);
  return ok
    ? undefined
    : `'${entry}' has an invalid prefix length: use 1 to ${max}${kind === 4 ? ' or a netmask such as 255.255.0.0' : ''}`;
}

/** A non-zero IPv4 netmask: ones, then only zeros (255.255.0.0, not 255.0.255.0). */
function isNetmask(mask: string): boolean {
  if (isIP(mask) !== 4) return false;
  const m = mask.split('.').reduce((acc, octet) => ((acc << 8) | Number(octet)) >>> 0, 0);
  const inverted = ~m >>> 0;
  return m !== 0 && (inverted & (inverted + 1)) === 0;
}

/**
 * Configured signing keys (`keys:`). The gateway signs access tokens, ID tokens and identity assertions
 * with ES256 only (RFC 7518 §3.4), so every key is an EC P-256 private JWK with a `kid`; oidc-provider
 * would otherwise refuse the key set at start-up, or the first signature would fail in a person's sign-in.
 */
export function signingKeyProblems(keys: readonly Record<string, unknown>[]): RuleProblem[] {
  const out: RuleProblem[] = [];
  const kids = new Map<string, number>();
  keys.forEach((jwk, i) => {
    const at = (key?: string): (string | number)[] => (key ? ['keys', i, key] : ['keys', i]);
    const str = (key: string) => typeof jwk[key] === 'string' && jwk[key] !== '';
    if (!str('kid'))
      out.push({ path: at('kid'), message: `keys[${i}] needs a kid (a non-empty string naming the key in the JWKS and in token headers)` });
    else if (kids.has(jwk.kid as string))
      out.push({
        path: at('kid'),
        message: `keys[${i}] has the same kid as keys[${kids.get(jwk.kid as string)}]: every key needs its own kid`,
      });
    else kids.set(jwk.kid as string, i);
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') {
      out.push({
        path: at(jwk.kty !== 'EC' ? 'kty' : 'crv'),
        message: `keys[${i}] must be an EC P-256 key (kty: EC, crv: P-256): the gateway signs with ES256 only (generate one with: openssl ecparam -name prime256v1 -genkey, then convert to a JWK)`,
      });
      return;
    }
    if (jwk.alg !== undefined && jwk.alg !== 'ES256')
      out.push({
        path: at('alg'),
        message: `keys[${i}] has alg ${JSON.stringify(jwk.alg)}: an EC P-256 key signs ES256 (remove alg or set alg: ES256)`,
      });
    for (const list of ['key_ops', 'x5c']) {
      const v = jwk[list];
      if (v !== undefined && !(Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x !== '')))
        out.push({ path: at(list), message: `keys[${i}].${list} must be a list of strings` });
    }
    if (!str('d')) {
      out.push({ path: at('d'), message: `keys[${i}] must be a private JWK (with d): the gateway signs with it` });
      return;
    }
    if (!str('x') || !str('y')) {
      out.push({ path: at(str('x') ? 'y' : 'x'), message: `keys[${i}] needs the public coordinates x and y` });
      return;
    }
    const material = keyMaterialProblem(jwk);
    if (material) out.push({ path: at(), message: `keys[${i}] is not a usable EC P-256 private key: ${material}` });
  });
  return out;
}

/** Imports the key and signs a probe with `d`, verified with `x`/`y`: a key whose halves do not match fails here, not at the first sign-in. */
function keyMaterialProblem(jwk: Record<string, unknown>): string | undefined {
  const { kty, crv, x, y, d } = jwk as JsonWebKey;
  try {
    const probe = Buffer.from('mcp-oauth-gateway key check');
    const signature = sign('sha256', probe, createPrivateKey({ key: { kty, crv, x, y, d }, format: 'jwk' }));
    if (!verify('sha256', probe, createPublicKey({ key: { kty, crv, x, y }, format: 'jwk' }), signature))
      return 'd does not belong to x and y';
    return undefined;
  } catch {
    return 'x, y and d are not a valid P-256 point and private scalar (base64url)';
  }
}

/** The environment variables the gateway sets for a per-user `command` process, from the verified token (docs/stdio.md). */
export const STDIO_IDENTITY_ENV = ['MCP_USER_ID', 'MCP_USER_EMAIL', 'MCP_USER_NAME', 'MCP_USER_GROUPS'] as const;

/** The variable a per-user `command` process of an `upstream_auth` service gets the user's upstream token in (docs/stdio.md). */
export const STDIO_UPSTREAM_TOKEN_ENV = 'MCP_UPSTREAM_TOKEN';

/** POSIX portable environment variable names (IEEE Std 1003.1, 8.1): letters, digits and `_`, not starting with a digit. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A service is reached either over Streamable HTTP (`url`) or by running a local stdio server (`command`),
 * never both; the `command` keys only mean something with `command`. `path` is relative to the service.
 */
export function serviceTransportProblems(s: {
  url?: string | undefined;
  command?: readonly string[] | undefined;
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  per_user: boolean;
  auth_required: boolean;
  upstream_auth?: { mode: string } | undefined;
}): RuleProblem[] {
  const out: RuleProblem[] = [];
  if (s.url === undefined && s.command === undefined) {
    out.push({
      path: [],
      message:
        'needs either url (a Streamable HTTP MCP backend) or command (a local stdio MCP server, for example command: ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/shared"])',
    });
    return out;
  }
  if (s.url !== undefined && s.command !== undefined) {
    out.push({
      path: ['command'],
      message: 'url and command are mutually exclusive: keep url for an HTTP backend or command for a local stdio server',
    });
    return out;
  }
  if (s.command === undefined) {
    if (s.env !== undefined)
      out.push({
        path: ['env'],
        message: 'env applies only to a command service (a local stdio server); remove it or replace url with command',
      });
    if (s.cwd !== undefined)
      out.push({
        path: ['cwd'],
        message: 'cwd applies only to a command service (a local stdio server); remove it or replace url with command',
      });
    return out;
  }
  const program = s.command[0];
  if (program === undefined) {
    out.push({
      path: ['command'],
      message: 'command needs at least the program to run, for example ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"]',
    });
  } else if (s.command.length === 1 && /\s/.test(program.trim())) {
    const words = program.trim().split(/\s+/);
    out.push({
      path: ['command', 0],
      message: `command is an argv list, never run by a shell: write ${JSON.stringify(words)} instead of ${JSON.stringify([program])}`,
    });
  }
  for (const name of Object.keys(s.env ?? {})) {
    if (!ENV_NAME.test(name))
      out.push({
        path: ['env', name],
        message: `'${name}' is not a valid environment variable name (letters, digits and _, not starting with a digit)`,
      });
    else if ((STDIO_IDENTITY_ENV as readonly string[]).includes(name) || name.startsWith('MCP_USER_') || name === STDIO_UPSTREAM_TOKEN_ENV)
      out.push({
        path: ['env', name],
        message: `${name} is set by the gateway from the verified sign-in (MCP_USER_* variables), it cannot be configured`,
      });
  }
  if (s.cwd !== undefined && !s.cwd.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(s.cwd))
    out.push({ path: ['cwd'], message: `cwd must be an absolute path (got '${s.cwd}')` });
  if (s.upstream_auth !== undefined && s.upstream_auth.mode === 'oauth')
    out.push({
      path: ['upstream_auth', 'mode'],
      message:
        'upstream_auth.mode: oauth is for a remote MCP server with its own authorization server; a command service gets the upstream token in MCP_UPSTREAM_TOKEN: use passthrough or token_exchange',
    });
  else if (s.upstream_auth !== undefined && !s.per_user)
    out.push({
      path: ['upstream_auth'],
      message: `upstream_auth needs per_user: true on a command service: a shared process runs for no one, so it cannot hold one user's token in ${STDIO_UPSTREAM_TOKEN_ENV}`,
    });
  if (s.per_user && !s.auth_required)
    out.push({
      path: ['per_user'],
      message:
        'per_user: true needs auth_required: true (a public service has no signed-in user to start a process for); set per_user: false for one shared process without identity',
    });
  return out;
}

/**
 * Names in `tools` / `prompts` / `resources` rules (docs/authorization.md, tool-level authorization): a
 * literal name, or a glob where `*` matches any run of characters (`/` included, for resource URIs) and
 * `?` exactly one; `\` makes the next character literal. Character classes and braces are refused rather
 * than taken literally: an operator writing `admin_[ab]` or `{read,write}` expects a match they would not get.
 */
export function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'a rule name must not be empty';
  if (pattern.length > 512) return 'a rule name is limited to 512 characters';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      if (i === pattern.length - 1) return `'${pattern}' ends with an escape character '\\' that escapes nothing`;
      i++;
    } else if ('[]{}'.includes(c))
      return `'${pattern}' uses '${c}': globs support only * (any run of characters) and ? (one character); write \\${c} for a literal ${c}`;
  }
  if (/\*{2,}/.test(pattern.replace(/\\./g, ''))) return `'${pattern}' repeats '*': one * already matches any run of characters`;
  return undefined;
}

/** Whether a rule name has glob characters (a literal name is looked up exactly, before any glob). */
export function isGlob(pattern: string): boolean {
  return /(^|[^\\])[*?]/.test(pattern);
}

/** A rule name as the literal it stands for (escapes removed), for a name without glob characters. */
export function globLiteral(pattern: string): string {
  return pattern.replace(/\\(.)/g, '$1');
}

/** Compiles a glob (checked by `globProblem`) to an anchored RegExp; done once at start-up, never per request. */
export function compileGlob(pattern: string): RegExp {
  let src = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') src += escapeRegExp(pattern[++i] ?? '');
    else if (c === '*') src += '[\\s\\S]*';
    else if (c === '?') src += '[\\s\\S]';
    else src += escapeRegExp(c);
  }
  return new RegExp(`^${src}$`, 'u');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The three rule sets of a service, by key (the MCP primitive each one governs). */
export const ACCESS_RULE_KINDS = ['tools', 'prompts', 'resources'] as const;
export type AccessRuleKind = (typeof ACCESS_RULE_KINDS)[number];

/** The shape the rule checks read (the schema's `tools` / `prompts` / `resources`), without importing it. */
interface RuleSetShape {
  default?: 'allow' | 'deny';
  rules?: Record<
    string,
    { scopes?: string[]; users?: string[]; emails?: string[]; email_domains?: string[]; groups?: string[]; deny?: boolean }
  >;
}

/** Every scope named by a service's `tools` / `prompts` / `resources` rules. */
export function ruleScopes(service: Partial<Record<AccessRuleKind, RuleSetShape | undefined>>): Set<string> {
  const out = new Set<string>();
  for (const kind of ACCESS_RULE_KINDS)
    for (const rule of Object.values(service[kind]?.rules ?? {})) for (const s of rule.scopes ?? []) out.add(s);
  return out;
}

/**
 * The rules of one service's `tools` / `prompts` / `resources`: names are valid globs, every scope a rule
 * needs is one of the service's `scopes` (a token for the service can carry no other), and rules that
 * need an identity (scopes, users, groups…) sit on a service that requires sign-in.
 */
export function accessRuleProblems(
  id: string,
  service: { scopes: string[]; auth_required: boolean } & Partial<Record<AccessRuleKind, RuleSetShape | undefined>>,
): RuleProblem[] {
  const out: RuleProblem[] = [];
  for (const kind of ACCESS_RULE_KINDS) {
    const set = service[kind];
    if (!set) continue;
    for (const [name, rule] of Object.entries(set.rules ?? {})) {
      const at = ['mcp_services', id, kind, 'rules', name];
      const glob = globProblem(name);
      if (glob) out.push({ path: at, message: `${kind} rule ${glob}` });
      (rule.scopes ?? []).forEach((scope, i) => {
        if (!service.scopes.includes(scope))
          out.push({
            path: [...at, 'scopes', i],
            message: `${kind} rule '${name}' needs scope '${scope}', which is not listed in scopes of service '${id}' (${service.scopes.join(', ') || 'none'}): a token for the service can never carry it. Add it to scopes, or fix the name`,
          });
      });
      const identity = Boolean(
        rule.scopes?.length || rule.users?.length || rule.emails?.length || rule.email_domains?.length || rule.groups?.length,
      );
      if (identity && !service.auth_required)
        out.push({
          path: at,
          message: `${kind} rule '${name}' of service '${id}' needs a signed-in user (scopes, users, emails, email_domains or groups), but the service has auth_required: false. Require sign-in, or use only deny / default on a public service`,
        });
    }
  }
  return out;
}

/**
 * The subject prefix of machine clients (`client:{client_id}`, registration.clients): no identity provider
 * may carry this name, or a person's id could equal a machine client's.
 */
export const MACHINE_CLIENT_PREFIX = 'client';

/**
 * Provider names become the first part of user ids `{provider}:{subject}` (split at the first `:`), of
 * policies' `providers:` and of the `x-user-provider` header.
 */
export function providerNameProblems(names: readonly string[]): RuleProblem[] {
  const out: RuleProblem[] = [];
  for (const name of names) {
    if (name.includes(':') || name.trim() === '' || name !== name.trim())
      out.push({
        path: ['oauth_providers', name],
        message: `provider name '${name}' cannot be used: it is the first part of user ids '{provider}:{subject}', so it must not contain ':' or surrounding spaces`,
      });
    else if (name.toLowerCase() === MACHINE_CLIENT_PREFIX)
      out.push({
        path: ['oauth_providers', name],
        message: `provider name '${name}' is reserved: machine clients (registration.clients) have user ids 'client:{client_id}'. Choose another key`,
      });
  }
  return out;
}

/**
 * A service's `oauth_provider`: one configured provider name or a list of them; omitted means every
 * provider. With a single configured provider the original's message is kept word for word.
 */
export function serviceProviderProblems(
  service: string,
  value: string | string[] | undefined,
  configured: readonly string[],
): RuleProblem[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  const out: RuleProblem[] = [];
  list.forEach((p, i) => {
    if (configured.includes(p)) return;
    const path = Array.isArray(value) ? ['mcp_services', service, 'oauth_provider', i] : ['mcp_services', service, 'oauth_provider'];
    out.push({
      path,
      message:
        configured.length === 1
          ? `Service '${service}' specifies OAuth provider '${p}' but only '${configured[0]}' is configured. Set oauth_provider: ${configured[0]}`
          : `Service '${service}' specifies OAuth provider '${p}', which is not under oauth_providers (configured: ${configured.join(', ')}). Use one of those names, a list of them, or omit oauth_provider for all`,
    });
  });
  const seen = new Set<string>();
  list.forEach((p, i) => {
    if (seen.has(p)) out.push({ path: ['mcp_services', service, 'oauth_provider', i], message: `provider '${p}' is listed twice` });
    seen.add(p);
  });
  return out;
}

interface MachineClientShape {
  client_id: string;
  client_secret?: string | undefined;
  token_endpoint_auth_method?: string | undefined;
  jwks?: { keys: readonly Record<string, unknown>[] } | undefined;
  services: readonly string[];
}

/**
 * `registration.clients`: ids unique (also against the browser clients under `clients`), every service
 * configured and protected, credentials that fit the authentication method, public keys only in `jwks`.
 */
export function machineClientProblems(cfg: {
  clients: readonly { client_id: string }[];
  registration: { clients: readonly MachineClientShape[] };
  mcp_services: Record<string, { auth_required: boolean }>;
}): RuleProblem[] {
  const out: RuleProblem[] = [];
  const seen = new Map<string, string>(cfg.clients.map((c, i) => [c.client_id, `clients[${i}]`]));
  cfg.registration.clients.forEach((c, i) => {
    const at = (...rest: (string | number)[]) => ['registration', 'clients', i, ...rest];
    const other = seen.get(c.client_id);
    if (other)
      out.push({
        path: at('client_id'),
        message: `client_id '${c.client_id}' is already used by ${other}: every client needs its own client_id`,
      });
    seen.set(c.client_id, `registration.clients[${i}]`);
    if (c.client_id.includes(':') && !/^https:\/\//.test(c.client_id))
      out.push({
        path: at('client_id'),
        message: `client_id '${c.client_id}' must not contain ':' (the token subject is 'client:{client_id}')`,
      });
    c.services.forEach((id, j) => {
      const s = cfg.mcp_services[id];
      if (!s)
        out.push({
          path: at('services', j),
          message: `service '${id}' is not under mcp_services (configured: ${Object.keys(cfg.mcp_services).join(', ') || 'none'})`,
        });
      else if (!s.auth_required)
        out.push({ path: at('services', j), message: `service '${id}' is public (auth_required: false): it needs no token` });
    });
    const method = c.token_endpoint_auth_method ?? (c.jwks ? 'private_key_jwt' : 'client_secret_basic');
    if (method === 'private_key_jwt') {
      if (!c.jwks)
        out.push({
          path: at('jwks'),
          message: `client '${c.client_id}' uses private_key_jwt: give its public keys as jwks: { keys: [ ... ] }`,
        });
      c.jwks?.keys.forEach((k, j) => {
        if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((f) => f in k))
          out.push({
            path: at('jwks', 'keys', j),
            message: `jwks of client '${c.client_id}' must hold public keys only: remove the private members (d, p, q, …, k); the client keeps the private key`,
          });
      });
      if (c.client_secret)
        out.push({ path: at('client_secret'), message: `client '${c.client_id}' uses private_key_jwt: remove client_secret` });
    } else if (!c.client_secret) {
      out.push({
        path: at('client_secret'),
        message: `client '${c.client_id}' uses ${method}: set client_secret (or give jwks for private_key_jwt)`,
      });
    }
  });
  return out;
}

interface EnterpriseIssuerShape {
  issuer: string;
  jwks?: { keys: readonly Record<string, unknown>[] } | undefined;
  jwks_uri?: string | undefined;
  clients: readonly string[];
  provider?: string | undefined;
  allow_insecure_http: boolean;
}

/** The provider name an enterprise issuer's users carry: `provider`, else the oauth_providers key with that issuer, else the host. */
export function enterpriseProviderName(
  i: { issuer: string; provider?: string | undefined },
  providers: Record<string, { issuer?: string | undefined }>,
): string {
  if (i.provider) return i.provider;
  const same = Object.entries(providers).find(
    ([, p]) => p.issuer !== undefined && p.issuer.replace(/\/+$/, '') === i.issuer.replace(/\/+$/, ''),
  );
  return same ? same[0] : (URL.parse(i.issuer)?.hostname ?? i.issuer);
}

/**
 * `enterprise_authorization.issuers`: one key source each, public keys only, keys fetched over https (MCP
 * Enterprise-Managed Authorization §7.4.1: over authenticated TLS) except on loopback, every allowed client
 * a configured client with the jwt-bearer grant, an issuer listed once, a usable provider name.
 */
export function enterpriseIssuerProblems(cfg: {
  oauth_providers: Record<string, { issuer?: string | undefined }>;
  registration: { clients: readonly { client_id: string; grant_types: readonly string[] }[] };
  enterprise_authorization: { issuers: readonly EnterpriseIssuerShape[] };
}): RuleProblem[] {
  const out: RuleProblem[] = [];
  const seen = new Map<string, number>();
  cfg.enterprise_authorization.issuers.forEach((i, n) => {
    const at = (...rest: (string | number)[]) => ['enterprise_authorization', 'issuers', n, ...rest];
    const first = seen.get(i.issuer);
    if (first !== undefined) out.push({ path: at('issuer'), message: `issuer '${i.issuer}' is already listed as issuers[${first}]` });
    seen.set(i.issuer, n);
    if ((i.jwks === undefined) === (i.jwks_uri === undefined))
      out.push({
        path: at(),
        message: `issuer '${i.issuer}' needs exactly one of jwks (its public keys) or jwks_uri (where it publishes them)`,
      });
    i.jwks?.keys.forEach((k, j) => {
      if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((f) => f in k))
        out.push({
          path: at('jwks', 'keys', j),
          message: 'jwks must hold public keys only: remove the private members (d, p, q, …) and any symmetric key (k)',
        });
    });
    const u = i.jwks_uri === undefined ? null : URL.parse(i.jwks_uri);
    if (u && u.protocol === 'http:' && !isLoopbackHost(u.hostname) && !i.allow_insecure_http)
      out.push({
        path: at('jwks_uri'),
        message: `jwks_uri uses plain http on a non-loopback host (${u.host}): the keys that decide who may get tokens must come over https (or set allow_insecure_http: true for a test set-up)`,
      });
    i.clients.forEach((id, j) => {
      const c = cfg.registration.clients.find((x) => x.client_id === id);
      if (!c)
        out.push({
          path: at('clients', j),
          message: `client '${id}' is not under registration.clients: configure it there with grant_types: [urn:ietf:params:oauth:grant-type:jwt-bearer]`,
        });
      else if (!c.grant_types.includes('urn:ietf:params:oauth:grant-type:jwt-bearer'))
        out.push({
          path: at('clients', j),
          message: `client '${id}' (registration.clients) lacks grant_types: [urn:ietf:params:oauth:grant-type:jwt-bearer]`,
        });
    });
    const name = enterpriseProviderName(i, cfg.oauth_providers);
    for (const p of providerNameProblems([name]))
      out.push({ path: at('provider'), message: p.message.replace(/^provider name/, 'enterprise provider name') });
  });
  cfg.registration.clients.forEach((c, n) => {
    if (!c.grant_types.includes('urn:ietf:params:oauth:grant-type:jwt-bearer')) return;
    if (!cfg.enterprise_authorization.issuers.some((i) => i.clients.includes(c.client_id)))
      out.push({
        path: ['registration', 'clients', n, 'grant_types'],
        message: `client '${c.client_id}' has the jwt-bearer grant but no enterprise_authorization.issuers[].clients lists it: add it to the issuer whose ID-JAGs it presents`,
      });
  });
  return out;
}

/** The parts of a configuration the `upstream_auth` rules read (schema.ts passes the parsed file). */
interface UpstreamAuthRuleInput {
  session_secret: string;
  upstream_tokens?: { encryption_keys?: { id: string; key: string }[] | undefined; secret?: string | undefined } | undefined;
  mcp_services: Record<
    string,
    {
      auth_required: boolean;
      oauth_provider?: string | string[] | undefined;
      upstream_auth?:
        | {
            mode: string;
            header: string;
            audience?: string | undefined;
            scope?: string | undefined;
            exchange_form: string;
            client_id?: string | undefined;
            client_secret?: string | undefined;
            scopes?: string[] | undefined;
          }
        | undefined;
    }
  >;
}

/** Headers an upstream token must never replace: the target host, the cookie, and what MCP itself carries. */
const RESERVED_UPSTREAM_HEADERS = new Set([
  'host',
  'cookie',
  'content-type',
  'content-length',
  'transfer-encoding',
  'accept',
  'connection',
]);

/** Key ids are written into every ciphertext (`v1.<kid>.…`): short and without the separator. */
export const ENCRYPTION_KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Why an `upstream_tokens.encryption_keys[].key` is unusable: it must be 32 bytes of base64. */
export function encryptionKeyProblem(key: string): string | undefined {
  const trimmed = key.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) return 'is not base64: generate one with `openssl rand -base64 32`';
  if (Buffer.from(trimmed, 'base64').length !== 32)
    return `decodes to ${Buffer.from(trimmed, 'base64').length} bytes, AES-256 needs 32: generate one with \`openssl rand -base64 32\``;
  return undefined;
}

/**
 * `mcp_services.<id>.upstream_auth` and `upstream_tokens` (docs/upstream-auth.md): every service option is
 * checked against its mode, and stored upstream tokens always have an encryption key.
 */
export function upstreamAuthProblems(cfg: UpstreamAuthRuleInput, kindOf: (provider: string) => string | undefined): RuleProblem[] {
  const out: RuleProblem[] = [];
  let used = false;
  for (const [id, s] of Object.entries(cfg.mcp_services)) {
    const u = s.upstream_auth;
    if (!u) continue;
    used = true;
    const at = (key?: string): (string | number)[] => ['mcp_services', id, 'upstream_auth', ...(key ? [key] : [])];
    if (!s.auth_required)
      out.push({
        path: at(),
        message: `service '${id}' has upstream_auth but auth_required: false: the gateway can only hold tokens for a signed-in user (remove upstream_auth or set auth_required: true)`,
      });
    if (u.mode === 'oauth' && u.client_secret && !u.client_id)
      out.push({ path: at('client_secret'), message: 'upstream_auth.client_secret needs client_id (or remove both to register by DCR)' });
    // The backend receives (or the gateway exchanges, or the connect link signs in with) ONE provider's tokens:
    // a list or an omitted oauth_provider (several providers, docs/authorization.md) would leave it open which.
    if (typeof s.oauth_provider !== 'string')
      out.push({
        path: ['mcp_services', id, 'oauth_provider'],
        message: `service '${id}' has upstream_auth, which acts as the user at one identity provider: set oauth_provider to exactly one provider name (got ${s.oauth_provider === undefined ? 'none, meaning every provider' : `the list ${s.oauth_provider.join(', ')}`})`,
      });
    const kind = typeof s.oauth_provider === 'string' ? kindOf(s.oauth_provider) : undefined;
    if (kind === 'dev')
      out.push({
        path: at('mode'),
        message:
          u.mode === 'oauth'
            ? `upstream_auth.mode: oauth identifies the user at the connect link through the service's provider, but '${s.oauth_provider}' is the development sign-in (type: dev), which has no redirect sign-in`
            : `upstream_auth.mode: ${u.mode} needs tokens from a real identity provider, but '${s.oauth_provider}' is the development sign-in (type: dev), which issues none`,
      });
    if (u.mode === 'token_exchange' && kind === 'github')
      out.push({
        path: at('mode'),
        message: `upstream_auth.mode: token_exchange needs a provider with an RFC 8693 token endpoint; GitHub has none (use passthrough)`,
      });
    if (u.mode === 'token_exchange' && !u.audience && !u.scope)
      out.push({
        path: at(),
        message: `upstream_auth.mode: token_exchange needs audience or scope (what the exchanged token is for), for example audience: https://api.example.com`,
      });
    if (u.mode === 'token_exchange' && u.exchange_form === 'entra_obo' && !u.scope)
      out.push({
        path: at('scope'),
        message: `upstream_auth.exchange_form: entra_obo needs scope (Entra's on-behalf-of request names the API by scope, e.g. api://my-api/.default)`,
      });
    if (u.mode !== 'token_exchange')
      for (const key of ['audience', 'scope'] as const)
        if (u[key] !== undefined) out.push({ path: at(key), message: `upstream_auth.${key} is only used with mode: token_exchange` });
    if (u.mode !== 'oauth')
      for (const key of ['client_id', 'client_secret', 'scopes'] as const)
        if (u[key] !== undefined) out.push({ path: at(key), message: `upstream_auth.${key} is only used with mode: oauth` });
    const header = normalizeHeaderName(u.header);
    if (!FIELD_NAME.test(header))
      out.push({ path: at('header'), message: `'${u.header}' is not a valid HTTP header name (RFC 9110 §5.1), for example authorization` });
    else if (RESERVED_UPSTREAM_HEADERS.has(header) || header.startsWith('mcp-') || header.startsWith('x-forwarded-'))
      out.push({
        path: at('header'),
        message: `'${header}' cannot carry the upstream token (the request needs its own ${header}): use authorization or a header of your own, e.g. x-upstream-token`,
      });
  }
  const t = cfg.upstream_tokens;
  const keys = t?.encryption_keys ?? [];
  if (used && keys.length === 0 && !t?.secret)
    out.push({
      path: t ? ['upstream_tokens'] : ['mcp_services'],
      message:
        'services with upstream_auth store upstream tokens, encrypted: add upstream_tokens: { secret: ${UPSTREAM_TOKEN_SECRET} } (32+ random characters) or upstream_tokens.encryption_keys',
    });
  const ids = new Set<string>();
  keys.forEach((k, i) => {
    if (!ENCRYPTION_KEY_ID.test(k.id))
      out.push({
        path: ['upstream_tokens', 'encryption_keys', i, 'id'],
        message: `key id '${k.id}' must be 1 to 32 letters, digits, '_' or '-'`,
      });
    else if (ids.has(k.id))
      out.push({
        path: ['upstream_tokens', 'encryption_keys', i, 'id'],
        message: `key id '${k.id}' is listed twice: every key needs its own id`,
      });
    ids.add(k.id);
    const problem = encryptionKeyProblem(k.key);
    if (problem)
      out.push({ path: ['upstream_tokens', 'encryption_keys', i, 'key'], message: `upstream_tokens.encryption_keys[${i}].key ${problem}` });
  });
  if (t?.secret !== undefined) {
    if (t.secret.length < 32)
      out.push({
        path: ['upstream_tokens', 'secret'],
        message: 'upstream_tokens.secret must be at least 32 characters (e.g. openssl rand -base64 32)',
      });
    else if (t.secret === cfg.session_secret)
      out.push({
        path: ['upstream_tokens', 'secret'],
        message:
          'upstream_tokens.secret must differ from session_secret: a leaked cookie key must not also open the stored upstream tokens',
      });
  }
  return out;
}
