import { type ExpressionBuilder, type SelectQueryBuilder, sql } from 'kysely';
import { type ActionStatus, type ActionType, DELIVERABLE_STATUSES, FILE_QUARANTINE_TYPES, FLEET_ACTION_TYPES, OPEN_ACTION_STATUSES } from '@quell/contracts';
import type { ActionDriftTable, ActionEventsTable, ActionsTable, Database } from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';
import { pendingApproval } from '../../db/predicates.ts';

export interface ActionFilter {
  view?: 'pending' | 'history';
  from?: number;
  to?: number;
  type?: string;
  source?: string;
  /** Any of these statuses. */
  statuses?: readonly string[];
  entityType?: string;
  deviceId?: string;
  investigationId?: string;
  incidentId?: string;
  decidedBy?: string;
  entity?: string;
  /** Scope: only these device groups; null for every group. */
  groupIds: readonly string[] | null;
}

export type SortColumn = 'requested_at' | 'updated_at';
export interface Keyset { column: SortColumn; order: 'asc' | 'desc'; after: { value: number; id: string } | null; limit: number }

/** The columns the History export writes (not the signed command and other wide ones it leaves out). */
const EXPORT_FIELDS = [
  'id', 'type', 'status', 'entity_type', 'entity_name', 'entity_sha256', 'device_id', 'device_name', 'source', 'investigation_id', 'incident_id',
  'approval_id', 'requested_by', 'requested_at', 'decided_by', 'decided_at', 'comment', 'decision_comment', 'updated_at',
] as const satisfies ReadonlyArray<keyof ActionsTable>;
export type ExportRow = Pick<ActionsTable, (typeof EXPORT_FIELDS)[number]>;

