import type {
  ActionsTable, AlertsTable, DeviceGroupsTable, DevicesTable, FileSightingsTable, InvestigationEntitiesTable, InvestigationLogTable, InvestigationsTable,
} from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';

/** A device as investigations read it. */
export type InvestigatedDevice = Pick<DevicesTable, 'id' | 'name' | 'group_id'>;
/** An entity with the name and group of its device, for the scoped detail view. */
export type EntityOnDevice = InvestigationEntitiesTable & { device_name: string; device_group_id: string | null };

/** How many sightings go in one insert. */
const SIGHTINGS_BATCH = 100;

/**
 * Investigations and what their steps read and write: their alerts,
 * entities, log and actions, the devices, agents and alerts they look at,
 * and where the fleet's evidence showed each hash.
 */
export function createInvestigationsRepository() {
  const deviceById = (db: Db, id: string) => db.selectFrom('devices').select(['id', 'name', 'group_id']).where('id', '=', id);
  const investigationById = (db: Db, id: string) => db.selectFrom('investigations').selectAll().where('id', '=', id);

  return {
    findById(db: Db, id: string): Promise<InvestigationsTable | undefined> {
      return investigationById(db, id).executeTakeFirst();
    },
    /** The investigation, which must exist: it throws otherwise. */
    getById(db: Db, id: string): Promise<InvestigationsTable> {
      return investigationById(db, id).executeTakeFirstOrThrow();
    },
    /** The investigation running on a device (a device has at most one). */
    runningOn(db: Db, deviceId: string): Promise<InvestigationsTable | undefined> {
      return db.selectFrom('investigations').selectAll().where('device_id', '=', deviceId).where('step', '<>', 'done').executeTakeFirst();
    },
    async insert(db: Db, row: InvestigationsTable): Promise<void> {
      await db.insertInto('investigations').values(row).execute();
    },
    async update(db: Db, id: string, patch: Partial<InvestigationsTable>): Promise<void> {
      await db.updateTable('investigations').set(patch).where('id', '=', id).execute();
    },
    /** Updates the investigation if it still has this status; returns whether it did. */
    async updateIfStatus(db: Db, id: string, status: string, patch: Partial<InvestigationsTable>): Promise<boolean> {
      const updated = await db.updateTable('investigations').set(patch).where('id', '=', id).where('status', '=', status).executeTakeFirst();
      return Number(updated.numUpdatedRows) !== 0;
    },
    /** Takes the lease of a due, unfinished investigation that no one holds (or whose lease ran out); returns whether it did. */
    async claim(db: Db, id: string, owner: string, now: number, until: number): Promise<boolean> {
      const claimed = await db.updateTable('investigations').set({ locked_by: owner, locked_until: until })
        .where('id', '=', id).where('step', '<>', 'done').where('run_after', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)])).executeTakeFirst();
      return Number(claimed.numUpdatedRows) === 1;
    },
    /** Updates the investigation if `owner` still holds its lease. */
    async updateHeld(db: Db, id: string, owner: string, patch: Partial<InvestigationsTable>): Promise<void> {
      await db.updateTable('investigations').set(patch).where('id', '=', id).where('locked_by', '=', owner).execute();
    },
    /** Unfinished investigations due at `now` whose lease no one holds, the longest due first. */
    async due(db: Db, now: number, limit: number): Promise<string[]> {
      const rows = await db.selectFrom('investigations').select('id').where('step', '<>', 'done').where('run_after', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)])).orderBy('run_after').limit(limit).execute();
      return rows.map((row) => row.id);
    },
    /** Investigations on devices of these groups (null: all), those an alert started or joined when given, the newest first. */
    list(db: Db, groupIds: readonly string[] | null, alertId: string | undefined, limit: number): Promise<InvestigationsTable[]> {
      let q = db.selectFrom('investigations').selectAll().where(groupScope('group_id', groupIds));
      if (alertId !== undefined) q = q.where('id', 'in', db.selectFrom('investigation_alerts').select('investigation_id').where('alert_id', '=', alertId));
      return q.orderBy('started_at', 'desc').limit(limit).execute();
    },

    async linkAlert(db: Db, investigationId: string, alertId: string): Promise<void> {
      await db.insertInto('investigation_alerts').values({ investigation_id: investigationId, alert_id: alertId }).onConflict((oc) => oc.doNothing()).execute();
    },
    async alertIds(db: Db, investigationId: string): Promise<string[]> {
      return (await db.selectFrom('investigation_alerts').select('alert_id').where('investigation_id', '=', investigationId).execute()).map((row) => row.alert_id);
    },
    async alertCount(db: Db, investigationId: string): Promise<number> {
      const alerts = await db.selectFrom('investigation_alerts').select((eb) => eb.fn.countAll<number>().as('n')).where('investigation_id', '=', investigationId).executeTakeFirstOrThrow();
      return Number(alerts.n);
    },
    /** The investigation's alerts, as much of them as names the files they are about. */
    alerts(db: Db, investigationId: string): Promise<Array<Pick<AlertsTable, 'device_id' | 'severity' | 'evidence'>>> {
      return db.selectFrom('alerts').innerJoin('investigation_alerts', 'investigation_alerts.alert_id', 'alerts.id')
        .select(['alerts.device_id', 'alerts.severity', 'alerts.evidence']).where('investigation_alerts.investigation_id', '=', investigationId).execute();
    },
    /** A device's unresolved alerts received since `since`. */
    async openAlertIds(db: Db, deviceId: string, since: number): Promise<string[]> {
      const rows = await db.selectFrom('alerts').select('id').where('device_id', '=', deviceId).where('status', '<>', 'resolved').where('received_at', '>=', since).execute();
      return rows.map((row) => row.id);
    },
    /** Alerts on other devices than `deviceId` whose evidence holds any of these hashes (kind and value). */
    alertsWithHashesElsewhere(db: Db, hashes: ReadonlyArray<{ kind: string; value: string }>, deviceId: string): Promise<Array<Pick<AlertsTable, 'device_id' | 'device_name' | 'group_id' | 'evidence'>>> {
      return db.selectFrom('alert_evidence').innerJoin('alerts', 'alerts.id', 'alert_evidence.alert_id')
        .select(['alerts.device_id', 'alerts.device_name', 'alerts.group_id', 'alerts.evidence'])
        .where((eb) => eb.or(hashes.map((h) => eb.and([eb('alert_evidence.kind', '=', h.kind), eb('alert_evidence.value', '=', h.value)]))))
        .where('alerts.device_id', '<>', deviceId).execute();
    },
    /** A device's alerts received after `since` that name a file by its SHA-256 or its path, by id, at most `limit`. */
    alertsNamingSince(db: Db, file: Pick<InvestigationEntitiesTable, 'device_id' | 'value' | 'path'>, since: number, limit: number): Promise<Array<Pick<AlertsTable, 'id' | 'title'>>> {
      return db.selectFrom('alerts').innerJoin('alert_evidence', 'alert_evidence.alert_id', 'alerts.id').select(['alerts.id', 'alerts.title']).distinct()
        .where('alerts.device_id', '=', file.device_id).where('alerts.received_at', '>', since)
        .where((eb) => eb.or([
          eb.and([eb('alert_evidence.kind', '=', 'sha256'), eb('alert_evidence.value', '=', file.value)]),
          ...(file.path === null ? [] : [eb.and([eb('alert_evidence.kind', '=', 'path'), eb('alert_evidence.value', '=', file.path)])]),
        ])).orderBy('alerts.id').limit(limit).execute();
    },

    /** The investigation's entities, in the order found. */
    entities(db: Db, investigationId: string): Promise<InvestigationEntitiesTable[]> {
      return db.selectFrom('investigation_entities').selectAll().where('investigation_id', '=', investigationId).orderBy('id').execute();
    },
    /** The investigation's entities in the order found, each with its device's name and group. */
    entitiesOnDevices(db: Db, investigationId: string): Promise<EntityOnDevice[]> {
      return db.selectFrom('investigation_entities').innerJoin('devices', 'devices.id', 'investigation_entities.device_id').selectAll('investigation_entities')
        .select(['devices.name as device_name', 'devices.group_id as device_group_id']).where('investigation_id', '=', investigationId).orderBy('investigation_entities.id').execute();
    },
    async addEntity(db: Db, row: InvestigationEntitiesTable): Promise<void> {
      await db.insertInto('investigation_entities').values(row).execute();
    },
    async updateEntity(db: Db, id: string, patch: Partial<Omit<InvestigationEntitiesTable, 'id' | 'investigation_id'>>): Promise<void> {
      await db.updateTable('investigation_entities').set(patch).where('id', '=', id).execute();
    },
    async deleteEntity(db: Db, id: string): Promise<void> {
      await db.deleteFrom('investigation_entities').where('id', '=', id).execute();
    },

    async addLog(db: Db, row: InvestigationLogTable): Promise<void> {
      await db.insertInto('investigation_log').values(row).execute();
    },
    /** The investigation's log, oldest first. */
    log(db: Db, investigationId: string): Promise<InvestigationLogTable[]> {
      return db.selectFrom('investigation_log').selectAll().where('investigation_id', '=', investigationId).orderBy('started_at').orderBy('id').execute();
    },

    actionsByIds(db: Db, ids: readonly string[]): Promise<ActionsTable[]> {
      return ids.length === 0 ? Promise.resolve([]) : db.selectFrom('actions').selectAll().where('id', 'in', ids).execute();
    },
    /** The investigation's own actions and those its entities joined (another investigation or an analyst had proposed the same), oldest first. */
    actionsFollowed(db: Db, investigationId: string): Promise<ActionsTable[]> {
      return db.selectFrom('actions').selectAll().where((eb) => eb.or([
        eb('investigation_id', '=', investigationId),
        eb('id', 'in', eb.selectFrom('investigation_entities').select('action_id').where('investigation_id', '=', investigationId).where('action_id', 'is not', null)),
      ])).orderBy('requested_at').orderBy('id').execute();
    },
    /** The investigation's own actions pending approval. */
    async pendingApprovalIds(db: Db, investigationId: string): Promise<string[]> {
      return (await db.selectFrom('actions').select('id').where('investigation_id', '=', investigationId).where('status', '=', 'pending_approval').execute()).map((row) => row.id);
    },
    /** The collect_evidence actions the investigation asked of a device (only those with this status, when given), the newest first, at most `limit`. */
    evidenceRequests(db: Db, investigationId: string, deviceId: string, limit: number, status?: string): Promise<ActionsTable[]> {
      let q = db.selectFrom('actions').selectAll().where('investigation_id', '=', investigationId).where('type', '=', 'collect_evidence').where('device_id', '=', deviceId);
      if (status !== undefined) q = q.where('status', '=', status);
      return q.orderBy('requested_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    },

    findDevice(db: Db, id: string): Promise<InvestigatedDevice | undefined> {
      return deviceById(db, id).executeTakeFirst();
    },
    /** The device, which must exist (an entity's, an investigation's): it throws otherwise. */
    device(db: Db, id: string): Promise<InvestigatedDevice> {
      return deviceById(db, id).executeTakeFirstOrThrow();
    },
    devices(db: Db, ids: readonly string[]): Promise<Array<Pick<DevicesTable, 'id' | 'name'>>> {
      return db.selectFrom('devices').select(['id', 'name']).where('id', 'in', ids).execute();
    },
    /** The group's automation level; undefined when there is no such group. */
    async automationLevel(db: Db, groupId: string): Promise<DeviceGroupsTable['automation_level'] | undefined> {
      return (await db.selectFrom('device_groups').select('automation_level').where('id', '=', groupId).executeTakeFirst())?.automation_level;
    },
    /** Whether the device has an agent that is not revoked. */
    async hasAgent(db: Db, deviceId: string): Promise<boolean> {
      return (await db.selectFrom('agents').select('device_id').where('device_id', '=', deviceId).where('revoked_at', 'is', null).executeTakeFirst()) !== undefined;
    },
    /** Those of these devices that have an agent that is not revoked, with their names. */
    devicesWithAgents(db: Db, deviceIds: readonly string[]): Promise<Array<{ device_id: string; name: string }>> {
      return deviceIds.length === 0 ? Promise.resolve([]) : db.selectFrom('agents').innerJoin('devices', 'devices.id', 'agents.device_id').select(['agents.device_id', 'devices.name'])
        .where('agents.device_id', 'in', deviceIds).where('agents.revoked_at', 'is', null).execute();
    },

    /** On how many devices a hash was seen: in their alerts or in their evidence. */
    async deviceCountWith(db: Db, sha256: string): Promise<number> {
      const [alerted, sighted] = await Promise.all([
        db.selectFrom('alert_evidence').innerJoin('alerts', 'alerts.id', 'alert_evidence.alert_id').select('alerts.device_id').distinct()
          .where('alert_evidence.kind', '=', 'sha256').where('alert_evidence.value', '=', sha256).execute(),
        db.selectFrom('file_sightings').select('device_id').where('sha256', '=', sha256).execute(),
      ]);
      return new Set([...alerted, ...sighted].map((row) => row.device_id)).size;
    },
    /** Keeps these sightings; one of a hash already seen on its device updates its path and when it was last seen. */
    async upsertSightings(db: Db, rows: readonly FileSightingsTable[]): Promise<void> {
      for (let i = 0; i < rows.length; i += SIGHTINGS_BATCH) {
        await db.insertInto('file_sightings').values(rows.slice(i, i + SIGHTINGS_BATCH))
          .onConflict((oc) => oc.columns(['sha256', 'device_id']).doUpdateSet((eb) => ({ path: eb.ref('excluded.path'), last_seen: eb.ref('excluded.last_seen') }))).execute();
      }
    },

  };
}
export type InvestigationsRepository = ReturnType<typeof createInvestigationsRepository>;
