import { INVESTIGATION_ENDED, type Investigation, type InvestigationStatus, type ListInvestigationsQuery } from '@quell/contracts';
import { type Actor, inScope, requirePermission, systemActor } from '../../actor.ts';
import type { AlertsTable, InvestigationsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import { type InvestigationsServiceDeps, createInvestigationsCore } from './investigations.core.ts';
import { presentInvestigation, presentInvestigationDetail } from './investigations.presenter.ts';
import type { InvestigatedDevice } from './investigations.repository.ts';
import { createInvestigationRunner } from './investigation-runner.ts';
import { FIRST_STEP, type Expansion, expansionOf, waitingClosed } from './investigation-state.ts';

export type { InvestigationsServiceDeps } from './investigations.core.ts';

/** A hand-started investigation looks at the device's open alerts of this long. */
const START_LOOKBACK_MS = 30 * 86_400_000;
/** At most this many investigations are listed. */
const LIST_LIMIT = 500;

/**
 * Automated investigations. An alert starts one on its device, or joins the
 * one running there. Each investigation runs as a sequence of durable steps
 * — collect the evidence, give each file a verdict, look for the same files
 * on other devices, propose remediation, wait for the actions — and each
 * step runs in one transaction together with the record that it ran, by the
 * one server process that holds the investigation's lease: a restart
 * resumes at the step that had not committed, and no step runs twice.
 */
export function createInvestigationsService(deps: InvestigationsServiceDeps) {
  const { store, repo, actions, audit, clock, ids } = deps;
  const core = createInvestigationsCore(deps);
  const { engine, log, automationLevel } = core;
  const runner = createInvestigationRunner(deps, core);

  /** Opens an investigation on the device (or returns the one running there) and links the alerts to it. */
  async function openFor(trx: Db, device: InvestigatedDevice, startedBy: string, alertIds: string[]): Promise<InvestigationsTable> {
    const now = clock.now();
    let row = await repo.runningOn(trx, device.id);
    if (!row) {
      row = {
        id: ids.next(), device_id: device.id, device_name: device.name, group_id: device.group_id, status: 'running', step: FIRST_STEP, started_by: startedBy,
        started_at: now, ended_at: null, updated_at: now, waiting_ms: 0, waiting_since: null, run_after: now, locked_by: null, locked_until: null, pending_expansion: null,
        problems: null, step_attempts: 0, conclusion: null, failed_step: null,
      };
      await repo.insert(trx, row);
      await audit.record(trx, startedBy === engine.name ? engine : systemActor(startedBy), { kind: 'investigation.start', targetType: 'investigation', targetId: row.id, after: { deviceId: device.id } });
    } else if (row.step === 'wait') {
      // New evidence for a running investigation: it goes through the steps again (entities already judged stay as they are).
      await repo.update(trx, row.id, { step: FIRST_STEP, run_after: now, updated_at: now });
    }
    for (const alertId of alertIds) await repo.linkAlert(trx, row.id, alertId);
    return row;
  }

  async function findVisible(actor: Actor, id: string): Promise<InvestigationsTable> {
    const row = await repo.findById(store.db, id);
    if (!row || !inScope(actor, row.group_id)) throw new QuellError('investigation_not_found', `No such investigation: ${id}`);
    return row;
  }

  return {
    /** Called inside the transaction that stores an alert: starts or joins the device's investigation unless its group has no automated response. */
    async onAlert(trx: Db, alert: AlertsTable): Promise<void> {
      if ((await automationLevel(trx, alert.group_id)) === 'none') return;
      await openFor(trx, { id: alert.device_id, name: alert.device_name, group_id: alert.group_id }, engine.name, [alert.id]);
    },

    /** Starts an investigation by hand on a device, over its open alerts of the last 30 days. */
    async start(actor: Actor, deviceId: string): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      const row = await store.transaction(async (trx) => {
        const device = await repo.findDevice(trx, deviceId);
        if (!device || !inScope(actor, device.group_id)) throw new QuellError('device_not_found', `No such device: ${deviceId}`);
        return openFor(trx, device, actor.name, await repo.openAlertIds(trx, deviceId, clock.now() - START_LOOKBACK_MS));
      });
      return presentInvestigation(row, clock.now());
    },

    /** Runs every due step this process can take; the job calls it. Returns how many steps ran. */
    runDue: runner.runDue,

    async list(actor: Actor, query: ListInvestigationsQuery = {}): Promise<Investigation[]> {
      requirePermission(actor, 'investigations:read');
      const now = clock.now();
      return (await repo.list(store.db, actor.groupIds, query.alertId, LIST_LIMIT)).map((row) => presentInvestigation(row, now));
    },

    async get(actor: Actor, id: string) {
      requirePermission(actor, 'investigations:read');
      const row = await findVisible(actor, id);
      const [alertIds, entities, log, actionRows] = await Promise.all([
        repo.alertIds(store.db, id), repo.entitiesOnDevices(store.db, id), repo.log(store.db, id), repo.actionsFollowed(store.db, id),
      ]);
      return presentInvestigationDetail(row, { alertIds, entities, log, actions: actionRows }, actor, clock.now());
    },

    /** An analyst's decision on following the investigation's files to many other devices. */
    async decideExpansion(actor: Actor, id: string, approved: boolean, comment: string | null): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      await findVisible(actor, id);
      const updated = await store.transaction(async (trx) => {
        const row = await repo.getById(trx, id);
        const expansion = expansionOf(row);
        if (!expansion || expansion.decision !== null) throw new QuellError('no_pending_expansion', `Investigation ${id} is not waiting for an expansion decision`);
        const decided: Expansion = { ...expansion, decision: { approved, by: actor.name } };
        await repo.update(trx, id, { pending_expansion: JSON.stringify(decided), run_after: clock.now(), updated_at: clock.now() });
        await audit.record(trx, actor, { kind: 'investigation.expansion', targetType: 'investigation', targetId: id, after: { approved, devices: new Set(expansion.found.map((f) => f.deviceId)).size, ...(comment ? { comment } : {}) } });
        return { ...row, pending_expansion: JSON.stringify(decided) };
      });
      return presentInvestigation(updated, clock.now());
    },

    /** Runs a failed investigation again from the step it could not get past (from the start when that is not known). */
    async retry(actor: Actor, id: string, comment: string | null): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      await findVisible(actor, id);
      const resumed = await store.transaction(async (trx) => {
        const now = clock.now();
        const current = await repo.getById(trx, id);
        if (current.status !== 'failed') throw new QuellError('investigation_not_failed', `Investigation ${id} is ${current.status.replaceAll('_', ' ')}: only a failed investigation can be retried`);
        // A device has one running investigation: its new alerts join it, and it would be this one's twin.
        const running = await repo.runningOn(trx, current.device_id);
        if (running) throw new QuellError('investigation_running', `Investigation ${running.id} already runs on ${current.device_name}: it takes up what this one left`);
        const step = current.failed_step ?? FIRST_STEP;
        const patch: Partial<InvestigationsTable> = {
          status: 'running', step, failed_step: null, step_attempts: 0, run_after: now, ended_at: null, conclusion: null, updated_at: now,
        };
        // Two analysts retrying at once: the second finds it running.
        if (!(await repo.updateIfStatus(trx, id, 'failed', patch))) throw new QuellError('investigation_not_failed', `Investigation ${id} is no longer failed: someone retried it`);
        await log(trx, id, 'retry', now, `retried by ${actor.name} from the ${step} step${comment ? `: ${comment}` : ''}`);
        await audit.record(trx, actor, { kind: 'investigation.retry', targetType: 'investigation', targetId: id, before: { status: 'failed' }, after: { status: 'running', step, ...(comment ? { comment } : {}) } });
        return { ...current, ...patch };
      });
      return presentInvestigation(resumed, clock.now());
    },

    /** Ends an investigation by hand: its pending actions are cancelled, and nothing more is proposed. */
    async terminate(actor: Actor, id: string, comment: string | null): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      const row = await findVisible(actor, id);
      if (INVESTIGATION_ENDED.includes(row.status as InvestigationStatus)) throw new QuellError('investigation_ended', `Investigation ${id} has ended: ${row.status}`);
      const pending = await repo.pendingApprovalIds(store.db, id);
      if (pending.length > 0) await actions.cancel({ ...actor, groupIds: null }, { ids: pending, comment: comment ?? 'Investigation terminated' });
      const ended = await store.transaction(async (trx) => {
        const now = clock.now();
        const current = await repo.getById(trx, id);
        if (current.step === 'done') throw new QuellError('investigation_ended', `Investigation ${id} has ended: ${current.status}`);
        const patch: Partial<InvestigationsTable> = {
          status: 'terminated_by_user', step: 'done', ended_at: now, updated_at: now, conclusion: `Terminated by ${actor.name}${comment ? `: ${comment}` : ''}`,
          ...waitingClosed(current, now),
        };
        await repo.update(trx, id, patch);
        await log(trx, id, 'terminate', now, `terminated by ${actor.name}${comment ? `: ${comment}` : ''}`);
        await audit.record(trx, actor, { kind: 'investigation.terminate', targetType: 'investigation', targetId: id, before: { status: current.status }, after: { status: 'terminated_by_user', ...(comment ? { comment } : {}) } });
        return { ...current, ...patch };
      });
      return presentInvestigation(ended, clock.now());
    },
  };
}
export type InvestigationsService = ReturnType<typeof createInvestigationsService>;
