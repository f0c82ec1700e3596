import { DEVICE_OFFLINE_AFTER_MS, type StateReportPayload } from '@quell/contracts';
import { type Actor, systemActor } from '../../actor.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock } from '../../infra.ts';
import { type Enforcement, enforcementOf, readDesiredState } from './desired-state.ts';
import type { DesiredStateRepository } from './desired-state.repository.ts';

/** Reports are written together: ten thousand agents answering one state must not mean ten thousand transactions. */
const REPORT_BATCH = 500;
const FLUSH_AFTER_MS = 50;

/** What containment needs of the actions module (its service): moving containment actions along their lifecycle. */
export interface ContainmentLifecycle {
  recordDelivery(actor: Actor, id: string): Promise<unknown>;
  recordResult(actor: Actor, id: string, result: { outcome: 'completed' | 'failed'; output?: string; error?: string }, more: { enforcement: Enforcement }): Promise<unknown>;
}

/**
 * The server side of containment once the state is signed: takes the
 * agents' reports of what they applied, keeps each agent's last one, and
 * moves containment actions along their lifecycle from those reports —
 * in progress once any agent applied it, completed once no online agent
 * is still to apply it (offline ones apply it when they reconnect).
 */
export function createDesiredStateService(deps: { store: Store; repo: DesiredStateRepository; actions: ContainmentLifecycle; clock: Clock; onError: (error: unknown) => void }) {
  const { store, repo, actions, clock } = deps;
  const queued = new Map<string, StateReportPayload>();
  let timer: NodeJS.Timeout | null = null;
  let flushing: Promise<void> = Promise.resolve();

  async function write(reports: Array<[string, StateReportPayload]>): Promise<void> {
    for (let i = 0; i < reports.length; i += REPORT_BATCH) await repo.saveReports(store.db, reports.slice(i, i + REPORT_BATCH));
  }

  async function flush(): Promise<void> {
    timer = null;
    const reports = [...queued];
    queued.clear();
    if (reports.length === 0) return;
    await write(reports);
    // Counted once the reports stop coming in: a state ten thousand agents answer is settled once, not after every
    // batch of their reports (a steady trickle is settled by the job).
    if (queued.size === 0) await settle();
  }

  async function settle(): Promise<number> {
    const open = await repo.openFleetActions(store.db);
    let moved = 0;
    for (const action of open) {
      const actor = systemActor('containment');
      const e = await enforcementOf(store.db, action, clock.now() - DEVICE_OFFLINE_AFTER_MS);
      try {
        if (action.status === 'queued' && e.succeeded + e.failed > 0) await actions.recordDelivery(actor, action.id);
        if (e.succeeded + e.failed === 0 || e.waitingOnline > 0) continue;
        const release = action.type === 'release_containment';
        const done = release ? `Released ${action.entity_name}` : `Contained ${action.entity_name}`;
        const notes = [
          e.failed > 0 ? `${e.failed} could not (${e.failures.slice(0, 3).map((f) => `${f.deviceName}: ${f.reason}`).join('; ')})` : '',
          e.waiting > 0 ? `${e.waiting} offline will apply it when they reconnect` : '',
        ].filter(Boolean).join('; ');
        const summary = `${done} on ${e.succeeded} of ${e.succeeded + e.failed + e.waiting} managed devices${notes ? `; ${notes}` : ''}`;
        await actions.recordResult(actor, action.id, e.succeeded > 0 ? { outcome: 'completed', output: summary } : { outcome: 'failed', error: summary }, { enforcement: e });
        moved++;
      } catch (error) {
        // Another server process settled it first.
        if (!(error instanceof QuellError && error.code === 'action_state_conflict')) throw error;
      }
    }
    return moved;
  }

  return {
    /** The signed desired state for agents of this device group (null: of no group). */
    current: (groupId: string | null) => readDesiredState(store.db, groupId),

    /** Takes a verified report; it is written with the others that arrive within a few milliseconds. */
    report(deviceId: string, report: StateReportPayload): void {
      queued.set(deviceId, report);
      if (timer && queued.size < REPORT_BATCH) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        flushing = flushing.then(flush).catch(deps.onError);
      }, queued.size >= REPORT_BATCH ? 0 : FLUSH_AFTER_MS);
    },

    /** Moves containment actions whose agents went offline meanwhile (run by a job). */
    settle,

    /** Writes what is still queued (at shutdown, and in tests). */
    async drain(): Promise<void> {
      if (timer) clearTimeout(timer);
      flushing = flushing.then(flush).catch(deps.onError);
      await flushing;
    },
  };
}
export type DesiredStateService = ReturnType<typeof createDesiredStateService>;
