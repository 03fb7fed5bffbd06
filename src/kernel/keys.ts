/**
 * Signing keys (ES256). Generated on first start and kept in storage, so that every instance and every
 * restart signs and verifies with the same keys; or supplied by the configuration (`keys:`).
 *
 * Rotation (`mcp-oauth-gateway keys rotate`): a new key is stored with `activeAt = now + grace`. It is
 * published in the JWKS at once (so verifiers learn it first) and becomes the signer once `activeAt` has
 * passed. Old keys stay published until every token they signed has expired (`retireAt`).
 */
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTVerifyGetKey } from 'jose';
import { signingKeyProblems } from '../config/rules.js';
import type { Store } from '../storage/store.js';

export const KEY_PREFIX = 'gw:signing-key:';
const INIT_LOCK = 'gw:signing-key-init';

export interface SigningKeyRecord {
  kid: string;
  alg: 'ES256';
  /** Private JWK (with `d`). */
  jwk: JWK;
  createdAt: number;
  /** When the key starts signing (epoch ms). */
  activeAt: number;
  /** When the key leaves the JWKS (epoch ms); set when a newer key takes over. */
  retireAt?: number;
}

export async function generateSigningKey(activeAt = Date.now()): Promise<SigningKeyRecord> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = randomUUID();
  return { kid, alg: 'ES256', jwk: { ...jwk, kid, alg: 'ES256', use: 'sig' }, createdAt: Date.now(), activeAt };
}

function publicOf(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, k: _k, ...pub } = jwk;
  return pub;
}

export class KeyManager {
  #records: SigningKeyRecord[] = [];
  #verifySet: JWTVerifyGetKey = createLocalJWKSet({ keys: [] });
  #signerCache = new Map<string, Awaited<ReturnType<typeof importJWK>>>();

  private constructor(
    private readonly store: Store,
    private readonly fromConfig: boolean,
  ) {}

