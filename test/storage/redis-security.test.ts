/**
 * Redis TLS (server cert from a throw-away CA made with openssl; verification on, off, and failing without
 * the CA) and ACL users (username + password; a wrong password gives a clear error without the secret).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRedisStore } from '../../src/storage/redis/redis-store.js';
import { describeRedis, freePort, rawCommand, RedisServer, redisConfig } from '../helpers/redis-server.js';

describeRedis('redis TLS', () => {
  let server: RedisServer;
  let tlsPort: number;
  const dir = mkdtempSync(join(tmpdir(), 'gw-redis-tls-'));
  const f = (name: string) => join(dir, name);
  beforeAll(async () => {
    const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ossl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=gw-test-ca',
    );
    ossl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
      '-subj',
      '/CN=127.0.0.1',
    );
    writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    ossl(
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('server.pem'),
      '-days',
      '1',
      '-extfile',
      f('san.ext'),
    );
    tlsPort = await freePort();
    server = await RedisServer.start({
      args: [
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        f('server.pem'),
        '--tls-key-file',
        f('server.key'),
        '--tls-ca-cert-file',
        f('ca.pem'),
        '--tls-auth-clients',
        'no',
      ],
    });
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects with ssl + ssl_ca_certs and works', async () => {
    const s = await createRedisStore(redisConfig({ host: '127.0.0.1', port: tlsPort, ssl: true, ssl_ca_certs: f('ca.pem') }), {});
    try {
      await s.set('tls', { v: 1 });
      expect((await s.get('tls'))?.value).toEqual({ v: 1 });
    } finally {
      await s.close();
    }
  });

  it('rediss:// URL with ssl_cert_reqs: none skips verification', async () => {
    const s = await createRedisStore(redisConfig({ url: `rediss://127.0.0.1:${tlsPort}`, ssl_cert_reqs: 'none' }), {});
    try {
      expect((await s.health()).ok).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('refuses an unverifiable server certificate with a clear error', async () => {
    await expect(
      createRedisStore(redisConfig({ host: '127.0.0.1', port: tlsPort, ssl: true, socket_connect_timeout: 1 }), {}),
    ).rejects.toThrow(new RegExp(`^cannot connect to Redis at 127\\.0\\.0\\.1:${tlsPort}: .*(certificate|self.signed)`, 'i'));
  });
});

describeRedis('redis ACL user', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
    const reply = await rawCommand(server.port, ['ACL', 'SETUSER', 'gateway', 'on', '>gw-acl-pass', '~*', '&*', '+@all']);
    expect(reply).toMatch(/^\+OK/);
  });
  afterAll(async () => server?.stop());

  it('authenticates with username + password', async () => {
    const s = await createRedisStore(
      redisConfig({ host: '127.0.0.1', port: server.port, username: 'gateway', password: 'gw-acl-pass' }),
      {},
    );
    try {
      await s.set('acl', { v: 1 });
      expect((await s.get('acl'))?.value).toEqual({ v: 1 });
    } finally {
      await s.close();
    }
  });

  it('a wrong password fails at start without echoing it', async () => {
    const err = await createRedisStore(
      redisConfig({ host: '127.0.0.1', port: server.port, username: 'gateway', password: 'wrong-pass-xyz', socket_connect_timeout: 1 }),
      {},
    ).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^cannot connect to Redis at 127\.0\.0\.1:\d+: .*(WRONGPASS|invalid)/i);
    expect(err?.message).not.toContain('wrong-pass-xyz');
  });
});
