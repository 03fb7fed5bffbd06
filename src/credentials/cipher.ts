/**
 * Encryption of upstream tokens at rest: AES-256-GCM (NIST SP 800-38D) with a random 96-bit nonce per
 * record, the record's storage key as additional authenticated data (a ciphertext copied to another
 * user's key does not decrypt), and the key id in the ciphertext so that old keys keep decrypting after a
 * rotation:
 *
 *   v1.<kid>.<nonce, base64url>.<ciphertext ‖ 128-bit tag, base64url>
 *
 * Keys come from `upstream_tokens.encryption_keys` (32 bytes each) or are derived from
 * `upstream_tokens.secret` with HKDF-SHA256 (RFC 5869); the first configured key encrypts.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const HKDF_SALT = 'mcp-oauth-gateway/upstream-tokens';
const HKDF_INFO = 'aes-256-gcm v1';

export interface UpstreamTokensKeyConfig {
  encryption_keys?: { id: string; key: string }[] | undefined;
  secret?: string | undefined;
  previous_secrets?: string[] | undefined;
}

interface Key {
  id: string;
  key: Buffer;
}

/** The key HKDF derives from a secret, with an id that fingerprints the key (never the secret itself). */
export function deriveKey(secret: string): Key {
  const key = Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, HKDF_INFO, 32));
  return { id: `h${createHash('sha256').update(key).digest('hex').slice(0, 10)}`, key };
}

export class TokenCipher {
  readonly #keys: Map<string, Buffer>;
  readonly #current: Key;

  constructor(keys: readonly Key[]) {
    const first = keys[0];
    if (!first) throw new TypeError('upstream_tokens: no encryption key (set upstream_tokens.secret or upstream_tokens.encryption_keys)');
    for (const k of keys) if (k.key.length !== 32) throw new TypeError(`upstream_tokens: key '${k.id}' is not 32 bytes`);
    this.#current = first;
    this.#keys = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** Keys in order: configured keys, then the current secret's, then previous secrets'. */
  static fromConfig(cfg: UpstreamTokensKeyConfig): TokenCipher {
    const keys: Key[] = (cfg.encryption_keys ?? []).map((k) => ({ id: k.id, key: Buffer.from(k.key.trim(), 'base64') }));
    if (cfg.secret) keys.push(deriveKey(cfg.secret));
    for (const s of cfg.previous_secrets ?? []) keys.push(deriveKey(s));
    return new TokenCipher(keys);
  }

  /** The id of the key new records are encrypted with. */
  get currentKeyId(): string {
    return this.#current.id;
  }

  seal(plaintext: string, aad: string): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#current.key, nonce);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${this.#current.id}.${nonce.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** Throws on an unknown key id, a wrong key, a tampered ciphertext or another record's AAD. */
  open(sealed: string, aad: string): string {
    const [version, kid, nonce, body] = sealed.split('.');
    if (version !== VERSION || !kid || !nonce || !body) throw new Error('not an upstream-token ciphertext');
    const key = this.#keys.get(kid);
    if (!key) throw new Error(`encrypted with key '${kid}', which is not configured (upstream_tokens)`);
    const raw = Buffer.from(body, 'base64url');
    if (raw.length < 16) throw new Error('ciphertext too short');
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(nonce, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString('utf8');
  }

  /** The key id a ciphertext names (for `connections list`), without decrypting. */
  static keyIdOf(sealed: string): string | undefined {
    return sealed.split('.')[1];
  }
}
