/** The open-file limit at start (src/cli/fd-limit.ts): the limits in force, and a warning when low. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFdLimit, readFdLimits } from '../../src/cli/fd-limit.js';
import { freePort } from '../helpers/ports.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const hasPrlimit = ['/usr/bin/prlimit', '/bin/prlimit'].some((p) => existsSync(p));
const readInChild = `import { readFdLimits } from ${JSON.stringify(`${ROOT}src/cli/fd-limit.ts`)}; process.stdout.write(JSON.stringify(readFdLimits()));`;

describe('open-file limit', () => {
  it('words a warning with what to set when the limit is low, none when it is high', () => {
    expect(checkFdLimit({ soft: 65_536, hard: 65_536 }).warning).toBeUndefined();
    const low = checkFdLimit({ soft: 1024, hard: 1024 }).warning!;
    expect(low).toContain('the open-file limit is 1024');
    expect(low).toContain('about 512 concurrent streams');
    expect(low).toContain('LimitNOFILE');
    expect(checkFdLimit({ soft: 1024, hard: 4096 }).warning).toContain('below the hard limit 4096');
  });

  describe.skipIf(!hasPrlimit || !readFdLimits())('in a real process', () => {
    const hard = readFdLimits()!.hard;
    const cap = Number.isFinite(hard) ? Math.min(hard, 20_000) : 20_000;

    it('Node starts with the soft limit raised to the hard limit (what operators set is the hard limit)', () => {
      const r = spawnSync(
        'prlimit',
        [`--nofile=512:${cap}`, process.execPath, '--import', 'tsx', '--input-type=module', '-e', readInChild],
        {
          cwd: ROOT,
          encoding: 'utf8',
        },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ soft: cap, hard: cap });
    });

    it('the gateway logs the warning at start when the hard limit is low', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gw-fd-'));
      const port = await freePort();
      const cfg = join(dir, 'gateway.json');
      writeFileSync(
        cfg,
        JSON.stringify({
          host: '127.0.0.1',
          port,
          issuer: `http://127.0.0.1:${port}`,
          session_secret: 'fd-limit-test-session-secret-0123456789abcdef',
          oauth_providers: { dev: {} },
          storage: { type: 'memory' },
        }),
      );
      const child = spawn(
        'prlimit',
        ['--nofile=1024:1024', process.execPath, join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'src/cli/main.ts', '--config', cfg],
        {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await expect.poll(() => out, { timeout: 30_000, interval: 100 }).toContain('the open-file limit is 1024');
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }, 40_000);
  });
});
