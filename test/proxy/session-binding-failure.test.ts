/**
 * Issue 13, defect 7: when the binding of a new legacy session (`Mcp-Session-Id` from the backend) cannot
 * be written, the proxy fails closed: the client gets the gateway's 503 storage error instead of the
 * backend's response (it never learns the id of a session nobody owns), and the backend is told to end
 * that session (DELETE with its id). Storage fails only for the session-binding keys, through a wrapper
 * around a real store; the backend is a real MCP SDK server.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SESSION_PREFIX } from '../../src/proxy/sessions.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import type { Store } from '../../src/storage/store.js';
import { startGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { bearer } from '../helpers/tokens.js';
import { JSON_RPC_HEADERS } from './fixtures.js';

/** A real in-memory store whose `set` fails for session-binding keys while `failing` is true. */
function sessionWritesFail(): { store: Store; control: { failing: boolean; refused: number } } {
  const inner = new MemoryStore();
  onTestFinished(() => inner.close());
  const control = { failing: true, refused: 0 };
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'set') {
        return (key: string, ...rest: unknown[]) => {
          if (control.failing && key.startsWith(SESSION_PREFIX)) {
            control.refused++;
            return Promise.reject(new Error('storage write refused (test)'));
          }
          return (target.set as (...a: unknown[]) => Promise<void>).call(target, key, ...rest);
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store, control };
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
});

describe('a session binding that cannot be written fails closed', () => {
  for (const json of [false, true]) {
    it(`${json ? 'JSON' : 'SSE'} backend: the client gets 503 storage-unavailable, no session id, and the backend session is closed`, async () => {
      const backend = await startMcpBackend({ json });
      const { store, control } = sessionWritesFail();
      const gw = await startGateway(
        {
          oauth_providers: { dev: {} },
          mcp_services: { svc: { name: 'svc', url: backend.url, oauth_provider: 'dev' } },
          limits: { shutdown_grace: 1 },
        },
        { store },
      );
      const authorization = await bearer(gw, { service: 'svc' });

      const res = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: { ...JSON_RPC_HEADERS, authorization }, body: INITIALIZE });
      expect(res.status).toBe(503);
      expect(res.headers.get('mcp-session-id')).toBeNull();
      expect(res.headers.get('retry-after')).toBe('5');
      expect(await res.json()).toMatchObject({ jsonrpc: '2.0', error: { message: expect.stringContaining('Storage is unavailable') } });
      expect(control.refused).toBe(1);

      // The backend issued a session for the initialize; the gateway ended it.
      const init = backend.requests.find((r) => r.method === 'POST');
      expect(init).toBeDefined();
      await expect.poll(() => backend.requests.find((r) => r.method === 'DELETE')?.sessionId).toBeTruthy();
      const closed = backend.requests.find((r) => r.method === 'DELETE')!.sessionId!;
      const direct = await fetch(backend.url, {
        method: 'POST',
        headers: { ...JSON_RPC_HEADERS, 'mcp-session-id': closed, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      expect(direct.status).toBe(404); // the SDK server no longer knows the session
      await direct.text();

      // An SDK client sees the initialization fail (it never gets a session to use).
      const client = new Client({ name: 'sdk-test', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/svc/mcp`), { requestInit: { headers: { authorization } } });
      await expect(client.connect(transport)).rejects.toThrow();
      await client.close().catch(() => undefined);

      // Storage back: sessions open and are bound as usual.
      control.failing = false;
      const ok = await fetch(`${gw.url}/svc/mcp`, { method: 'POST', headers: { ...JSON_RPC_HEADERS, authorization }, body: INITIALIZE });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('mcp-session-id')).toBeTruthy();
      await ok.text();
    });
  }
});
