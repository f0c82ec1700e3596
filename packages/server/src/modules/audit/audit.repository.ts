import { sql } from 'kysely';
import type { AuditLogTable } from '../../db/schema.ts';
import type { Db, Dialect } from '../../db/store.ts';

/** Arbitrary constant: the PostgreSQL advisory lock that serialises appends to the chain. */
const AUDIT_CHAIN_LOCK = 7_261_002;
const AUDIT_HEAD_KEY = 'audit_head';

export interface AuditFilter { actor?: string; kind?: string; targetId?: string; from?: number; to?: number; before?: number; limit: number }

export function createAuditRepository(dialect: Dialect) {
  return {
    /** Must run inside a transaction: the chain head is read and extended atomically. */
    async lockChain(trx: Db): Promise<void> {
      if (dialect === 'postgres') await sql`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`.execute(trx);
    },
    async head(trx: Db): Promise<Pick<AuditLogTable, 'seq' | 'hash'> | undefined> {
      return trx.selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    },
    /** Writes the entry and the recorded head together; the head lets verify notice entries removed from the end. */
    async insert(trx: Db, row: AuditLogTable): Promise<void> {
      await trx.insertInto('audit_log').values(row).execute();
      const head = JSON.stringify({ seq: row.seq, hash: row.hash });
      await trx.insertInto('settings').values({ key: AUDIT_HEAD_KEY, value: head })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: head })).execute();
    },
    async recordedHead(db: Db): Promise<{ seq: number; hash: string } | null> {
      const row = await db.selectFrom('settings').select('value').where('key', '=', AUDIT_HEAD_KEY).executeTakeFirst();
      return row ? (JSON.parse(row.value) as { seq: number; hash: string }) : null;
    },
    async list(db: Db, filter: AuditFilter): Promise<AuditLogTable[]> {
      let query = db.selectFrom('audit_log').selectAll();
      if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
      if (filter.kind !== undefined) query = query.where('kind', '=', filter.kind);
      if (filter.targetId !== undefined) query = query.where('target_id', '=', filter.targetId);
      if (filter.from !== undefined) query = query.where('at', '>=', filter.from);
      if (filter.to !== undefined) query = query.where('at', '<', filter.to);
      if (filter.before !== undefined) query = query.where('seq', '<', filter.before);
      return query.orderBy('seq', 'desc').limit(filter.limit).execute();
    },
    async range(db: Db, afterSeq: number, limit: number): Promise<AuditLogTable[]> {
      return db.selectFrom('audit_log').selectAll().where('seq', '>', afterSeq).orderBy('seq', 'asc').limit(limit).execute();
    },
  };
}
export type AuditRepository = ReturnType<typeof createAuditRepository>;