  /** Loads keys from config or storage, generating the first key when there is none. */
  static async load(store: Store, configKeys?: Record<string, unknown>[]): Promise<KeyManager> {
    const km = new KeyManager(store, Boolean(configKeys?.length));
    if (configKeys?.length) {
      // The loader reports these with file and line; this guards a configuration object built in code.
      const problems = signingKeyProblems(configKeys);
      if (problems.length > 0) throw new TypeError(problems.map((p) => p.message).join('; '));
      km.#setRecords(
        configKeys.map((jwk, i) => {
          return {
            kid: jwk.kid as string,
            alg: 'ES256' as const,
            jwk: { ...(jwk as JWK), alg: (jwk.alg as string) ?? 'ES256', use: 'sig' },
            createdAt: 0,
            activeAt: i === 0 ? 0 : Number.MAX_SAFE_INTEGER,
          };
        }),
      );
      return km;
    }
    await km.reload();
    if (km.#records.length === 0) {
      const first = await generateSigningKey(0);
      // Two instances starting together: only one writes the first key; the other reads it. The lock
      // expires, so a lock left behind by storage that lost the keys themselves blocks nobody for long.
      if (await store.setIfAbsent(INIT_LOCK, { kid: first.kid }, { ttlSeconds: 60 })) await store.set(KEY_PREFIX + first.kid, first);
      for (let i = 0; i < 50 && km.#records.length === 0; i++) {
        await km.reload();
        if (km.#records.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
      // Nobody wrote a key although someone holds the lock: write ours only if none exists meanwhile
      // (instances that hold different keys converge on the same signer, see `#setRecords`).
      if (km.#records.length === 0) {
        await store.setIfAbsent(KEY_PREFIX + first.kid, first);
        await km.reload();
      }
      if (km.#records.length === 0) throw new Error('no signing key could be created or loaded from storage');
    }
    return km;
  }

  /**
   * Re-reads keys from storage (other instances may have rotated). Storage that lost records (a Redis
   * restarted without persistence, a failover to an empty replica, eviction) must not split the
   * instances: a live key this instance holds but storage no longer has is written back, only where no
   * record exists (atomic), and then the stored set is adopted. Every instance thus publishes every key
   * that may still have valid tokens, and all of them sign with the same one (the order in
   * `#setRecords` is deterministic), without a restart.
   */
  async reload(): Promise<void> {
    if (this.fromConfig) return;
    let listed = (await this.store.list<SigningKeyRecord>(KEY_PREFIX)).map((r) => r.value);
    const stored = new Set(listed.map((r) => r.kid));
    const lost = this.#records.filter((r) => !stored.has(r.kid));
    if (lost.length > 0) {
      let restored = 0;
      for (const r of lost) if (await this.store.setIfAbsent(KEY_PREFIX + r.kid, r)) restored++;
      this.onRestored?.(
        lost.map((r) => r.kid),
        restored,
      );
      listed = (await this.store.list<SigningKeyRecord>(KEY_PREFIX)).map((r) => r.value);
    }
    this.#setRecords(listed);
  }

  /** Told when storage had lost signing keys this instance still holds (kids, and how many it wrote back). */
  onRestored: ((kids: string[], written: number) => void) | undefined;

  #setRecords(records: SigningKeyRecord[]): void {
    const now = Date.now();
    // Deterministic order (activeAt, then createdAt, then kid): instances holding the same set agree on the signer.
    this.#records = records
      .filter((r) => r.retireAt === undefined || r.retireAt > now)
      .sort((a, b) => b.activeAt - a.activeAt || b.createdAt - a.createdAt || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
    this.#verifySet = createLocalJWKSet({ keys: this.#records.map((r) => publicOf(r.jwk)) });
  }

  /** Whether the keys come from the configuration file (`keys:`): they rotate by editing it, not by `rotate`. */
  get fromConfiguration(): boolean {
    return this.fromConfig;
  }

  /** The published keys without their private parts, newest first, with what each does now (the console's Keys page). */
  describe(): {
    kid: string;
    alg: string;
    createdAt: number;
    activeAt: number;
    retireAt?: number;
    state: 'signing' | 'next' | 'retiring';
  }[] {
    const signer = this.signer;
    const now = Date.now();
    return this.#records.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      createdAt: r.createdAt,
      activeAt: r.activeAt,
      ...(r.retireAt === undefined ? {} : { retireAt: r.retireAt }),
      state: r === signer ? 'signing' : r.activeAt > now ? 'next' : 'retiring',
    }));
  }

  /** The key that signs now: the most recent one whose activeAt has passed. */
  get signer(): SigningKeyRecord {
    const now = Date.now();
    const active = this.#records.find((r) => r.activeAt <= now) ?? this.#records[this.#records.length - 1];
    if (!active) throw new Error('no signing key loaded');
    return active;
  }

  /** Private JWKs with the current signer first (oidc-provider signs with the first matching key). */
  privateJwks(): { keys: JWK[] } {
    const signer = this.signer;
    return { keys: [signer.jwk, ...this.#records.filter((r) => r !== signer).map((r) => r.jwk)] };
  }

  /** The public JWKS (what `/oauth/jwks` serves). */
  publicJwks(): { keys: JWK[] } {
    return { keys: this.privateJwks().keys.map(publicOf) };
  }

  /**
   * A jose key resolver over the public keys, for in-process token verification. A `kid` it does not
   * know re-reads storage first (at most every 5 s): a key another instance just wrote back or rotated in
   * is found without waiting for the next poll.
   */
  get verifyKeySet(): JWTVerifyGetKey {
    return this.#resolver;
  }

  #lastMissReload = 0;
  readonly #resolver: JWTVerifyGetKey = async (header, token) => {
    try {
      return await this.#verifySet(header, token);
    } catch (err) {
      const now = Date.now();
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY' || this.fromConfig || now - this.#lastMissReload < 5000) throw err;
      this.#lastMissReload = now;
      await this.reload();
      return this.#verifySet(header, token);
    }
  };

  /** Signs a JWT with the current signer (used for identity assertions towards backends). */
  async sign(
    claims: Record<string, unknown>,
    options: { typ: string; audience: string; issuer: string; ttlSeconds: number; subject?: string },
  ): Promise<string> {
    const signer = this.signer;
    let key = this.#signerCache.get(signer.kid);
    if (!key) {
      key = await importJWK(signer.jwk, 'ES256');
      this.#signerCache.set(signer.kid, key);
    }
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: options.typ })
      .setIssuer(options.issuer)
      .setAudience(options.audience)
      .setIssuedAt()
      .setExpirationTime(`${options.ttlSeconds}s`)
      .setJti(randomUUID());
    if (options.subject) jwt.setSubject(options.subject);
    return jwt.sign(key);
  }

  /**
   * Adds a new key that is published now and signs after `graceSeconds`; the previous signer is kept
   * published until `retireAfterSeconds` past the switch. Called only through `rotateSigningKey`
   * (key-rotation.ts), which computes that retirement from everything the key signs and audits it.
   */
  async rotate(graceSeconds: number, retireAfterSeconds: number): Promise<SigningKeyRecord> {
    if (this.fromConfig) throw new Error('signing keys come from the configuration (keys:); rotate them there');
    await this.reload();
    const activeAt = Date.now() + graceSeconds * 1000;
    const next = await generateSigningKey(activeAt);
    for (const r of this.#records) {
      if (r.retireAt === undefined) await this.store.set(KEY_PREFIX + r.kid, { ...r, retireAt: activeAt + retireAfterSeconds * 1000 });
    }
    await this.store.set(KEY_PREFIX + next.kid, next);
    await this.reload();
    return next;
  }
}
