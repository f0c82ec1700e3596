import type { AlertSeverity, Incident, UpdateIncidentBody, Verdict } from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { AlertsTable, IncidentsTable } from '../../db/schema.ts';
import { type Db, type Store, groupScope } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import { presentAction } from '../actions/actions.presenter.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { presentAlert } from '../alerts/alerts.service.ts';
import { presentInvestigation } from '../investigations/investigations.service.ts';

const VERDICT_RANK: Record<Verdict, number> = { no_threats_found: 0, suspicious: 1, malicious: 2 };

/** Alerts on one device this close together belong to one incident. */
const SAME_DEVICE_WINDOW_MS = 24 * 3_600_000;
/** Alerts on different devices that share strong evidence this close together belong to one incident. */
const SHARED_EVIDENCE_WINDOW_MS = 7 * 24 * 3_600_000;
/** Evidence specific enough to tie devices together: hashes, addresses, URLs (not user names or process names). */
const STRONG_EVIDENCE = ['sha256', 'sha1', 'md5', 'ip', 'url', 'registry_key'];
const SEVERITY_RANK: Record<AlertSeverity, number> = { informational: 0, low: 1, medium: 2, high: 3 };

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Incidents: each alert joins the active incident that already holds an
 * alert on its device from the last day, or one that shares a hash, address
 * or URL with it from the last week; otherwise it opens a new incident.
 */
