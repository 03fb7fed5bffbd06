/**
 * Copies every live record from one store to another (`mcp-oauth-gateway storage migrate`), through the
 * public Store contract only, so any pair of back-ends works.
 *
 * Preserved: key, value, remaining TTL (re-based on the time of copy, so a record keeps its absolute
 * expiry to within the copy's duration), index tags (from `ListedRecord.indexes`), and the consumed state.
 * Not preserved exactly: `consumedAt` can only be re-created through `consume()`, so it becomes the time of
 * the copy (the record is still reported as consumed, which is what replay detection needs).
 *
 * Records already expired, or expiring during the copy, are skipped. Existing records in the target
 * with the same key are replaced. Stop the gateway (or at least writes) while migrating: records written
 * to the source during the copy may be missed.
 *
 * Memory: each prefix is listed in one call (the contract has no cursor), so the records of the largest
 * prefix are held in memory at once; fine for the volumes an authorization server keeps.
 */
import type { Store } from './store.js';

export interface MigrateOptions {
  /** Key prefixes to copy (default: everything). Overlapping prefixes copy a record once. */
  prefixes?: string[];
  /** Called every `progressEvery` records and once at the end with the number processed so far. */
  onProgress?(n: number): void;
  progressEvery?: number;
}

export interface MigrateResult {
  copied: number;
  skipped: number;
}

const LIST_ALL = Number.MAX_SAFE_INTEGER;

export async function migrateStore(from: Store, to: Store, options: MigrateOptions = {}): Promise<MigrateResult> {
  if (from === to) throw new TypeError('migrateStore: source and target are the same store');
  const prefixes = options.prefixes?.length ? options.prefixes : [''];
  const every = options.progressEvery ?? 100;
  const seen = new Set<string>();
  let copied = 0;
  let skipped = 0;
  let processed = 0;
  for (const prefix of prefixes) {
    const records = await from.list(prefix, { limit: LIST_ALL });
    for (const rec of records) {
      if (seen.has(rec.key)) continue;
      seen.add(rec.key);
      processed++;
      const now = Date.now();
      if (rec.expiresAt !== undefined && rec.expiresAt <= now) {
        skipped++;
      } else {
        const ttlSeconds = rec.expiresAt === undefined ? undefined : (rec.expiresAt - now) / 1000;
        await to.set(rec.key, rec.value, {
          ...(ttlSeconds !== undefined && { ttlSeconds }),
          ...(rec.indexes?.length && { indexes: rec.indexes }),
        });
        if (rec.consumedAt !== undefined) await to.consume(rec.key);
        copied++;
      }
      if (processed % every === 0) options.onProgress?.(processed);
    }
  }
  if (processed % every !== 0) options.onProgress?.(processed);
  return { copied, skipped };
}
