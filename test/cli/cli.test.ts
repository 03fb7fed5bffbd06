import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { freePort } from '../helpers/gateway.js';
import { captureOutput } from '../helpers/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function spawnCli(args: string[], cwd?: string): ChildProcess {
  return spawn(process.execPath, ['--import', TSX, CLI, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MCP_CONFIG_PATH: '' },
  });
}

/** Resolves with everything printed so far (stdout and stderr) once `text` appeared on either. */
function waitForOutput(child: ChildProcess, text: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no '${text}' within ${timeoutMs} ms: ${out}`)), timeoutMs);
    const check = () => {
      if (out.includes(text)) {
        clearTimeout(t);
        resolve(out);
      }
    };
    child.stdout?.on('data', (d: Buffer) => ((out += d.toString()), check()));
    child.stderr?.on('data', (d: Buffer) => ((out += d.toString()), check()));
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
  });
}

const SECRET = 'cli-test-secret-cli-test-secret-cli-test-secret';

describe('command line', () => {
  it('an option value that starts with - (one generated id in 64 does) is taken as the value, not refused as ambiguous', async () => {
    const c = captureOutput();
    const code = await main(['revoke', '--grant', '-Xy4', '--config', '/nonexistent/gateway.yaml'], c.output, {});
    // The arguments parsed: what fails is the missing file (1), not the command line (2).
    expect(code).toBe(1);
    expect(c.err.join('')).not.toMatch(/ambiguous/);
    const p = captureOutput();
    expect(await main(['clients', 'show', '-Xy4'], p.output, {})).toBe(2);
    expect(p.err.join('')).toContain("An id that starts with '-' goes after '--'");
  });

  it('--help and --version', async () => {
    const c = captureOutput();
    expect(await main(['--help'], c.output, {})).toBe(0);
    expect(c.out.join('')).toContain('check-config');
    const v = captureOutput();
    expect(await main(['--version'], v.output, {})).toBe(0);
    expect(v.out[0]).toMatch(/^\d+\.\d+\.\d+/);
    const bad = captureOutput();
    expect(await main(['--nope'], bad.output, {})).toBe(2);
    expect(bad.err.join('')).toContain('--help');
  });

  it('check-config prints OK for a valid file', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, `session_secret: ${SECRET}\nstorage: {type: memory}\n`);
    const c = captureOutput();
    expect(await main(['check-config', file], c.output, {})).toBe(0);
    expect(c.out[0]).toMatch(/^OK: /);
  });

  it('check-config reports every problem of a broken file with lines, exit 1, no stack trace', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(
      file,
      [
        'port: 70000',
        'session_secret: x',
        'storage:',
        '  type: floppy',
        'mcp_services:',
        '  a:',
        '    url: http://x/mcp',
        '    auth_required: true',
        '',
      ].join('\n'),
    );
    const c = captureOutput();
    expect(await main(['check-config', file], c.output, {})).toBe(1);
    const text = c.err.join('\n');
    expect(text).toContain(`${file}:1 port`);
    expect(text).toContain(`${file}:2 session_secret`);
    expect(text).toContain(`${file}:4 storage.type`);
    expect(text).toContain('mcp_services.a.name');
    expect(text).toContain('no OAuth providers are configured');
    expect(text).not.toMatch(/\n\s+at /);
  });

  it('check-config names a missing file and a missing variable', async () => {
    const c = captureOutput();
    expect(await main(['check-config', join(dir, 'nope.yaml')], c.output, {})).toBe(1);
    expect(c.err.join('')).toContain('file not found');
    const file = join(dir, 'env.yaml');
    writeFileSync(file, 'session_secret: ${SECRET_FROM_ENV}\n');
    const d = captureOutput();
    expect(await main(['check-config', file], d.output, {})).toBe(1);
    expect(d.err.join('')).toContain("'SECRET_FROM_ENV'");
    expect(d.err.join('')).toContain(`${file}:1`);
  });

  it('without any configuration it runs the demo on loopback, writing only its SQLite file', async () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    const port = await freePort();
    const child = spawnCli(['--port', String(port)], empty);
    try {
      const stdout = await waitForOutput(child, 'listening on');
      expect(stdout).toContain(`http://127.0.0.1:${port}/demo/mcp`);
      expect(stdout).toContain('claude mcp add --transport http demo');
      const res = await fetch(`http://127.0.0.1:${port}/services/demo`);
      expect(await res.json()).toMatchObject({ id: 'demo', auth_required: true });
      const unauth = await fetch(`http://127.0.0.1:${port}/demo/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(unauth.status).toBe(401);
      expect(readdirSync(empty)).toEqual(['data']);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('the demo refuses a non-loopback address', async () => {
    const c = captureOutput();
    expect(await main(['--host', '0.0.0.0', '--port', '0'], c.output, {})).toBe(1);
    expect(c.err.join('')).toMatch(/loopback|development/i);
  });

  it('runs the gateway from the real binary, serves /health and stops on SIGTERM', async () => {
    const port = await freePort();
    const file = join(dir, 'serve.yaml');
    writeFileSync(
      file,
      `host: 127.0.0.1\nport: ${port}\nissuer: http://127.0.0.1:${port}\nsession_secret: ${SECRET}\nstorage:\n  type: sqlite\n  sqlite: {path: data/gw.db}\n`,
    );
    const child = spawnCli(['--config', file]);
    try {
      const stdout = await waitForOutput(child, 'listening on');
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      expect(res.status).toBe(200);
      expect(existsSync(join(dir, 'data', 'gw.db'))).toBe(true); // relative to the config file
      expect(stdout).toContain('listening');
      let after = '';
      child.stderr?.on('data', (d: Buffer) => (after += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(after).toContain('shutting down');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('an occupied port is a clear error', async () => {
    const { createServer } = await import('node:net');
    const srv = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const port = (srv.address() as { port: number }).port;
    const file = join(dir, 'busy.yaml');
    writeFileSync(file, `host: 127.0.0.1\nport: ${port}\nsession_secret: ${SECRET}\nstorage: {type: memory}\n`);
    const c = captureOutput();
    try {
      expect(await main(['--config', file], c.output, {})).toBe(1);
      expect(c.err.join('')).toContain('already in use');
    } finally {
      srv.close();
    }
  });
});
