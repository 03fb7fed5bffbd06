/**
 * Issue 13, defect 2: storage that loses its records (Redis restarted without persistence, failover to an
 * empty replica, eviction) must not split the signing keys between instances. A running instance writes
 * back the keys it still holds (only where none exists), adopts the stored set, and every instance keeps
 * accepting every token that is still valid, without a restart.
 */
import { decodeProtectedHeader } from 'jose';
import { describe, expect, test } from 'vitest';
import { KEY_PREFIX } from '../../src/kernel/keys.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { startGateway } from '../helpers/gateway.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { mintToken } from '../helpers/tokens.js';

/** One issuer for both instances (as behind one load balancer); it is never contacted. */
const ISSUER = 'http://127.0.0.1:1';

const ping = (gwUrl: string, token: string) =>
  fetch(`${gwUrl}/svc/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });

describe('signing keys converge after storage lost them', () => {
  test('instances that signed with a lost key and a new instance agree again, and no valid token is refused', async () => {
    const store = new MemoryStore();
    const backend = await startEchoBackend();
    const config = () => ({
      issuer: ISSUER,
      oauth_providers: { dev: {} },
      debug: true,
      mcp_services: { svc: { name: 'Svc', url: backend.url, oauth_provider: 'dev' } },
    });
    const a = await startGateway(config, { store });
    const beforeLoss = await mintToken(a, { service: 'svc' });
    const kidA = decodeProtectedHeader(beforeLoss).kid;
    expect((await ping(a.url, beforeLoss)).status).toBe(200);

    // Storage loses everything (a Redis restarted without persistence).
    for (const r of await store.list(KEY_PREFIX)) await store.delete(r.key);
    await store.delete('gw:signing-key-init');

    // A new instance starts on the empty storage and creates a key of its own.
    const b = await startGateway(config, { store });
    expect(b.ctx.keys.signer.kid).not.toBe(kidA);
    // The running instance's periodic reload notices that its key is gone.
    await a.ctx.keys.reload();

    // Both publish both keys and sign with the same one.
    const stored = (await store.list(KEY_PREFIX)).map((r) => r.key.slice(KEY_PREFIX.length));
    expect(stored).toContain(kidA);
    expect(a.ctx.keys.signer.kid).toBe(b.ctx.keys.signer.kid);
    // The token signed before the loss still works everywhere (B learns the written-back key on first sight).
    expect((await ping(b.url, beforeLoss)).status).toBe(200);
    expect((await ping(a.url, beforeLoss)).status).toBe(200);
    // New tokens from either instance work at the other.
    expect((await ping(b.url, await mintToken(a, { service: 'svc' }))).status).toBe(200);
    expect((await ping(a.url, await mintToken(b, { service: 'svc' }))).status).toBe(200);
  });
});
