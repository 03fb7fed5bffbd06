import { describe, expect, it } from 'vitest';
import { createGateway } from '../../src/http/app.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import type { Store, StoreHealth } from '../../src/storage/store.js';
import { testConfig } from '../helpers/config.js';
import { startGateway } from '../helpers/gateway.js';

const services = {
  calc: { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', auth_required: false, scopes: ['read', 'calculate'] },
  weather: { name: 'Weather', url: 'http://127.0.0.1:9/mcp', auth_required: false },
};

describe('operational routes', () => {
  it('GET /health is live and reports storage', async () => {
    const gw = await startGateway({ mcp_services: services });
    const res = await fetch(`${gw.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.status).toBe('healthy');
    expect(body.storage).toMatchObject({ healthy: true, backend_type: 'memory' });
    expect(typeof body.version).toBe('string');
  });

  it('GET /services and /services/{id} build URLs from the issuer without double slashes', async () => {
    const gw = await createGateway(testConfig({ issuer: 'https://gw.example.com/', mcp_services: services }), { silent: true });
    try {
      const list = await gw.app.inject({ url: '/services' });
      expect(list.json()).toEqual({
        services: {
          calc: { name: 'Calculator', url: 'https://gw.example.com/calc/mcp', auth_required: false, scopes: ['read', 'calculate'] },
          weather: { name: 'Weather', url: 'https://gw.example.com/weather/mcp', auth_required: false, scopes: [] },
        },
      });
      const one = await gw.app.inject({ url: '/services/calc' });
      expect(one.json()).toMatchObject({ id: 'calc', url: 'https://gw.example.com/calc/mcp', oauth_provider: null });
      const missing = await gw.app.inject({ url: '/services/nope' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toMatchObject({ error: 'not_found' });
    } finally {
      await gw.close();
    }
  });

  it('unknown routes get a JSON 404; malformed bodies a JSON 4xx, never a stack trace', async () => {
    const gw = await startGateway({ mcp_services: services });
    const res = await fetch(`${gw.url}/no/such/route?x=1`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/json');
    const body = (await res.json()) as Record<string, string>;
    expect(body.error).toBe('not_found');
    expect(JSON.stringify(body)).not.toContain('x=1');
  });

  it('/ready fails with 503 when storage is unreachable and recovers', async () => {
    class FlakyStore extends MemoryStore {
      down = false;
      override async health(): Promise<StoreHealth> {
        return this.down ? { ok: false, backend: 'memory', detail: 'connection refused' } : super.health();
      }
    }
    const store = new FlakyStore();
    const gw = await createGateway(testConfig({ mcp_services: services }), { silent: true, store: store as Store });
    try {
      expect((await gw.app.inject({ url: '/ready' })).statusCode).toBe(200);
      store.down = true;
      const down = await gw.app.inject({ url: '/ready' });
      expect(down.statusCode).toBe(503);
      expect(down.headers['retry-after']).toBe('5');
      expect(down.json()).toMatchObject({ status: 'not_ready', storage: { healthy: false } });
      const health = await gw.app.inject({ url: '/health' });
      expect(health.statusCode).toBe(200);
      expect(health.json()).toMatchObject({ status: 'degraded' });
      store.down = false;
      expect((await gw.app.inject({ url: '/ready' })).statusCode).toBe(200);
    } finally {
      await gw.close();
      await store.close();
    }
  });

  it('GET /metrics serves Prometheus text', async () => {
    const gw = await startGateway({ mcp_services: services });
    await fetch(`${gw.url}/health`);
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('mcp_gateway_storage_up{backend="memory"} 1');
    expect(text).toContain('# TYPE mcp_gateway_proxy_requests_total counter');
  });

  it('a SQLite-backed gateway keeps its signing keys across restarts', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'gw-keys-'));
    try {
      const cfg = testConfig({ storage: { type: 'sqlite', sqlite: { path: join(dir, 'gw.db') } } });
      const a = await createGateway(cfg, { silent: true });
      const kid = a.ctx.keys.signer.kid;
      await a.close();
      const b = await createGateway(cfg, { silent: true });
      expect(b.ctx.keys.signer.kid).toBe(kid);
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
