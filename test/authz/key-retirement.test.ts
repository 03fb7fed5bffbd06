/**
 * Issue 13, defect 5: the CLI's `keys rotate` and the server's rotateSigningKey are one rotation: the
 * same audit event, and the same retirement: the previous key stays in the JWKS until the longest-lived
 * thing it signed has expired (here a signed identity assertion / ID token of 3600 s, four times the
 * access-token lifetime), plus the verifiers' clock tolerance; then it leaves. Time is moved with a
 * controlled clock (only `Date` is faked; timers and sockets stay real).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { KEY_PREFIX, type SigningKeyRecord } from '../../src/kernel/keys.js';
import { retirementSeconds, rotateSigningKey, signedLifetimeSeconds, VERIFIER_CLOCK_TOLERANCE_S } from '../../src/kernel/key-rotation.js';
import { main } from '../../src/cli/main.js';
import { TEST_SECRET, testConfig } from '../helpers/config.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';

/** The longest lifetime the configuration below allows: signed_identity.ttl (and the ID tokens). */
const LONGEST = 3600;

function lines() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const audit = () =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.audit === true);
  return { stream, chunks, audit };
}

async function world(logStream?: NodeJS.WritableStream): Promise<{ gw: StartedGateway; dir: string; db: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-key-retire-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'gw.db');
  const gw = await startGateway(
    {
      storage: { type: 'sqlite', sqlite: { path: db } },
      tokens: { key_rotation_grace: 0 },
      logging: { level: logStream ? 'info' : 'silent' },
      oauth_providers: { dev: {} },
      mcp_services: {
        svc: { name: 'Svc', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev', signed_identity: { enabled: true, ttl: LONGEST } },
      },
    },
    logStream ? { logStream } : {},
  );
  return { gw, dir, db };
}

/** A JWT signed with the current key's private JWK (read from storage), living `LONGEST` seconds from now. */
async function signWithCurrentKey(gw: StartedGateway): Promise<{ jwt: string; kid: string; exp: number }> {
  const records = (await gw.ctx.store.list<SigningKeyRecord>(KEY_PREFIX)).map((r) => r.value);
  expect(records).toHaveLength(1);
  const old = records[0]!;
  const iat = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ sub: 'dev:alice' })
    .setProtectedHeader({ alg: 'ES256', kid: old.kid, typ: 'JWT' })
    .setIssuer(gw.url)
    .setAudience(`${gw.url}/svc/mcp`)
    .setIssuedAt(iat)
    .setExpirationTime(iat + LONGEST)
    .sign(await importJWK(old.jwk as JWK, 'ES256'));
  return { jwt, kid: old.kid, exp: iat + LONGEST };
}

/** Moves the clock to `epochSeconds`, lets the gateway re-read its keys, and returns its JWKS. */
async function jwksAt(gw: StartedGateway, epochSeconds: number): Promise<{ keys: JWK[] }> {
  vi.setSystemTime(epochSeconds * 1000);
  await gw.ctx.keys.reload();
  return (await (await fetch(`${gw.url}/oauth/jwks`)).json()) as { keys: JWK[] };
}

/** The old key stays published until the token expired (plus the tolerance), then leaves. */
async function expectRetiredAfterExpiry(gw: StartedGateway, token: { jwt: string; kid: string; exp: number }): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date'] });
  onTestFinished(() => void vi.useRealTimers());
  const verify = async (epochSeconds: number, clockTolerance = 0) => {
    const jwks = await jwksAt(gw, epochSeconds);
    return jwtVerify(token.jwt, createLocalJWKSet(jwks), {
      issuer: gw.url,
      audience: `${gw.url}/svc/mcp`,
      currentDate: new Date(epochSeconds * 1000),
      clockTolerance,
    });
  };
  // One second before it expires, the token still verifies against the gateway's JWKS.
  await expect(verify(token.exp - 1)).resolves.toMatchObject({ payload: { sub: 'dev:alice' } });
  // A verifier allowing clock skew still finds the key just before the tolerance runs out.
  await expect(verify(token.exp + VERIFIER_CLOCK_TOLERANCE_S - 1, VERIFIER_CLOCK_TOLERANCE_S)).resolves.toBeTruthy();
  // Well after that, the key is retired: no longer published.
  const later = await jwksAt(gw, token.exp + VERIFIER_CLOCK_TOLERANCE_S + 120);
  expect(later.keys.map((k) => k.kid)).not.toContain(token.kid);
  expect(later.keys).toHaveLength(1);
  vi.useRealTimers();
}

