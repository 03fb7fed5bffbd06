/**
 * Issue 13, defect 6: the operator's `revoke` writes the revocation marker BEFORE deleting the grant's
 * records, the order the adapter relies on (src/kernel/revocation.ts revokeGrant): a token request racing
 * the revocation must find the grant already marked, never a deleted grant without a marker. The order is
 * observed in the real SQLite file the gateway and the CLI share: triggers log every insert and delete
 * of the key-value table, in sequence.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/main.js';
import { REVOKED_PREFIX } from '../../src/kernel/revocation.js';
import { TEST_SECRET } from '../helpers/config.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { startSqliteWorld } from '../helpers/sqlite-world.js';

describe('operator revocation order', () => {
  it('revoke --grant writes the marker before deleting any record of the grant, and audits it', async () => {
    const { dir, db, gw } = await startSqliteWorld('gw-revoke-order-');
    const { tokens } = await obtainToken(gw.url, 'calc');
    const gid = String(decodeJwt(tokens.access_token).gid);

    // Sequence log of the shared file, kept by SQLite itself (every writer, every connection).
    const sql = new Database(db);
    onTestFinished(() => {
      sql.close();
    });
    sql.exec(`
      CREATE TABLE test_ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, key TEXT NOT NULL);
      CREATE TRIGGER test_ops_insert AFTER INSERT ON kv BEGIN INSERT INTO test_ops(op, key) VALUES ('set', NEW.key); END;
      CREATE TRIGGER test_ops_update AFTER UPDATE ON kv BEGIN INSERT INTO test_ops(op, key) VALUES ('set', NEW.key); END;
      CREATE TRIGGER test_ops_delete AFTER DELETE ON kv BEGIN INSERT INTO test_ops(op, key) VALUES ('delete', OLD.key); END;
    `);
    const grantKeys = new Set(
      (sql.prepare('SELECT key FROM kv_index WHERE tag = ?').all(`grant:${gid}`) as { key: string }[]).map((r) => r.key),
    );
    // The grant, its refresh token (and whatever else oidc-provider indexed under the grant).
    expect(grantKeys.has(`oidc:Grant:${gid}`)).toBe(true);
    expect(grantKeys.size).toBeGreaterThan(1);

    const cfg = join(dir, 'gateway.yaml');
    writeFileSync(cfg, `session_secret: ${TEST_SECRET}\nissuer: ${gw.url}\nstorage:\n  type: sqlite\n  sqlite: {path: ${db}}\n`);
    const out: string[] = [];
    const err: string[] = [];
    expect(await main(['revoke', '--grant', gid, '--config', cfg], { out: (s) => out.push(s), err: (s) => err.push(s) }, {})).toBe(0);
    expect(out.join('\n')).toContain('revoked 1 grant');

    const ops = sql.prepare('SELECT seq, op, key FROM test_ops ORDER BY seq').all() as { seq: number; op: string; key: string }[];
    const marker = ops.find((o) => o.op === 'set' && o.key === `${REVOKED_PREFIX}${gid}`);
    const deletes = ops.filter((o) => o.op === 'delete' && grantKeys.has(o.key));
    expect(marker, JSON.stringify(ops)).toBeDefined();
    expect(new Set(deletes.map((d) => d.key))).toEqual(grantKeys);
    // Marker first: no moment in which the grant's records are gone and nothing marks it revoked.
    expect(
      deletes.every((d) => d.seq > marker!.seq),
      JSON.stringify(ops),
    ).toBe(true);

    // The CLI audits the revocation like the server does (docs/observability.md).
    const audit = err.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit).toContainEqual(expect.objectContaining({ audit: true, event: 'grant.revoked', grant_id: gid }));
  });
});
