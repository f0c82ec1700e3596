import { type Expression, type SqlBool, sql } from 'kysely';
import type { ActionsTable, AuditLogTable, IndicatorsTable, InvestigationsTable } from '../../db/schema.ts';
import type { Db, Dialect } from '../../db/store.ts';

/** Where each entry records the chain's head (its seq and hash); migration 0025 puts it in every store. */
const AUDIT_HEAD_KEY = 'audit_head';

export interface AuditFilter { actor?: string; kind?: string; targetId?: string; from?: number; to?: number; before?: number; limit: number }

/** Which entries a reader may see, beyond their own acts (see AuditService.list). */
export interface AuditReader {
  /** The reading user: entries recorded with this actor_user_id are always theirs to read. */
  userId: string | null;
  /** Entries that concern no device (users, tokens, settings, sign-ins). */
  deviceless: boolean;
  /** Entries that concern devices: null for all of them, else those whose groups all lie in these (and are not empty). */
  groupIds: readonly string[] | null;
}

/**
 * The device groups of what an audit target names, per target type, read in
 * the transaction that records it; a null element is a device in no group.
 * A target type missing here concerns no device.
 */
const TARGET_GROUPS: Record<string, (db: Db, id: string) => Promise<Array<string | null>>> = {
  action: async (db, id) => (await db.selectFrom('actions').select('group_id').where('id', '=', id).execute()).map((r) => r.group_id),
  device: async (db, id) => (await db.selectFrom('devices').select('group_id').where('id', '=', id).execute()).map((r) => r.group_id),
  alert: async (db, id) => (await db.selectFrom('alerts').select('group_id').where('id', '=', id).execute()).map((r) => r.group_id),
  investigation: async (db, id) => (await db.selectFrom('investigations').select('group_id').where('id', '=', id).execute()).map((r) => r.group_id),
  incident: async (db, id) => (await db.selectFrom('alerts').select('group_id').distinct().where('incident_id', '=', id).execute()).map((r) => r.group_id),
  // An indicator for every group lists none: it is left to unscoped readers.
  indicator: async (db, id) => (await db.selectFrom('indicators').select('device_group_ids').where('id', '=', id).execute()).flatMap((r) => JSON.parse(r.device_group_ids) as string[]),
  device_group: async (_db, id) => [id],
};

/**
 * The column that names an audit target, per target type whose name is one
 * column, read for the ids given. Actions, investigations and indicators are
 * named from several columns (see their own methods).
 */
const TARGET_NAMES = {
  device: (db, ids) => db.selectFrom('devices').select(['id', 'name']).where('id', 'in', ids).execute(),
  alert: (db, ids) => db.selectFrom('alerts').select(['id', 'title as name']).where('id', 'in', ids).execute(),
  incident: (db, ids) => db.selectFrom('incidents').select(['id', 'title as name']).where('id', 'in', ids).execute(),
  user: (db, ids) => db.selectFrom('users').select(['id', 'username as name']).where('id', 'in', ids).execute(),
  device_group: (db, ids) => db.selectFrom('device_groups').select(['id', 'name']).where('id', 'in', ids).execute(),
  token: (db, ids) => db.selectFrom('api_tokens').select(['id', 'name']).where('id', 'in', ids).execute(),
  enrolment_token: (db, ids) => db.selectFrom('enrolment_tokens').select(['id', 'name']).where('id', 'in', ids).execute(),
} satisfies Record<string, (db: Db, ids: readonly string[]) => Promise<Array<{ id: string; name: string }>>>;
export type NamedTargetType = keyof typeof TARGET_NAMES;

