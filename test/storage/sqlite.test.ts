import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { Store } from '../../src/storage/store.js';
import { storeContract } from './contract.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

storeContract('sqlite', {
  create: async () => SqliteStore.open(join(dir, `db-${n++}`, 'gateway.db')),
  reopen: async (store: Store) => {
    const file = (store as SqliteStore).file;
    await store.close();
    return SqliteStore.open(file);
  },
});

describe('sqlite specifics', () => {
  it('sweep deletes expired rows and their index entries', async () => {
    const s = SqliteStore.open(join(dir, 'sweep.db'), { sweepIntervalMs: 0 });
    await s.set('a', { v: 1 }, { ttlSeconds: 1, indexes: ['t'] });
    await s.set('b', { v: 1 });
    expect(s.sweep(Date.now() + 5000)).toBe(1);
    expect(await s.listByIndex('t')).toEqual([]);
    expect((await s.get('b'))?.value).toEqual({ v: 1 });
    await s.close();
    await s.close(); // idempotent
    expect((await s.health()).ok).toBe(false);
  });

  it('survives a real process restart', async () => {
    const { execFileSync } = await import('node:child_process');
    const file = join(dir, 'proc.db');
    const script = (body: string) =>
      `import { SqliteStore } from ${JSON.stringify(new URL('../../src/storage/sqlite/sqlite-store.ts', import.meta.url).pathname)};\nconst s = SqliteStore.open(${JSON.stringify(file)});\n${body}\nawait s.close();`;
    const run = (body: string) =>
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(body)], {
        encoding: 'utf8',
        cwd: process.cwd(),
      });
    run(`await s.set('client:1', { name: 'persisted' }, { indexes: ['owner:x'] });`);
    const out = run(`console.log(JSON.stringify([(await s.get('client:1'))?.value, await s.listByIndex('owner:x')]));`);
    expect(JSON.parse(out.trim())).toEqual([{ name: 'persisted' }, ['client:1']]);
  });
});
