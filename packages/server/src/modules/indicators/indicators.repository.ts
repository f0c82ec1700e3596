import type { ExpressionBuilder } from 'kysely';
import type { Database, IndicatorHitsTable, IndicatorsTable } from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';

/** Not expired at `now`: expired indicators stay for the record and match nothing. */
export const activeAt = (now: number) => (eb: ExpressionBuilder<Database, 'indicators'>) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]);

/** Whether an indicator applies to a device of this group: it names no group (it is for every device), or names this one. */
export function coversGroup(row: Pick<IndicatorsTable, 'device_group_ids'>, groupId: string | null): boolean {
  const groups = JSON.parse(row.device_group_ids) as string[];
  return groups.length === 0 || (groupId !== null && groups.includes(groupId));
}

/** Indicators, and where agents reported them matched. */
export function createIndicatorsRepository() {
  return {
    /**
     * The indicators active at `now` for any of these values (of these
     * actions, when given) that apply to a device of `groupId`.
     */
    async activeFor(db: Db, values: ReadonlyArray<{ type: string; value: string }>, groupId: string | null, now: number, actions?: readonly string[]): Promise<IndicatorsTable[]> {
      if (values.length === 0) return [];
      let q = db.selectFrom('indicators').selectAll()
        .where((eb) => eb.or(values.map((v) => eb.and([eb('type', '=', v.type), eb('value', '=', v.value)]))))
        .where(activeAt(now));
      if (actions !== undefined) q = q.where('action', 'in', actions);
      return (await q.orderBy('created_at').orderBy('id').execute()).filter((row) => coversGroup(row, groupId));
    },
    /** The one active indicator of this type and value: there is at most one. */
    activeOf(db: Db, type: string, value: string, now: number): Promise<IndicatorsTable | undefined> {
      return db.selectFrom('indicators').selectAll().where('type', '=', type).where('value', '=', value).where(activeAt(now)).executeTakeFirst();
    },
    /** The block indicators for a SHA-256 created after `since`, oldest first (expired ones too, whatever their device groups). */
    blocksAddedSince(db: Db, sha256: string, since: number): Promise<Array<Pick<IndicatorsTable, 'title'>>> {
      return db.selectFrom('indicators').select('title').where('type', '=', 'sha256').where('value', '=', sha256)
        .where('action', 'in', ['block', 'block_and_remediate']).where('created_at', '>', since).orderBy('created_at').execute();
    },
    findById(db: Db, id: string): Promise<IndicatorsTable | undefined> {
      return db.selectFrom('indicators').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async insert(db: Db, row: IndicatorsTable): Promise<void> {
      await db.insertInto('indicators').values(row).execute();
    },
    async update(db: Db, id: string, patch: Partial<Omit<IndicatorsTable, 'id' | 'type' | 'value' | 'created_by' | 'created_at'>>): Promise<void> {
      await db.updateTable('indicators').set(patch).where('id', '=', id).execute();
    },
    /** Newest first; active ones only unless `includeExpired`. */
    list(db: Db, filter: { type?: string; action?: string; value?: string; includeExpired?: boolean }, now: number, limit: number): Promise<IndicatorsTable[]> {
      let q = db.selectFrom('indicators').selectAll();
      if (filter.type) q = q.where('type', '=', filter.type);
      if (filter.action) q = q.where('action', '=', filter.action);
      if (filter.value !== undefined) q = q.where('value', '=', filter.value);
      if (!filter.includeExpired) q = q.where(activeAt(now));
      return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    },
    /** Whether an indicator of one of these types expired after `since`, up to `now`. */
    async expiredBetween(db: Db, types: readonly string[], since: number, now: number): Promise<boolean> {
      return (await db.selectFrom('indicators').select('id').where('type', 'in', types).where('expires_at', '>', since).where('expires_at', '<=', now).limit(1).execute()).length > 0;
    },
    /** Which of these device groups exist. */
    async existingGroups(db: Db, groupIds: readonly string[]): Promise<Set<string>> {
      return new Set((await db.selectFrom('device_groups').select('id').where('id', 'in', groupIds).execute()).map((g) => g.id));
    },

    /**
     * Indicators of these types, for this value (a URL indicator: one whose
     * value holds it), and of these actions, expired ones too, the newest first.
     */
    matching(db: Db, types: readonly string[], value: string, actions: readonly string[]): Promise<IndicatorsTable[]> {
      return db.selectFrom('indicators').selectAll().where('type', 'in', types)
        .where((eb) => eb.or([eb('value', '=', value), eb.and([eb('type', '=', 'url'), eb('value', 'like', `%${value}%`)])]))
        .where('action', 'in', actions).orderBy('created_at', 'desc').execute();
    },
    /** An indicator's hits on a device in one hour. */
    hitsInHour(db: Db, key: Pick<IndicatorHitsTable, 'indicator_id' | 'device_id' | 'hour'>): Promise<Pick<IndicatorHitsTable, 'count' | 'first_at' | 'last_at'> | undefined> {
      return db.selectFrom('indicator_hits').select(['count', 'first_at', 'last_at']).where('indicator_id', '=', key.indicator_id)
        .where('device_id', '=', key.device_id).where('hour', '=', key.hour).executeTakeFirst();
    },
    async insertHits(db: Db, row: IndicatorHitsTable): Promise<void> {
      await db.insertInto('indicator_hits').values(row).execute();
    },
    async updateHits(db: Db, key: Pick<IndicatorHitsTable, 'indicator_id' | 'device_id' | 'hour'>, patch: Pick<IndicatorHitsTable, 'count' | 'first_at' | 'last_at' | 'last_hit'>): Promise<void> {
      await db.updateTable('indicator_hits').set(patch).where('indicator_id', '=', key.indicator_id).where('device_id', '=', key.device_id).where('hour', '=', key.hour).execute();
    },
    /**
     * Hits per indicator and device, summed over their hours, with the
     * latest hour's last hit, on devices of these groups (null: all), the
     * most recent first.
     */
    hitsByDevice(db: Db, filter: { indicatorId?: string; deviceId?: string }, groupIds: readonly string[] | null, limit: number) {
      let q = db.selectFrom('indicator_hits').innerJoin('devices', 'devices.id', 'indicator_hits.device_id')
        .select((eb) => [
          'indicator_hits.indicator_id', 'indicator_hits.device_id', 'devices.name as device_name', 'devices.group_id',
          eb.fn.sum<number>('indicator_hits.count').as('count'), eb.fn.min<number>('indicator_hits.first_at').as('first_at'), eb.fn.max<number>('indicator_hits.last_at').as('last_at'),
          eb.selectFrom('indicator_hits as latest').select('latest.last_hit').whereRef('latest.indicator_id', '=', 'indicator_hits.indicator_id')
            .whereRef('latest.device_id', '=', 'indicator_hits.device_id').orderBy('latest.last_at', 'desc').limit(1).as('last_hit'),
        ])
        .groupBy(['indicator_hits.indicator_id', 'indicator_hits.device_id', 'devices.name', 'devices.group_id']);
      if (filter.indicatorId) q = q.where('indicator_hits.indicator_id', '=', filter.indicatorId);
      if (filter.deviceId) q = q.where('indicator_hits.device_id', '=', filter.deviceId);
      if (groupIds !== null) q = q.where(groupScope('devices.group_id', groupIds));
      return q.orderBy('last_at', 'desc').limit(limit).execute();
    },
  };
}
export type IndicatorsRepository = ReturnType<typeof createIndicatorsRepository>;
