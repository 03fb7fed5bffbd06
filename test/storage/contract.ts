/**
 * The storage contract suite (STYLE habit 13): written once, run against every back-end. A back-end's
 * test file calls `storeContract(name, factory)`; `factory.reopen` (optional) checks persistence.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Store } from '../../src/storage/store.js';

export interface ContractFactory {
  /** A fresh, empty store. */
  create(): Promise<Store>;
  /** Closes `store` and opens the same data again (persistent back-ends only). */
  reopen?(store: Store): Promise<Store>;
  /**
   * Expiry is decided by a server with its own clock (Redis): TTL tests then wait in real time. Every
   * other back-end decides expiry in this process, so the tests move a controlled clock instead of sleeping.
   */
  serverClock?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function storeContract(name: string, factory: ContractFactory): void {
  describe(`storage contract: ${name}`, () => {
    const open: Store[] = [];
    const make = async () => {
      const s = await factory.create();
      open.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
      vi.useRealTimers();
    });
    beforeEach(() => {
      // Only `Date` is controlled (it still advances with real time); timers and I/O stay real.
      if (!factory.serverClock) vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    });
    /** Lets `ms` pass for TTL purposes: the controlled clock jumps, or (server clocks) real time passes. */
    const elapse = async (ms: number) => {
      if (factory.serverClock) return sleep(ms);
      vi.setSystemTime(new Date(Date.now() + ms));
    };

    it('set/get round-trips JSON values and reports absence', async () => {
      const s = await make();
      expect(await s.get('a')).toBeUndefined();
      const value = { n: 1, nested: { list: [1, 'two', null, true] }, s: 'x' };
      await s.set('a', value);
      const rec = await s.get<typeof value>('a');
      expect(rec?.value).toEqual(value);
      expect(rec?.expiresAt).toBeUndefined();
      expect(rec?.consumedAt).toBeUndefined();
    });

    it('returned values are copies, not references', async () => {
      const s = await make();
      const v = { list: [1] };
      await s.set('copy', v);
      v.list.push(2);
      const a = await s.get<{ list: number[] }>('copy');
      expect(a?.value.list).toEqual([1]);
      a!.value.list.push(3);
      expect((await s.get<{ list: number[] }>('copy'))?.value.list).toEqual([1]);
    });

    it('set replaces the value, the TTL and clears consumedAt', async () => {
      const s = await make();
      await s.set('r', { v: 1 }, { ttlSeconds: 100 });
      expect(await s.consume('r')).toBe(true);
      await s.set('r', { v: 2 });
      const rec = await s.get<{ v: number }>('r');
      expect(rec?.value.v).toBe(2);
      expect(rec?.expiresAt).toBeUndefined();
      expect(rec?.consumedAt).toBeUndefined();
    });

    it('expires records after their TTL', async () => {
      const s = await make();
      await s.set('short', { v: 1 }, { ttlSeconds: 1 });
      await s.set('long', { v: 2 }, { ttlSeconds: 60 });
      const rec = await s.get('short');
      expect(rec?.expiresAt).toBeGreaterThan(Date.now());
      await elapse(1150);
      expect(await s.get('short')).toBeUndefined();
      expect((await s.get('long'))?.value).toEqual({ v: 2 });
      expect(await s.delete('short')).toBe(false);
      expect(await s.consume('short')).toBe(false);
      expect(await s.take('short')).toBeUndefined();
      expect((await s.list('short')).length).toBe(0);
    });

    it('delete reports whether a live record existed', async () => {
      const s = await make();
      await s.set('d', { v: 1 });
      expect(await s.delete('d')).toBe(true);
      expect(await s.delete('d')).toBe(false);
      expect(await s.get('d')).toBeUndefined();
    });

    it('setIfAbsent writes only when nothing live is there', async () => {
      const s = await make();
      expect(await s.setIfAbsent('once', { v: 1 })).toBe(true);
      expect(await s.setIfAbsent('once', { v: 2 })).toBe(false);
      expect((await s.get('once'))?.value).toEqual({ v: 1 });
      await s.set('gone', { v: 1 }, { ttlSeconds: 1 });
      await elapse(1150);
      expect(await s.setIfAbsent('gone', { v: 3 })).toBe(true);
      expect((await s.get('gone'))?.value).toEqual({ v: 3 });
    });

    it('setIfAbsent under concurrency: exactly one of 50 writers wins', async () => {
      const s = await make();
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.setIfAbsent('race', { i })));
      expect(results.filter(Boolean).length).toBe(1);
    });

    it('consume marks once and keeps the value', async () => {
      const s = await make();
      expect(await s.consume('missing')).toBe(false);
      await s.set('c', { v: 1 }, { ttlSeconds: 60 });
      expect(await s.consume('c')).toBe(true);
      expect(await s.consume('c')).toBe(false);
      const rec = await s.get('c');
      expect(rec?.value).toEqual({ v: 1 });
      expect(typeof rec?.consumedAt).toBe('number');
      expect(Math.abs((rec?.consumedAt ?? 0) - Date.now())).toBeLessThan(5000);
      expect(rec?.expiresAt).toBeGreaterThan(Date.now());
    });

    it('consume under concurrency: exactly one of 100 consumers wins', async () => {
      const s = await make();
      await s.set('code', { v: 'x' }, { ttlSeconds: 60 });
      const results = await Promise.all(Array.from({ length: 100 }, () => s.consume('code')));
      expect(results.filter(Boolean).length).toBe(1);
    });

    it('take returns the value once and deletes it', async () => {
      const s = await make();
      await s.set('t', { v: 1 });
      expect(await s.take('t')).toEqual({ v: 1 });
      expect(await s.take('t')).toBeUndefined();
      expect(await s.get('t')).toBeUndefined();
    });

    it('take under concurrency: exactly one of 100 takers gets the value', async () => {
      const s = await make();
      await s.set('once', { v: 42 }, { ttlSeconds: 60 });
      const results = await Promise.all(Array.from({ length: 100 }, () => s.take('once')));
      expect(results.filter((r) => r !== undefined)).toEqual([{ v: 42 }]);
    });

    it('indexes: list and delete by tag, replaced on set, pruned on delete and expiry', async () => {
      const s = await make();
      await s.set('tok:1', { v: 1 }, { indexes: ['grant:g1'] });
      await s.set('tok:2', { v: 2 }, { indexes: ['grant:g1', 'user:u'] });
      await s.set('tok:3', { v: 3 }, { indexes: ['grant:g2'] });
      await s.set('tok:4', { v: 4 }, { indexes: ['grant:g1'], ttlSeconds: 1 });
      expect(await s.listByIndex('grant:g1')).toEqual(['tok:1', 'tok:2', 'tok:4']);
      await elapse(1150);
      expect(await s.listByIndex('grant:g1')).toEqual(['tok:1', 'tok:2']);
      await s.set('tok:1', { v: 1 }, { indexes: ['grant:g3'] });
      expect(await s.listByIndex('grant:g1')).toEqual(['tok:2']);
      expect(await s.listByIndex('grant:g3')).toEqual(['tok:1']);
      await s.delete('tok:2');
      expect(await s.listByIndex('user:u')).toEqual([]);
      await s.set('tok:5', { v: 5 }, { indexes: ['grant:g2'] });
      expect(await s.deleteByIndex('grant:g2')).toBe(2);
      expect(await s.get('tok:3')).toBeUndefined();
      expect(await s.get('tok:5')).toBeUndefined();
      expect(await s.listByIndex('grant:g2')).toEqual([]);
      expect(await s.deleteByIndex('grant:none')).toBe(0);
      expect((await s.get('tok:1'))?.value).toEqual({ v: 1 });
    });

    it('list by prefix: ordered, limited, live records only', async () => {
      const s = await make();
      for (const k of ['p:c', 'p:a', 'p:b', 'q:a', 'p']) await s.set(k, { k });
      await s.set('p:z', { k: 'z' }, { ttlSeconds: 1 });
      const all = await s.list<{ k: string }>('p:');
      expect(all.map((r) => r.key)).toEqual(['p:a', 'p:b', 'p:c', 'p:z']);
      expect(all[0]?.value).toEqual({ k: 'p:a' });
      expect((await s.list('p:', { limit: 2 })).map((r) => r.key)).toEqual(['p:a', 'p:b']);
      await elapse(1150);
      expect((await s.list('p:')).map((r) => r.key)).toEqual(['p:a', 'p:b', 'p:c']);
      expect(await s.list('none:')).toEqual([]);
    });

    it("list reports each record's index tags (used by migrations)", async () => {
      const s = await make();
      await s.set('ix:a', { v: 1 }, { indexes: ['grant:b', 'grant:a'] });
      await s.set('ix:b', { v: 2 });
      await s.set('ix:c', { v: 3 }, { indexes: ['grant:a'], ttlSeconds: 60 });
      await s.set('ix:c', { v: 3 }, { indexes: ['uid:c'], ttlSeconds: 60 });
      const listed = await s.list('ix:');
      expect(listed.map((r) => [r.key, [...(r.indexes ?? [])].sort()])).toEqual([
        ['ix:a', ['grant:a', 'grant:b']],
        ['ix:b', []],
        ['ix:c', ['uid:c']],
      ]);
      expect(listed[2]?.expiresAt).toBeGreaterThan(Date.now());
    });

    it('large values (2 MB) round-trip', async () => {
      const s = await make();
      const big = { blob: 'x'.repeat(2 * 1024 * 1024), list: Array.from({ length: 1000 }, (_, i) => ({ i })) };
      await s.set('big', big);
      const rec = await s.get<typeof big>('big');
      expect(rec?.value.blob.length).toBe(big.blob.length);
      expect(rec?.value.list[999]).toEqual({ i: 999 });
    });

    it('unicode keys and values', async () => {
      const s = await make();
      const key = 'usr:Zoë-名前-😀-\u00e9\u0301';
      await s.set(key, { name: 'Zoë 名前 😀', rtl: 'שלום' }, { indexes: ['tag:ü'] });
      expect((await s.get(key))?.value).toEqual({ name: 'Zoë 名前 😀', rtl: 'שלום' });
      expect(await s.listByIndex('tag:ü')).toEqual([key]);
      expect((await s.list('usr:Zoë')).map((r) => r.key)).toEqual([key]);
      expect(await s.get('usr:Zoe-名前-😀-\u00e9\u0301')).toBeUndefined();
    });

    it('rejects invalid keys with a TypeError', async () => {
      const s = await make();
      await expect(s.get('')).rejects.toThrow(TypeError);
      await expect(s.set('a\nb', {})).rejects.toThrow(TypeError);
      await expect(s.set('x'.repeat(513), {})).rejects.toThrow(TypeError);
      await expect(s.set('ok', {}, { indexes: ['bad\u0000tag'] })).rejects.toThrow(TypeError);
    });

    it('health reports ok', async () => {
      const s = await make();
      const h = await s.health();
      expect(h.ok).toBe(true);
      expect(h.backend).toBe(s.backend);
    });

    if (factory.reopen) {
      it('persists across close and reopen', async () => {
        const s = await make();
        await s.set('keep', { v: 1 }, { indexes: ['grant:k'] });
        await s.set('keep-consumed', { v: 2 }, { ttlSeconds: 600 });
        await s.consume('keep-consumed');
        const again = await factory.reopen!(s);
        open.push(again);
        expect((await again.get('keep'))?.value).toEqual({ v: 1 });
        expect(await again.listByIndex('grant:k')).toEqual(['keep']);
        const c = await again.get('keep-consumed');
        expect(typeof c?.consumedAt).toBe('number');
        expect(c?.expiresAt).toBeGreaterThan(Date.now());
      });
    }
  });
}
