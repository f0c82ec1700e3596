import type { ActionStatus } from '@quell/contracts';
import type { Actor } from '../../actor.ts';
import type { ActionsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { type ActionsCore, type ActionsServiceDeps, isFleet } from './actions.core.ts';

/** What the clock does to actions (run by jobs): pending ones expire, queued ones an agent never took time out. */
export function createActionSweeps(deps: ActionsServiceDeps, core: ActionsCore) {
  const { store, repo, clock } = deps;
  const { apply, refreshContainment, releaseUndoLink, notify } = core;

  /**
   * Moves every due action a step, each in its own transaction after
   * re-reading it: concurrent sweeps (several servers) move each action once.
   */
  async function sweep(findDue: (now: number) => Promise<Array<{ id: string }>>, expected: ActionStatus, step: (trx: Db, row: ActionsTable) => Promise<ActionsTable>): Promise<number> {
    let moved = 0;
    for (;;) {
      const due = await findDue(clock.now());
      if (due.length === 0) return moved;
      for (const { id } of due) {
        const row = await store.transaction(async (trx) => {
          const current = await repo.findById(trx, id);
          if (!current || current.status !== expected) return null;
          const stepped = await step(trx, current);
          notify(trx, [stepped]);
          return stepped;
        });
        if (row !== null) moved++;
      }
    }
  }

  return {
    /** Expires every pending action past its deadline, recorded as a decision of `actor` (the system). */
    expireDue: (actor: Actor): Promise<number> => sweep((now) => repo.pendingDue(store.db, now, 200), 'pending_approval', (trx, row) =>
      apply(trx, actor, row, 'expire', { decided_by: actor.name, decided_at: clock.now(), decision_comment: 'No decision before the deadline' }, 'No decision before the deadline')),

    /** Times out queued actions whose device did not take them within the delivery window. */
    timeOutUndelivered: (actor: Actor): Promise<number> => sweep((now) => repo.queuedPastDeadline(store.db, now, 200), 'queued', async (trx, row) => {
      const error = isFleet(row) ? 'No managed agent applied it within its delivery window' : 'The device did not take the action within its delivery window';
      const timedOut = await apply(trx, actor, row, 'time_out', { result: JSON.stringify({ error }) }, 'Delivery window over');
      await releaseUndoLink(trx, row);
      if (isFleet(row)) await refreshContainment(trx, null);
      return timedOut;
    }),
  };
}
