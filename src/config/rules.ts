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
