/**
 * The admin commands work on storage they can share with the gateway: `storage.type: memory` lives inside
 * the running process, so they refuse it with the reason instead of reporting on an empty store of their
 * own. Without a configuration they use the demo's database (./data/demo.db), so what the demo did can be
 * inspected; they never create it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/main.js';
import { TEST_SECRET } from '../helpers/config.js';
import { freePort } from '../helpers/gateway.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { captureOutput } from '../helpers/capture.js';

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-admin-storage-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the real CLI in `cwd` to completion. */
function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MCP_CONFIG_PATH: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('admin commands and storage.type: memory', () => {
  it('clients, grants, revoke and keys refuse memory storage with the reason (exit 1, nothing printed as success)', async () => {
    const dir = tempDir();
    const file = join(dir, 'mem.yaml');
    writeFileSync(file, `session_secret: ${TEST_SECRET}\nstorage: {type: memory}\n`);
    for (const args of [
      ['clients', 'list'],
      ['grants', 'list'],
      ['revoke', '--user', 'corp:alice'],
      ['clients', 'delete', 'x'],
      ['keys', 'rotate'],
    ]) {
      const c = captureOutput();
      expect(await main([...args, '--config', file], c.output, {}), args.join(' ')).toBe(1);
      expect(c.out, args.join(' ')).toEqual([]);
      const text = c.err.join('\n');
      expect(text).toContain(`${file}: storage.type is memory, which lives inside the running gateway process`);
      expect(text).toContain('Use storage.type: sqlite');
    }
  });

  it('storage migrate refuses a memory source or target', async () => {
    const dir = tempDir();
    const mem = join(dir, 'mem.yaml');
    const lite = join(dir, 'lite.yaml');
    writeFileSync(mem, `session_secret: ${TEST_SECRET}\nstorage: {type: memory}\n`);
    writeFileSync(lite, `session_secret: ${TEST_SECRET}\nstorage: {type: sqlite, sqlite: {path: ${join(dir, 'x.db')}}}\n`);
    for (const [from, to] of [
      [mem, lite],
      [lite, mem],
    ]) {
      const c = captureOutput();
      expect(await main(['storage', 'migrate', '--from', from!, '--to', to!], c.output, {})).toBe(1);
      expect(c.err.join('\n')).toContain('storage.type is memory');
    }
    expect(existsSync(join(dir, 'x.db'))).toBe(false);
  });
});

describe('the demo database', () => {
  it('without a configuration the commands read the demo database of this folder: the client and grant of a demo sign-in are listed', async () => {
    const cwd = tempDir();
    const port = await freePort();
    const demo = spawn(process.execPath, ['--import', TSX, CLI, '--port', String(port)], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MCP_CONFIG_PATH: '' },
    });
    onTestFinished(() => void demo.kill('SIGKILL'));
    let stderr = '';
    demo.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await expect.poll(() => stderr, { timeout: 20_000 }).toContain('listening on');
    const { provider } = await obtainToken(`http://127.0.0.1:${port}`, 'demo', { devLogin: { name: 'Ada', email: 'ada@example.com' } });
    const clientId = provider.clientInformation()!.client_id;

    const clients = await run(['clients', 'list', '--json'], cwd);
    expect(clients.code, clients.stderr).toBe(0);
    expect(clients.stderr).toContain(`no configuration found: using the demo's database ${join(cwd, 'data', 'demo.db')}`);
    expect((JSON.parse(clients.stdout) as { client_id: string }[]).map((c) => c.client_id)).toContain(clientId);
    const grants = await run(['grants', 'list', '--json'], cwd);
    expect(grants.code, grants.stderr).toBe(0);
    expect(JSON.parse(grants.stdout)).toEqual([
      expect.objectContaining({ user: 'dev:ada@example.com', client_id: clientId, services: `http://127.0.0.1:${port}/demo/mcp` }),
    ]);
  });

  it('without a configuration and without a demo database: a clear error, and nothing is created', async () => {
    const cwd = tempDir();
    const r = await run(['grants', 'list'], cwd);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no configuration found');
    expect(r.stderr).toContain(`no demo database at ${join(cwd, 'data', 'demo.db')}`);
    expect(readdirSync(cwd)).toEqual([]);
  });
});
