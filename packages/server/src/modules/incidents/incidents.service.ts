import type { AlertSeverity, Incident, UpdateIncidentBody, Verdict } from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { AlertsTable, IncidentsTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import { presentAction } from '../actions/actions.presenter.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { presentAlert } from '../alerts/alerts.presenter.ts';
import { presentInvestigation } from '../investigations/investigations.presenter.ts';
import type { IncidentsRepository } from './incidents.repository.ts';

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
export function createIncidentsService(deps: { store: Store; repo: IncidentsRepository; audit: AuditService; clock: Clock; ids: Ids }) {
  const { store, repo, audit, clock, ids } = deps;

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
      const counts = await repo.alertCounts(db, row.id);
      return { ...whole, alertCount: counts.alerts, deviceCount: counts.devices };
    }
    const all = await repo.alertFacts(db, row.id);
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
    const row = await repo.findById(store.db, id);
    const visible = row && (await repo.hasAlertIn(store.db, id, actor.groupIds));
    if (!row || !visible) throw new QuellError('incident_not_found', `No such incident: ${id}`);
    return row;
  }

  return {
    /** Called inside the transaction that stores an alert (after its evidence): puts it in an incident. */
    async onAlert(trx: Db, alert: AlertsTable): Promise<void> {
      const now = clock.now();
      const joined = await repo.activeOnDevice(trx, alert, now - SAME_DEVICE_WINDOW_MS)
        ?? await repo.activeSharingEvidence(trx, alert.id, STRONG_EVIDENCE, now - SHARED_EVIDENCE_WINDOW_MS);
      const incident = joined === undefined ? undefined : await repo.findById(trx, joined);
      let incidentId: string;
      if (incident) {
        incidentId = incident.id;
        const severity = SEVERITY_RANK[alert.severity as AlertSeverity] > SEVERITY_RANK[incident.severity as AlertSeverity] ? alert.severity : incident.severity;
        await repo.update(trx, incidentId, { severity, last_activity_at: Math.max(incident.last_activity_at, alert.occurred_at), updated_at: now });
      } else {
        incidentId = ids.next();
        await repo.insert(trx, {
          id: incidentId, title: `${alert.title} on ${alert.device_name}`.slice(0, 600), status: 'active', severity: alert.severity,
          first_activity_at: alert.occurred_at, last_activity_at: alert.occurred_at, created_at: now, updated_at: now,
        });
      }
      await repo.assignAlert(trx, alert.id, incidentId);
      alert.incident_id = incidentId;
    },

    async list(actor: Actor): Promise<Incident[]> {
      requirePermission(actor, 'alerts:read');
      const rows = await repo.listVisible(store.db, actor.groupIds, 500);
      return Promise.all(rows.map((row) => present(store.db, row, actor)));
    },

    async get(actor: Actor, id: string) {
      requirePermission(actor, 'alerts:read');
      const row = await findVisible(actor, id);
      const alerts = (await repo.alerts(store.db, id)).filter((a) => inScope(actor, a.group_id));
      const alertIds = alerts.map((a) => a.id);
      const evidence = await repo.evidence(store.db, alertIds);
      const grouped = new Map<string, { kind: string; value: string; deviceIds: Set<string> }>();
      for (const e of evidence) {
        const key = `${e.kind}\u0000${e.value}`;
        if (!grouped.has(key)) grouped.set(key, { kind: e.kind, value: e.value, deviceIds: new Set() });
        grouped.get(key)!.deviceIds.add(e.device_id);
      }
      const investigations = await repo.investigations(store.db, alertIds);
      const actions = await repo.actions(store.db, investigations.map((i) => i.id), actor.groupIds);
      const judged = await repo.verdicts(store.db, actions.map((a) => a.id));
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
        await repo.update(trx, id, { status: updated.status, updated_at: updated.updated_at });
        await audit.record(trx, actor, { kind: 'incident.update', targetType: 'incident', targetId: id, before: { status: row.status }, after: { status: body.status } });
        return present(trx, updated, actor);
      });
    },
  };
}
export type IncidentsService = ReturnType<typeof createIncidentsService>;