export function createAuditRepository(dialect: Dialect) {
  return {
    /**
     * The recorded head of the chain, held until the transaction ends so that appends line up one
     * after another: on PostgreSQL its row is locked, on SQLite the writer holds the whole file.
     * Extending the recorded head rather than the last entry found means that entries removed from
     * the end leave a gap the next verification sees, whatever is appended since.
     */
    async lockedHead(trx: Db): Promise<{ seq: number; hash: string }> {
      const query = trx.selectFrom('settings').select('value').where('key', '=', AUDIT_HEAD_KEY);
      const row = await (dialect === 'postgres' ? query.forUpdate() : query).executeTakeFirstOrThrow();
      return JSON.parse(row.value) as { seq: number; hash: string };
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
    /** The device groups a target concerns (sorted, without duplicates), or null when it concerns no device. */
    async targetGroups(db: Db, targetType: string, targetId: string | null): Promise<Array<string | null> | null> {
      const lookup = TARGET_GROUPS[targetType];
      if (!lookup) return null;
      return targetId === null ? [] : lookup(db, targetId);
    },
    async deviceGroups(db: Db, deviceIds: readonly string[]): Promise<Array<string | null>> {
      if (deviceIds.length === 0) return [];
      return (await db.selectFrom('devices').select('group_id').where('id', 'in', deviceIds).execute()).map((r) => r.group_id);
    },
    async list(db: Db, filter: AuditFilter, reader: AuditReader): Promise<AuditLogTable[]> {
      let query = db.selectFrom('audit_log').selectAll();
      if (!reader.deviceless || reader.groupIds !== null) {
        query = query.where((eb) => {
          const readable: Array<Expression<SqlBool>> = [];
          if (reader.userId !== null) readable.push(eb('actor_user_id', '=', reader.userId));
          if (reader.deviceless) readable.push(eb('group_ids', 'is', null));
          if (reader.groupIds === null) readable.push(eb('group_ids', 'is not', null));
          else if (reader.groupIds.length > 0) readable.push(eb.and([eb('group_ids', 'is not', null), eb('group_ids', '<>', '[]'), allGroupsIn(dialect, reader.groupIds)]));
          return eb.or(readable);
        });
      }
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

    /** The names of these targets of one type, by id. */
    targetNames(db: Db, targetType: NamedTargetType, ids: readonly string[]): Promise<Array<{ id: string; name: string }>> {
      return TARGET_NAMES[targetType](db, ids);
    },
    /** What the audit log names these actions by. */
    actionsNamed(db: Db, ids: readonly string[]): Promise<Array<Pick<ActionsTable, 'id' | 'type' | 'entity_name' | 'device_name'>>> {
      return db.selectFrom('actions').select(['id', 'type', 'entity_name', 'device_name']).where('id', 'in', ids).execute();
    },
    /** What the audit log names these investigations by. */
    investigationsNamed(db: Db, ids: readonly string[]): Promise<Array<Pick<InvestigationsTable, 'id' | 'device_name'>>> {
      return db.selectFrom('investigations').select(['id', 'device_name']).where('id', 'in', ids).execute();
    },
    /** What the audit log names these indicators by. */
    indicatorsNamed(db: Db, ids: readonly string[]): Promise<Array<Pick<IndicatorsTable, 'id' | 'type' | 'value'>>> {
      return db.selectFrom('indicators').select(['id', 'type', 'value']).where('id', 'in', ids).execute();
    },
  };
}
export type AuditRepository = ReturnType<typeof createAuditRepository>;

/** True when every group in the entry's group_ids is one of `groupIds` (JSON is read by each store's own functions). */
function allGroupsIn(dialect: Dialect, groupIds: readonly string[]): Expression<SqlBool> {
  return dialect === 'postgres'
    ? sql<SqlBool>`NOT EXISTS (SELECT 1 FROM json_array_elements_text(audit_log.group_ids::json) AS g(value) WHERE g.value NOT IN (${sql.join(groupIds)}))`
    : sql<SqlBool>`NOT EXISTS (SELECT 1 FROM json_each(audit_log.group_ids) WHERE json_each.value NOT IN (${sql.join(groupIds)}))`;
}
