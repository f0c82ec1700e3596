import type { AlertEvidenceTable, AlertsTable } from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';

/** What the alert list is filtered by; `after` is the keyset of the last row of the page before. */
export interface AlertFilter {
  groupIds: readonly string[] | null;
  status?: string;
  severity?: string;
  deviceId?: string;
  after?: { receivedAt: number; id: string };
}

/** Alerts and their evidence keys (what alerts and devices are found by). */
export function createAlertsRepository() {
  return {
    findById(db: Db, id: string): Promise<AlertsTable | undefined> {
      return db.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The alert a source already delivered under this id. */
    findByExternalId(db: Db, detectionSource: string, externalId: string): Promise<AlertsTable | undefined> {
      return db.selectFrom('alerts').selectAll().where('detection_source', '=', detectionSource).where('external_id', '=', externalId).executeTakeFirst();
    },
    async insert(db: Db, row: AlertsTable, keys: ReadonlyArray<Pick<AlertEvidenceTable, 'kind' | 'value'>>): Promise<void> {
      await db.insertInto('alerts').values(row).execute();
      if (keys.length > 0) await db.insertInto('alert_evidence').values(keys.map((k) => ({ alert_id: row.id, ...k }))).execute();
    },
    async update(db: Db, id: string, patch: Partial<AlertsTable>): Promise<void> {
      await db.updateTable('alerts').set(patch).where('id', '=', id).execute();
    },
    /** The newest first, a page of `limit`. */
    page(db: Db, filter: AlertFilter, limit: number): Promise<AlertsTable[]> {
      let q = db.selectFrom('alerts').selectAll().where(groupScope('group_id', filter.groupIds));
      if (filter.status) q = q.where('status', '=', filter.status);
      if (filter.severity) q = q.where('severity', '=', filter.severity);
      if (filter.deviceId) q = q.where('device_id', '=', filter.deviceId);
      const after = filter.after;
      if (after) q = q.where((eb) => eb.or([eb('received_at', '<', after.receivedAt), eb.and([eb('received_at', '=', after.receivedAt), eb('id', '<', after.id)])]));
      return q.orderBy('received_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    },
    /**
     * The completed actions on these files that the alert led to: taken by
     * the antivirus as the alert (its external id is the action's id), or by
     * an investigation the alert started.
     */
    async completedActionsOf(db: Db, alert: { id: string; externalId: string | null }, sha256s: readonly string[]): Promise<string[]> {
      const investigations = db.selectFrom('investigation_alerts').select('investigation_id').where('alert_id', '=', alert.id);
      return (await db.selectFrom('actions').select('id').where('status', '=', 'completed').where('entity_sha256', 'in', sha256s)
        .where((eb) => eb.or([eb('id', '=', alert.externalId ?? ''), eb('investigation_id', 'in', investigations)])).execute()).map((row) => row.id);
    },
  };
}
export type AlertsRepository = ReturnType<typeof createAlertsRepository>;
