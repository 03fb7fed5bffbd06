/**
 * Upstream tokens at rest (docs/upstream-auth.md, data model): AES-256-GCM with the record key as AAD, the
 * key id in the ciphertext, rotation that keeps old records readable, HKDF from a dedicated secret.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TokenCipher, deriveKey } from '../../src/credentials/cipher.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { UpstreamTokenStore, listConnections, connectionKey } from '../../src/credentials/token-store.js';

const keyA = { id: 'a', key: randomBytes(32).toString('base64') };
const keyB = { id: 'b', key: randomBytes(32).toString('base64') };

describe('TokenCipher', () => {
  it('round-trips, names its key, and never contains the plaintext', () => {
    const c = TokenCipher.fromConfig({ encryption_keys: [keyA] });
    const sealed = c.seal('secret-token-value', 'k1');
    expect(sealed).toMatch(/^v1\.a\.[\w-]{16}\.[\w-]+$/);
    expect(sealed).not.toContain('secret-token-value');
    expect(c.open(sealed, 'k1')).toBe('secret-token-value');
    // A fresh nonce every time: the same token never encrypts the same way twice.
    expect(c.seal('secret-token-value', 'k1')).not.toBe(sealed);
  });

  it('refuses another record key (AAD), a flipped bit, and an unknown key id', () => {
    const c = TokenCipher.fromConfig({ encryption_keys: [keyA] });
    const sealed = c.seal('t', 'gw:upstream:idp:corp:corp:alice');
    expect(() => c.open(sealed, 'gw:upstream:idp:corp:corp:mallory')).toThrow();
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    expect(() => c.open([...parts.slice(0, 3), body.toString('base64url')].join('.'), 'gw:upstream:idp:corp:corp:alice')).toThrow();
    expect(() => TokenCipher.fromConfig({ encryption_keys: [keyB] }).open(sealed, 'gw:upstream:idp:corp:corp:alice')).toThrow(/key 'a'/);
  });

  it('rotation: the new first key encrypts, the old one still decrypts', () => {
    const before = TokenCipher.fromConfig({ encryption_keys: [keyA] });
    const old = before.seal('old-token', 'k');
    const after = TokenCipher.fromConfig({ encryption_keys: [keyB, keyA] });
    expect(after.open(old, 'k')).toBe('old-token');
    expect(TokenCipher.keyIdOf(after.seal('new-token', 'k'))).toBe('b');
  });

  it('HKDF: the same secret derives the same key on every instance; previous secrets still decrypt', () => {
    const s1 = 'a-dedicated-upstream-token-secret-0123456789';
    const s2 = 'the-next-upstream-token-secret-after-rotation-9876';
    expect(deriveKey(s1).key.equals(deriveKey(s1).key)).toBe(true);
    expect(deriveKey(s1).id).not.toBe(deriveKey(s2).id);
    const sealed = TokenCipher.fromConfig({ secret: s1 }).seal('x', 'k');
    expect(TokenCipher.fromConfig({ secret: s2, previous_secrets: [s1] }).open(sealed, 'k')).toBe('x');
    expect(() => TokenCipher.fromConfig({ secret: s2 }).open(sealed, 'k')).toThrow();
    expect(deriveKey(s1).id).not.toContain(s1.slice(0, 6));
  });
});

describe('UpstreamTokenStore', () => {
  it('stores only ciphertext and metadata; a record moved to another user does not open; list shows no token', async () => {
    const store = new MemoryStore();
    const tokens = new UpstreamTokenStore(store, TokenCipher.fromConfig({ encryption_keys: [keyA] }), 3600);
    await tokens.put('sign_in', 'corp', 'corp:alice', {
      access_token: 'AT-alice',
      refresh_token: 'RT-alice',
      expires_at: Date.now() + 60_000,
    });
    const dump = JSON.stringify(await store.list(''));
    expect(dump).not.toContain('AT-alice');
    expect(dump).not.toContain('RT-alice');
    expect((await tokens.get('sign_in', 'corp', 'corp:alice'))?.refresh_token).toBe('RT-alice');
    const raw = await store.get(connectionKey('sign_in', 'corp', 'corp:alice'));
    await store.set(connectionKey('sign_in', 'corp', 'corp:mallory'), raw!.value);
    expect(await tokens.get('sign_in', 'corp', 'corp:mallory')).toBeUndefined();
    await store.delete(connectionKey('sign_in', 'corp', 'corp:mallory'));
    const listed = await listConnections(store, 'corp:alice');
    expect(listed).toEqual([
      expect.objectContaining({ kind: 'sign_in', name: 'corp', user: 'corp:alice', has_refresh_token: true, key_id: 'a' }),
    ]);
    expect(JSON.stringify(listed)).not.toContain('AT-alice');
    expect(await tokens.deleteUser('corp:alice')).toBe(1);
    expect(await tokens.get('sign_in', 'corp', 'corp:alice')).toBeUndefined();
    await store.close();
  });
});