describe('signing-key rotation: one path, retirement after the longest signed lifetime', () => {
  it('the retirement is the longest lifetime of anything signed, plus the clock tolerance', () => {
    const base = { session_secret: TEST_SECRET, issuer: 'http://127.0.0.1:1', oauth_providers: { dev: {} } };
    const plain = testConfig({ ...base, mcp_services: {} });
    expect(signedLifetimeSeconds(plain)).toBe(3600); // the ID tokens outlive the default 900 s access tokens
    const longAccess = testConfig({ ...base, tokens: { access_token_ttl: 7200 }, mcp_services: {} });
    expect(signedLifetimeSeconds(longAccess)).toBe(7200);
    expect(retirementSeconds(longAccess)).toBe(7200 + VERIFIER_CLOCK_TOLERANCE_S);
  });

  it('server path: rotateSigningKey keeps the old key published until its longest-lived token expired, and audits', async () => {
    const log = lines();
    const { gw } = await world(log.stream);
    const token = await signWithCurrentKey(gw);
    const next = await rotateSigningKey(gw.ctx);
    const after = (await (await fetch(`${gw.url}/oauth/jwks`)).json()) as { keys: JWK[] };
    expect(after.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([token.kid, next.kid]));
    expect(log.audit()).toContainEqual(
      expect.objectContaining({ event: 'keys.rotated', kid: next.kid, active_at: new Date(next.activeAt).toISOString() }),
    );
    await expectRetiredAfterExpiry(gw, token);
  });

  it('CLI path: `keys rotate` on the SQLite file does the same, and writes the same audit line', async () => {
    const { gw, dir, db } = await world();
    const token = await signWithCurrentKey(gw);
    const cfg = join(dir, 'gateway.yaml');
    writeFileSync(
      cfg,
      [
        'host: 127.0.0.1',
        `session_secret: ${TEST_SECRET}`,
        `issuer: ${gw.url}`,
        'storage: {type: sqlite, sqlite: {path: ' + db + '}}',
        'tokens: {key_rotation_grace: 0}',
        'oauth_providers: {dev: {}}',
        'mcp_services:',
        '  svc: {name: Svc, url: "http://127.0.0.1:9/mcp", oauth_provider: dev, signed_identity: {enabled: true, ttl: 3600}}',
        '',
      ].join('\n'),
    );
    const out: string[] = [];
    const err = lines();
    const code = await main(['keys', 'rotate', '--config', cfg], { out: (s) => out.push(s), err: (s) => err.stream.write(`${s}\n`) }, {});
    expect(code, err.chunks.join('')).toBe(0);
    const kid = /new signing key (\S+)/.exec(out.join('\n'))?.[1];
    expect(kid).toBeTruthy();
    const audit = err.audit();
    expect(audit).toContainEqual(expect.objectContaining({ event: 'keys.rotated', kid, msg: 'audit keys.rotated' }));
    // The running gateway signs with the new key (grace 0) and still publishes the old one.
    await gw.ctx.keys.reload();
    expect(decodeProtectedHeader(await gw.ctx.keys.sign({}, { typ: 'JWT', audience: 'a', issuer: gw.url, ttlSeconds: 60 })).kid).toBe(kid);
    await expectRetiredAfterExpiry(gw, token);
  });
});