function applyFilter<O>(query: SelectQueryBuilder<Database, 'actions', O>, filter: ActionFilter): SelectQueryBuilder<Database, 'actions', O> {
  let q = query;
  if (filter.view === 'pending') q = q.where('status', '=', 'pending_approval');
  if (filter.view === 'history') q = q.where('status', '<>', 'pending_approval');
  if (filter.from !== undefined) q = q.where('requested_at', '>=', filter.from);
  if (filter.to !== undefined) q = q.where('requested_at', '<', filter.to);
  if (filter.type !== undefined) q = q.where('type', '=', filter.type);
  if (filter.source !== undefined) q = q.where('source', '=', filter.source);
  if (filter.statuses !== undefined) q = q.where('status', 'in', filter.statuses);
  if (filter.entityType !== undefined) q = q.where('entity_type', '=', filter.entityType);
  if (filter.deviceId !== undefined) q = q.where('device_id', '=', filter.deviceId);
  if (filter.investigationId !== undefined) q = q.where('investigation_id', '=', filter.investigationId);
  if (filter.incidentId !== undefined) {
    const incidentId = filter.incidentId;
    q = q.where((eb) => eb.or([
      eb('incident_id', '=', incidentId),
      eb('investigation_id', 'in', eb.selectFrom('investigation_alerts').innerJoin('alerts', 'alerts.id', 'investigation_alerts.alert_id')
        .select('investigation_alerts.investigation_id').where('alerts.incident_id', '=', incidentId)),
    ]));
  }
  if (filter.decidedBy !== undefined) q = q.where('decided_by', '=', filter.decidedBy);
  if (filter.entity !== undefined) {
    // LIKE wildcards in the search are matched literally.
    const pattern = `%${filter.entity.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const sha256 = /^[0-9a-fA-F]{64}$/.test(filter.entity) ? filter.entity.toLowerCase() : null;
    q = q.where((eb) => eb.or([
      sql<boolean>`lower(entity_name) LIKE ${pattern} ESCAPE '\\'`,
      sql<boolean>`lower(coalesce(entity_path, '')) LIKE ${pattern} ESCAPE '\\'`,
      ...(sha256 ? [eb('entity_sha256', '=', sha256)] : []),
    ]));
  }
  return q.where(groupScope('group_id', filter.groupIds));
}

export function createActionsRepository() {
  return {
    async insert(db: Db, row: ActionsTable): Promise<void> {
      await db.insertInto('actions').values(row).execute();
    },

    /**
     * Inserts unless an open action with the same device, type and entity key
     * is there (the partial unique index actions_open_once, which also holds
     * against a concurrent transaction); returns whether it was inserted.
     */
    async insertUnlessOpen(db: Db, row: ActionsTable): Promise<boolean> {
      const result = await db.insertInto('actions').values(row).onConflict((oc) => oc.doNothing()).executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
    },

    /** The open action of this type on the entity (entityKey) on the device, if any. */
    async findOpen(db: Db, deviceId: string, type: string, entityKey: string): Promise<ActionsTable | undefined> {
      return db.selectFrom('actions').selectAll().where('device_id', '=', deviceId).where('type', '=', type).where('entity_key', '=', entityKey)
        .where('status', 'in', OPEN_ACTION_STATUSES).executeTakeFirst();
    },

    /** The latest action of these types on the entity on the device that is no longer open: what was last decided or done about it. */
    async lastClosed(db: Db, deviceId: string, types: readonly string[], entityKey: string): Promise<ActionsTable | undefined> {
      return db.selectFrom('actions').selectAll().where('device_id', '=', deviceId).where('type', 'in', types).where('entity_key', '=', entityKey)
        .where('status', 'not in', OPEN_ACTION_STATUSES).orderBy('updated_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
    },

    /** Of these devices, the ones where the file is quarantined now: a completed quarantine of its SHA-256 that has not been undone. */
    async quarantinedOn(db: Db, sha256: string, deviceIds: readonly string[]): Promise<Set<string>> {
      if (deviceIds.length === 0) return new Set();
      const rows = await db.selectFrom('actions').select('device_id').distinct().where('entity_sha256', '=', sha256.toLowerCase())
        .where('type', 'in', FILE_QUARANTINE_TYPES).where('status', '=', 'completed').where('undone_by', 'is', null).where('device_id', 'in', deviceIds).execute();
      return new Set(rows.map((r) => r.device_id));
    },

    async insertEvent(db: Db, row: ActionEventsTable): Promise<void> {
      await db.insertInto('action_events').values(row).execute();
    },

    async findById(db: Db, id: string): Promise<ActionsTable | undefined> {
      return db.selectFrom('actions').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async findByIds(db: Db, ids: readonly string[]): Promise<ActionsTable[]> {
      if (ids.length === 0) return [];
      return db.selectFrom('actions').selectAll().where('id', 'in', ids).execute();
    },

    /** Counts one more time the action's effect was found lifted on the device; returns how many times now. */
    async recordDrift(db: Db, drift: { actionId: string; deviceId: string; at: number; detail: string; repaired: boolean }): Promise<number> {
      const repaired = drift.repaired ? 1 : 0;
      await db.insertInto('action_drift')
        .values({ action_id: drift.actionId, device_id: drift.deviceId, count: 1, first_at: drift.at, last_at: drift.at, detail: drift.detail, repaired })
        .onConflict((oc) => oc.columns(['action_id', 'device_id']).doUpdateSet((eb) => ({ count: eb('action_drift.count', '+', 1), last_at: drift.at, detail: drift.detail, repaired })))
        .execute();
      const row = await db.selectFrom('action_drift').select('count').where('action_id', '=', drift.actionId).where('device_id', '=', drift.deviceId).executeTakeFirstOrThrow();
      return Number(row.count);
    },

    /** Where the action's effect was found lifted, most recent first, with the devices' names. */
    async drifts(db: Db, actionId: string): Promise<Array<ActionDriftTable & { device_name: string }>> {
      return db.selectFrom('action_drift').innerJoin('devices', 'devices.id', 'action_drift.device_id')
        .selectAll('action_drift').select('devices.name as device_name')
        .where('action_drift.action_id', '=', actionId).orderBy('action_drift.last_at', 'desc').limit(50).execute();
    },

    /** The alerts behind an investigation (oldest first, the first 20), with the incident each belongs to. */
    async alertsOf(db: Db, investigationId: string): Promise<Array<{ id: string; title: string; incident_id: string | null }>> {
      return db.selectFrom('investigation_alerts').innerJoin('alerts', 'alerts.id', 'investigation_alerts.alert_id')
        .select(['alerts.id', 'alerts.title', 'alerts.incident_id'])
        .where('investigation_alerts.investigation_id', '=', investigationId).orderBy('alerts.occurred_at').orderBy('alerts.id').limit(20).execute();
    },

    async events(db: Db, actionId: string): Promise<ActionEventsTable[]> {
      return db.selectFrom('action_events').selectAll().where('action_id', '=', actionId).orderBy('at').orderBy('id').execute();
    },

    /**
     * Compare-and-set: changes the row only if it is still in `from`.
     * Returns false when another decision got there first.
     */
    async transition(db: Db, id: string, from: ActionStatus, patch: Partial<ActionsTable> & { status: ActionStatus; updated_at: number }): Promise<boolean> {
      const result = await db.updateTable('actions').set(patch).where('id', '=', id).where('status', '=', from).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Links an original to its undo; only succeeds once per original. */
    async linkUndo(db: Db, id: string, undoId: string, now: number): Promise<boolean> {
      const result = await db.updateTable('actions').set({ undone_by: undoId, updated_at: now })
        .where('id', '=', id).where('status', '=', 'completed').where('undone_by', 'is', null).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Frees an original from its undo `undoId` (which ended without completing), so it may be undone again. */
    async unlinkUndo(db: Db, id: string, undoId: string, now: number): Promise<void> {
      await db.updateTable('actions').set({ undone_by: null, updated_at: now }).where('id', '=', id).where('undone_by', '=', undoId).execute();
    },

    /** The containment state version a fleet action took effect at. */
    async setStateVersion(db: Db, id: string, version: number): Promise<void> {
      await db.updateTable('actions').set({ state_version: version }).where('id', '=', id).execute();
    },

    page(db: Db, filter: ActionFilter, keyset: Keyset): Promise<ActionsTable[]> {
      return inKeysetOrder(applyFilter(db.selectFrom('actions').selectAll(), filter), keyset).execute();
    },
    /** A page of the History export: its columns only. */
    exportPage(db: Db, filter: ActionFilter, keyset: Keyset): Promise<ExportRow[]> {
      return inKeysetOrder(applyFilter(db.selectFrom('actions').select(EXPORT_FIELDS), filter), keyset).execute();
    },

    /** How many actions match, counting no further than `upTo`: the count reads that many index entries at most. */
    async countUpTo(db: Db, filter: ActionFilter, upTo: number): Promise<number> {
      const matches = applyFilter(db.selectFrom('actions'), filter).select('actions.id').limit(upTo);
      const row = await db.selectFrom(matches.as('matches')).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async pendingDue(db: Db, now: number, limit: number): Promise<Array<Pick<ActionsTable, 'id'>>> {
      return db.selectFrom('actions').select('id').where('status', '=', 'pending_approval').where('expires_at', '<=', now)
        .orderBy('expires_at').limit(limit).execute();
    },

    async queuedPastDeadline(db: Db, now: number, limit: number): Promise<Array<Pick<ActionsTable, 'id'>>> {
      return db.selectFrom('actions').select('id').where('status', '=', 'queued').where('deliver_by', '<=', now)
        .orderBy('deliver_by').limit(limit).execute();
    },

    /**
     * The actions an agent should hold: queued ones to run, in-progress ones whose result it may still owe.
     * In the order their commands were signed, which is when they were queued (`decided_at`), not requested:
     * the agent refuses a command signed well before one it already took (its watermark).
     */
    async openCommandsForDevice(db: Db, deviceId: string): Promise<Array<Pick<ActionsTable, 'id' | 'status' | 'command_jws'>>> {
      return db.selectFrom('actions').select(['id', 'status', 'command_jws']).where('device_id', '=', deviceId)
        .where('status', 'in', DELIVERABLE_STATUSES).where('command_jws', 'is not', null)
        .orderBy('decided_at').orderBy('requested_at').orderBy('id').limit(1000).execute();
    },

    /** Queued commands, oldest first, at most `limit`: what agents should have been sent by now. */
    queuedCommands(db: Db, limit: number): Promise<Array<Pick<ActionsTable, 'id' | 'device_id'>>> {
      return db.selectFrom('actions').select(['id', 'device_id']).where('status', '=', 'queued').where('command_jws', 'is not', null)
        .orderBy('requested_at').orderBy('id').limit(limit).execute();
    },

    /** Completed quarantines of the same file on other devices that have not been undone. */
    async quarantineInstances(db: Db, sha256: string, types: readonly ActionType[], excludeId: string, groupIds: readonly string[] | null): Promise<ActionsTable[]> {
      return applyFilter(db.selectFrom('actions').selectAll(), { groupIds })
        .where('entity_sha256', '=', sha256.toLowerCase()).where('type', 'in', types).where('status', '=', 'completed')
        .where('undone_by', 'is', null).where('id', '<>', excludeId).orderBy('requested_at', 'desc').limit(1000).execute();
    },

    async pendingByType(db: Db, groupIds: readonly string[] | null): Promise<Array<{ type: string; count: number; oldest: number }>> {
      const rows = await applyFilter(db.selectFrom('actions'), { groupIds }).where(pendingApproval)
        .select('type').select((eb: ExpressionBuilder<Database, 'actions'>) => [eb.fn.countAll<number>().as('count'), eb.fn.min('requested_at').as('oldest')])
        .groupBy('type').orderBy('type').execute();
      return rows.map((r) => ({ type: r.type, count: Number(r.count), oldest: Number(r.oldest) }));
    },

    /** Queued actions (containment aside) on devices not heard from since `seenSince` (or never): how many, on how many devices, and when the latest of those devices was seen. */
    async queuedOffline(db: Db, seenSince: number, groupIds: readonly string[] | null): Promise<{ actions: number; devices: number; lastSeenAt: number | null }> {
      const row = await db.selectFrom('actions').innerJoin('devices', 'devices.id', 'actions.device_id')
        .select((eb) => [eb.fn.countAll<number>().as('actions'), eb.fn.count<number>('actions.device_id').distinct().as('devices'), eb.fn.max('devices.last_seen_at').as('last_seen_at')])
        .where('actions.status', '=', 'queued').where(groupScope('actions.group_id', groupIds))
        // Containment waits for the other devices' agents, not for its own device.
        .where('actions.type', 'not in', FLEET_ACTION_TYPES)
        .where((eb) => eb.or([eb('devices.last_seen_at', 'is', null), eb('devices.last_seen_at', '<', seenSince)]))
        .executeTakeFirstOrThrow();
      return { actions: Number(row.actions), devices: Number(row.devices), lastSeenAt: row.last_seen_at === null ? null : Number(row.last_seen_at) };
    },

    async statusPerDay(db: Db, since: number, groupIds: readonly string[] | null): Promise<Array<{ day: number; status: string; count: number }>> {
      const day = sql<number>`requested_at / 86400000`;
      const rows = await applyFilter(db.selectFrom('actions'), { from: since, groupIds })
        .select('status').select((eb: ExpressionBuilder<Database, 'actions'>) => [day.as('day'), eb.fn.countAll<number>().as('count')])
        .groupBy([day, 'status']).orderBy(day).orderBy('status').execute();
      return rows.map((r) => ({ day: Number(r.day), status: r.status, count: Number(r.count) }));
    },

    async countByStatusAndType(db: Db): Promise<Array<{ status: string; type: string; count: number }>> {
      const rows = await db.selectFrom('actions').select(['status', 'type']).select((eb) => eb.fn.countAll<number>().as('count')).groupBy(['status', 'type']).execute();
      return rows.map((r) => ({ status: r.status, type: r.type, count: Number(r.count) }));
    },
  };
}
export type ActionsRepository = ReturnType<typeof createActionsRepository>;

/** The page after `keyset.after` in the keyset's order (its column, then id). */
function inKeysetOrder<O>(query: SelectQueryBuilder<Database, 'actions', O>, keyset: Keyset): SelectQueryBuilder<Database, 'actions', O> {
  const { column, order, after, limit } = keyset;
  const cmp = order === 'desc' ? sql.raw('<') : sql.raw('>');
  const from = after === null ? query : query.where(sql<boolean>`(${sql.ref(column)}, id) ${cmp} (${after.value}, ${after.id})`);
  return from.orderBy(column, order).orderBy('id', order).limit(limit);
}
