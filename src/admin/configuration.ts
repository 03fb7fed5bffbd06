/**
 * The Configuration page's two views: the running configuration with every secret masked, and
 * `check-config` of the file on disk (the same loader and rules as start-up and the CLI, src/config/load.ts).
 */
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';

export const MASK = '[set, not shown]';

/** Keys whose string values are secrets wherever they appear (provider, storage, registration, services). */
const SECRET_KEY = /secret|password|passphrase|private|credential|api[-_]?key|authorization|^token$|initial_access_token|role_id|^d$/i;

/**
 * A deep copy with secrets masked: values under secret-looking keys, every signing key (`keys`), and the
 * password in URLs (`redis://:pw@host`). What is not a secret (ids, URLs, lifetimes, lists) stays.
 */
export function maskedConfig(config: GatewayConfig): unknown {
  return mask(config, '');
}

function mask(value: unknown, key: string): unknown {
  if (key === 'keys' && Array.isArray(value)) return value.map(() => MASK);
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key)) return value ? MASK : value;
    return maskUrlPassword(value);
  }
  if (Array.isArray(value)) return value.map((v) => mask(v, SECRET_KEY.test(key) ? key : ''));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = mask(v, k);
    return out;
  }
  return value;
}

function maskUrlPassword(s: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(s)) return s;
  const u = URL.parse(s);
  if (!u || (!u.password && !u.username)) return s;
  if (u.password) u.password = 'xxxxx';
  return u.href;
}

export type FileCheck = { kind: 'none' } | { kind: 'ok'; path: string } | { kind: 'problems'; path: string; lines: string[] };

/** `check-config` of the file the gateway was started from, as it is on disk now. */
export function checkFileOnDisk(path: string | undefined, env: NodeJS.ProcessEnv = process.env): FileCheck {
  if (!path) return { kind: 'none' };
  try {
    loadConfigFile(path, { env });
    return { kind: 'ok', path };
  } catch (err) {
    if (err instanceof ConfigError) {
      return {
        kind: 'problems',
        path,
        lines: err.problems.map((p) => `${path}${p.line ? `:${p.line}` : ''}${p.path ? ` ${p.path}` : ''}: ${p.message}`),
      };
    }
    return { kind: 'problems', path, lines: [`${path}: ${(err as Error).message}`] };
  }
}
