import type { ActionsTable, AlertsTable, IncidentsTable, InvestigationsTable } from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';

/** An alert as an incident's scoped view reads it. */
export type IncidentAlert = Pick<AlertsTable, 'title' | 'device_id' | 'device_name' | 'group_id' | 'severity' | 'occurred_at'>;

/**
 * Incidents and what they are read with: their alerts and evidence, the
 * investigations those alerts started, and those investigations' actions
 * and verdicts.
 */
export function createIncidentsRepository() {
  return {
    findById(db: Db, id: string): Promise<IncidentsTable | undefined> {
      return db.selectFrom('incidents').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async insert(db: Db, row: IncidentsTable): Promise<void> {
      await db.insertInto('incidents').values(row).execute();
    },
    async update(db: Db, id: string, patch: Partial<Pick<IncidentsTable, 'status' | 'severity' | 'last_activity_at' | 'updated_at'>>): Promise<void> {
      await db.updateTable('incidents').set(patch).where('id', '=', id).execute();
    },
    async assignAlert(db: Db, alertId: string, incidentId: string): Promise<void> {
      await db.updateTable('alerts').set({ incident_id: incidentId }).where('id', '=', alertId).execute();
    },

    /** The active incident holding an alert on this device received since `since`, the latest first. */
    async activeOnDevice(db: Db, alert: Pick<AlertsTable, 'id' | 'device_id'>, since: number): Promise<string | undefined> {
      return (await db.selectFrom('alerts').innerJoin('incidents', 'incidents.id', 'alerts.incident_id').select('incidents.id')
        .where('alerts.device_id', '=', alert.device_id).where('alerts.id', '<>', alert.id).where('incidents.status', '=', 'active')
        .where('alerts.received_at', '>=', since).orderBy('alerts.received_at', 'desc').executeTakeFirst())?.id;
    },
    /** The active incident holding an alert received since `since` that shares evidence of these kinds with this alert, the latest first. */
    async activeSharingEvidence(db: Db, alertId: string, kinds: readonly string[], since: number): Promise<string | undefined> {
      return (await db.selectFrom('alert_evidence as mine')
        .innerJoin('alert_evidence as theirs', (join) => join.onRef('theirs.kind', '=', 'mine.kind').onRef('theirs.value', '=', 'mine.value'))
        .innerJoin('alerts', 'alerts.id', 'theirs.alert_id').innerJoin('incidents', 'incidents.id', 'alerts.incident_id').select('incidents.id')
        .where('mine.alert_id', '=', alertId).where('theirs.alert_id', '<>', alertId).where('mine.kind', 'in', kinds)
        .where('incidents.status', '=', 'active').where('alerts.received_at', '>=', since)
        .orderBy('alerts.received_at', 'desc').executeTakeFirst())?.id;
    },

    /** Incidents with an alert in these device groups (null: all), the latest activity first. */
    listVisible(db: Db, groupIds: readonly string[] | null, limit: number): Promise<IncidentsTable[]> {
      return db.selectFrom('incidents').selectAll()
        .where('id', 'in', (eb) => eb.selectFrom('alerts').select('incident_id').where(groupScope('group_id', groupIds)).where('incident_id', 'is not', null).$narrowType<{ incident_id: string }>())
        .orderBy('last_activity_at', 'desc').limit(limit).execute();
    },
    /** Whether the incident holds an alert in these device groups. */
    async hasAlertIn(db: Db, id: string, groupIds: readonly string[] | null): Promise<boolean> {
      return (await db.selectFrom('alerts').select('id').where('incident_id', '=', id).where(groupScope('group_id', groupIds)).executeTakeFirst()) !== undefined;
    },
    async alertCounts(db: Db, id: string): Promise<{ alerts: number; devices: number }> {
      const counts = await db.selectFrom('alerts').select((eb) => [eb.fn.countAll<number>().as('alerts'), eb.fn.count<number>('device_id').distinct().as('devices')])
        .where('incident_id', '=', id).executeTakeFirstOrThrow();
      return { alerts: Number(counts.alerts), devices: Number(counts.devices) };
    },
    /** Its alerts, oldest first, as much of them as a scoped view needs. */
    alertFacts(db: Db, id: string): Promise<IncidentAlert[]> {
      return db.selectFrom('alerts').select(['title', 'device_id', 'device_name', 'group_id', 'severity', 'occurred_at'])
        .where('incident_id', '=', id).orderBy('received_at').orderBy('id').execute();
    },
    alerts(db: Db, id: string): Promise<AlertsTable[]> {
      return db.selectFrom('alerts').selectAll().where('incident_id', '=', id).orderBy('received_at').execute();
    },
    evidence(db: Db, alertIds: readonly string[]): Promise<Array<{ kind: string; value: string; device_id: string }>> {
      return db.selectFrom('alert_evidence').innerJoin('alerts', 'alerts.id', 'alert_evidence.alert_id')
        .select(['alert_evidence.kind', 'alert_evidence.value', 'alerts.device_id']).where('alert_evidence.alert_id', 'in', alertIds).execute();
    },
    /** The investigations these alerts started, oldest first. */
    investigations(db: Db, alertIds: readonly string[]): Promise<InvestigationsTable[]> {
      return db.selectFrom('investigations').selectAll()
        .where('id', 'in', (eb) => eb.selectFrom('investigation_alerts').select('investigation_id').where('alert_id', 'in', alertIds)).orderBy('started_at').execute();
    },
    /** Those investigations' actions in these device groups, oldest first. */
    actions(db: Db, investigationIds: readonly string[], groupIds: readonly string[] | null): Promise<ActionsTable[]> {
      return investigationIds.length === 0 ? Promise.resolve([]) : db.selectFrom('actions').selectAll().where('investigation_id', 'in', investigationIds)
        .where(groupScope('group_id', groupIds)).orderBy('requested_at').execute();
    },
    /** The verdicts that led to these actions. */
    verdicts(db: Db, actionIds: readonly string[]): Promise<Array<{ action_id: string | null; verdict: string | null; reason: string | null }>> {
      return actionIds.length === 0 ? Promise.resolve([]) : db.selectFrom('investigation_entities').select(['action_id', 'verdict', 'reason'])
        .where('action_id', 'in', actionIds).where('verdict', 'is not', null).execute();
    },
  };
}
export type IncidentsRepository = ReturnType<typeof createIncidentsRepository>;
