/**
 * stdout carries JSON log lines only; the banner, the "listening" lines and warnings for people are on
 * stderr (so `npm start | jq` or a log collector never meets plain text). `--debug` shows each proxied
 * request (method, service, status, duration, never a token) and why an authorization was refused.
 * Run as an operator does: the real CLI in a child process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { freePort } from '../helpers/gateway.js';

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

it('the demo with --debug: stdout is JSON only (proxied requests, refused authorizations), the human text is on stderr', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'gw-streams-'));
  onTestFinished(() => rmSync(cwd, { recursive: true, force: true }));
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', TSX, CLI, '--port', String(port), '--debug'], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MCP_CONFIG_PATH: '' },
  });
  onTestFinished(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await expect.poll(() => stderr, { timeout: 20_000 }).toContain('listening on');
  expect(stderr).toContain(`MCP URL:      http://127.0.0.1:${port}/demo/mcp`);
  expect(stderr).toContain('Data:         ./data/demo.db');

  const base = `http://127.0.0.1:${port}`;
  const unauth = await fetch(`${base}/demo/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-real-token-abc123' },
    body: '{}',
  });
  expect(unauth.status).toBe(401);
  const authorize = await fetch(
    `${base}/oauth/authorize?client_id=no-such-client&response_type=code&redirect_uri=${encodeURIComponent('http://127.0.0.1:1/cb')}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`,
    { redirect: 'manual' },
  );
  expect(authorize.status).toBe(400);

  await expect.poll(() => stdout).toContain('authorization refused');
  await expect.poll(() => stdout).toContain('proxied POST /demo/mcp -> 401');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);

  const lines = stdout.split('\n').filter(Boolean);
  expect(lines.length).toBeGreaterThan(2);
  for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(records.find((r) => r.service === 'demo' && r.method === 'POST')).toMatchObject({
    level: 20,
    status: 401,
    duration_ms: expect.any(Number),
  });
  expect(records.find((r) => r.stage === 'authorization')).toMatchObject({ level: 20, error: 'invalid_client' });
  expect(stdout).not.toContain('not-a-real-token-abc123');
  expect(stderr).not.toContain('{"level"');
  expect(stderr).toContain('shutting down');
});

it('check-config: a loopback plain-http provider is OK on stdout with one warning line on stderr; a non-loopback one is refused with key, line and fix', async () => {
  const { main } = await import('../../src/cli/main.js');
  const dir = mkdtempSync(join(tmpdir(), 'gw-check-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  const text = (host: string) =>
    [
      'session_secret: a-very-long-session-secret-for-tests-0123456789',
      'oauth_providers:',
      '  myidp:',
      '    client_id: gw',
      '    client_secret: s',
      `    issuer: http://${host}:8081`,
      'mcp_services:',
      '  calc: {name: Calc, url: "http://127.0.0.1:1/mcp", oauth_provider: myidp}',
      'storage: {type: memory}',
      '',
    ].join('\n');
  writeFileSync(file, text('127.0.0.1'));
  const out: string[] = [];
  const err: string[] = [];
  expect(await main(['check-config', file], { out: (s) => out.push(s), err: (s) => err.push(s) }, {})).toBe(0);
  expect(out).toEqual([expect.stringMatching(/^OK: /)]);
  expect(err).toEqual([
    "WARNING: identity provider 'myidp': plain http (issuer) is accepted only because it is on a loopback address (127.0.0.0/8, ::1, localhost); use https for any other host",
  ]);

  writeFileSync(file, text('idp.example.com'));
  err.length = 0;
  expect(await main(['check-config', file], { out: (s) => out.push(s), err: (s) => err.push(s) }, {})).toBe(1);
  expect(err.join('\n')).toContain(
    `${file}:6 oauth_providers.myidp.issuer: issuer uses plain http on a non-loopback host (idp.example.com:8081)`,
  );
  expect(err.join('\n')).toContain('allow_insecure_http: true');
});