export function createIncidentsService(deps: { store: Store; audit: AuditService; clock: Clock; ids: Ids }) {
  const { store, audit, clock, ids } = deps;

  /**
   * An incident as the actor may see it. Shared evidence can join alerts of
   * several device groups in one incident: a user scoped to groups sees it
   * made of their groups' alerts alone — its title, severity, activity and
   * counts as those alerts would have made them.
   */
  async function present(db: Db, row: IncidentsTable, actor: Actor): Promise<Incident> {
    const whole = {
      id: row.id, title: row.title, status: row.status as Incident['status'], severity: row.severity as AlertSeverity,
      firstActivityAt: iso(row.first_activity_at), lastActivityAt: iso(row.last_activity_at), updatedAt: iso(row.updated_at),
    };
    if (actor.groupIds === null) {
      const counts = await db.selectFrom('alerts').select((eb) => [eb.fn.countAll<number>().as('alerts'), eb.fn.count<number>('device_id').distinct().as('devices')])
        .where('incident_id', '=', row.id).executeTakeFirstOrThrow();
      return { ...whole, alertCount: Number(counts.alerts), deviceCount: Number(counts.devices) };
    }
    const all = await db.selectFrom('alerts').select(['title', 'device_id', 'device_name', 'group_id', 'severity', 'occurred_at'])
      .where('incident_id', '=', row.id).orderBy('received_at').orderBy('id').execute();
    const alerts = all.filter((a) => inScope(actor, a.group_id));
    const counts = { alertCount: alerts.length, deviceCount: new Set(alerts.map((a) => a.device_id)).size };
    const first = alerts[0];
    if (alerts.length === all.length || !first) return { ...whole, ...counts };
    const severity = alerts.reduce((top, a) => (SEVERITY_RANK[a.severity as AlertSeverity] > SEVERITY_RANK[top] ? a.severity as AlertSeverity : top), 'informational' as AlertSeverity);
    const times = alerts.map((a) => a.occurred_at);
    return {
      ...whole, ...counts, title: `${first.title} on ${first.device_name}`.slice(0, 600), severity,
      firstActivityAt: iso(Math.min(...times)), lastActivityAt: iso(Math.max(...times)),
    };
  }

  /** The incident in scope: one of its alerts is on a device the actor may see. */
  async function findVisible(actor: Actor, id: string): Promise<IncidentsTable> {
    const row = await store.db.selectFrom('incidents').selectAll().where('id', '=', id).executeTakeFirst();
    const visible = row && (await store.db.selectFrom('alerts').select('id').where('incident_id', '=', id).where(groupScope('group_id', actor.groupIds)).executeTakeFirst());
    if (!row || !visible) throw new QuellError('incident_not_found', `No such incident: ${id}`);
    return row;
  }

  return {
    /** Called inside the transaction that stores an alert (after its evidence): puts it in an incident. */
    async onAlert(trx: Db, alert: AlertsTable): Promise<void> {
      const now = clock.now();
      const sameDevice = await trx.selectFrom('alerts').innerJoin('incidents', 'incidents.id', 'alerts.incident_id').select('incidents.id')
        .where('alerts.device_id', '=', alert.device_id).where('alerts.id', '<>', alert.id).where('incidents.status', '=', 'active')
        .where('alerts.received_at', '>=', now - SAME_DEVICE_WINDOW_MS).orderBy('alerts.received_at', 'desc').executeTakeFirst();
      const shared = sameDevice ?? await trx.selectFrom('alert_evidence as mine')
        .innerJoin('alert_evidence as theirs', (join) => join.onRef('theirs.kind', '=', 'mine.kind').onRef('theirs.value', '=', 'mine.value'))
        .innerJoin('alerts', 'alerts.id', 'theirs.alert_id').innerJoin('incidents', 'incidents.id', 'alerts.incident_id').select('incidents.id')
        .where('mine.alert_id', '=', alert.id).where('theirs.alert_id', '<>', alert.id).where('mine.kind', 'in', STRONG_EVIDENCE)
        .where('incidents.status', '=', 'active').where('alerts.received_at', '>=', now - SHARED_EVIDENCE_WINDOW_MS)
        .orderBy('alerts.received_at', 'desc').executeTakeFirst();
      let incidentId = shared?.id;
      if (incidentId) {
        const incident = await trx.selectFrom('incidents').selectAll().where('id', '=', incidentId).executeTakeFirstOrThrow();
        const severity = SEVERITY_RANK[alert.severity as AlertSeverity] > SEVERITY_RANK[incident.severity as AlertSeverity] ? alert.severity : incident.severity;
        await trx.updateTable('incidents').set({ severity, last_activity_at: Math.max(incident.last_activity_at, alert.occurred_at), updated_at: now }).where('id', '=', incidentId).execute();
      } else {
        incidentId = ids.next();
        await trx.insertInto('incidents').values({
          id: incidentId, title: `${alert.title} on ${alert.device_name}`.slice(0, 600), status: 'active', severity: alert.severity,
          first_activity_at: alert.occurred_at, last_activity_at: alert.occurred_at, created_at: now, updated_at: now,
        }).execute();
      }
      await trx.updateTable('alerts').set({ incident_id: incidentId }).where('id', '=', alert.id).execute();
      alert.incident_id = incidentId;
    },

    async list(actor: Actor): Promise<Incident[]> {
      requirePermission(actor, 'alerts:read');
      const rows = await store.db.selectFrom('incidents').selectAll()
        .where('id', 'in', (eb) => eb.selectFrom('alerts').select('incident_id').where(groupScope('group_id', actor.groupIds)).where('incident_id', 'is not', null).$narrowType<{ incident_id: string }>())
        .orderBy('last_activity_at', 'desc').limit(500).execute();
      return Promise.all(rows.map((row) => present(store.db, row, actor)));
    },

    async get(actor: Actor, id: string) {
      requirePermission(actor, 'alerts:read');
      const row = await findVisible(actor, id);
      const alerts = (await store.db.selectFrom('alerts').selectAll().where('incident_id', '=', id).orderBy('received_at').execute()).filter((a) => inScope(actor, a.group_id));
      const alertIds = alerts.map((a) => a.id);
      const evidence = await store.db.selectFrom('alert_evidence').innerJoin('alerts', 'alerts.id', 'alert_evidence.alert_id')
        .select(['alert_evidence.kind', 'alert_evidence.value', 'alerts.device_id']).where('alert_evidence.alert_id', 'in', alertIds).execute();
      const grouped = new Map<string, { kind: string; value: string; deviceIds: Set<string> }>();
      for (const e of evidence) {
        const key = `${e.kind}\u0000${e.value}`;
        if (!grouped.has(key)) grouped.set(key, { kind: e.kind, value: e.value, deviceIds: new Set() });
        grouped.get(key)!.deviceIds.add(e.device_id);
      }
      const investigations = await store.db.selectFrom('investigations').selectAll()
        .where('id', 'in', (eb) => eb.selectFrom('investigation_alerts').select('investigation_id').where('alert_id', 'in', alertIds)).orderBy('started_at').execute();
      const actions = investigations.length === 0 ? [] : await store.db.selectFrom('actions').selectAll().where('investigation_id', 'in', investigations.map((i) => i.id))
        .where(groupScope('group_id', actor.groupIds)).orderBy('requested_at').execute();
      const judged = actions.length === 0 ? [] : await store.db.selectFrom('investigation_entities').select(['action_id', 'verdict', 'reason'])
        .where('action_id', 'in', actions.map((a) => a.id)).where('verdict', 'is not', null).execute();
      const now = clock.now();
      return {
        incident: await present(store.db, row, actor),
        alerts: alerts.map(presentAlert),
        devices: [...new Map(alerts.map((a) => [a.device_id, { id: a.device_id, name: a.device_name }])).values()],
        evidence: [...grouped.values()].map((e) => ({ kind: e.kind, value: e.value, deviceIds: [...e.deviceIds] })),
        investigations: investigations.filter((i) => inScope(actor, i.group_id)).map((i) => presentInvestigation(i, now)),
        actions: actions.map(presentAction),
        // An action that remediates several entities shows the gravest verdict.
        verdicts: [...new Map(judged.sort((a, b) => VERDICT_RANK[a.verdict as Verdict] - VERDICT_RANK[b.verdict as Verdict])
          .map((e) => [e.action_id!, { actionId: e.action_id!, verdict: e.verdict as Verdict, reason: e.reason }])).values()],
      };
    },

    async update(actor: Actor, id: string, body: UpdateIncidentBody): Promise<Incident> {
      requirePermission(actor, 'alerts:manage');
      const row = await findVisible(actor, id);
      return store.transaction(async (trx) => {
        const updated = { ...row, status: body.status, updated_at: clock.now() };
        await trx.updateTable('incidents').set({ status: updated.status, updated_at: updated.updated_at }).where('id', '=', id).execute();
        await audit.record(trx, actor, { kind: 'incident.update', targetType: 'incident', targetId: id, before: { status: row.status }, after: { status: body.status } });
        return present(trx, updated, actor);
      });
    },
  };
}
export type IncidentsService = ReturnType<typeof createIncidentsService>;
