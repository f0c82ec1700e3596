import { ACTION_CATALOGUE, type Action, type ActionType } from '@quell/contracts';
import type { Actor } from '../../actor.ts';
import type { ActionsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Enforcement } from '../desired-state/desired-state.ts';
import { actionRow } from './action-row.ts';
import { AUTOMATION, type ActionsCore, type ActionsServiceDeps, isFleet } from './actions.core.ts';
import { presentAction } from './actions.presenter.ts';

export interface AgentResult { outcome: 'completed' | 'failed'; output?: string; error?: string }

/** What agents tell of actions: taken, done or failed, and what they did on their own. */
export function createActionReports(deps: ActionsServiceDeps, core: ActionsCore) {
  const { store, repo, devices, audit, ids } = deps;
  const { apply, refreshContainment, releaseUndoLink, notify } = core;

  return {
    /**
     * An action an agent took on its own (its antivirus quarantined a file),
     * recorded as it happened: created, taken and completed by that agent,
     * under the id the agent chose, so that it is undone like any other. A
     * repeated report returns the action already recorded.
     */
    async recordLocalAction(actor: Actor, local: { id: string; deviceId: string; type: ActionType; entity: { name: string; path: string; sha256: string }; output: string; at: number; source: 'antivirus' }): Promise<Action> {
      return presentAction(await store.transaction(async (trx) => {
        const existing = await repo.findById(trx, local.id);
        if (existing) {
          if (existing.device_id !== local.deviceId) throw new QuellError('action_state_conflict', `Action ${local.id} belongs to another device`);
          return existing;
        }
        const device = await devices.findDevice(trx, local.deviceId);
        if (!device) throw new QuellError('device_not_found');
        // What the agent already did is recorded, never refused as a duplicate of an open proposal (no entity key).
        const row = actionRow({
          id: local.id, type: local.type, status: 'queued', entity_type: ACTION_CATALOGUE[local.type].entityType,
          entity_name: local.entity.name, entity_sha256: local.entity.sha256, entity_path: local.entity.path,
          device_id: device.id, device_name: device.name, group_id: device.group_id, source: local.source,
          requested_by: actor.name, requested_at: local.at, decided_by: AUTOMATION, decided_at: local.at,
        });
        await repo.insert(trx, row);
        await repo.insertEvent(trx, { id: ids.next(), action_id: row.id, at: local.at, event: 'create', from_status: null, to_status: 'queued', actor: actor.name, comment: null });
        await audit.record(trx, actor, { kind: 'action.create', targetType: 'action', targetId: row.id, targetGroupIds: [row.group_id], after: presentAction(row) });
        const taken = await apply(trx, actor, row, 'deliver', {}, null);
        return apply(trx, actor, taken, 'complete', { result: JSON.stringify({ output: local.output }) }, null);
      }));
    },

    /** Called by the agent gateway when an agent has taken the command. */
    async recordDelivery(actor: Actor, id: string): Promise<Action> {
      return presentAction(await store.transaction(async (trx) => {
        const row = await repo.findById(trx, id);
        if (!row) throw new QuellError('action_not_found');
        return apply(trx, actor, row, 'deliver', {}, null);
      }));
    },

    /**
     * Called by the agent gateway with an agent's result. A completed undo
     * marks its original undone; a failed one frees the original for another try.
     */
    async recordResult(actor: Actor, id: string, result: AgentResult, more: { enforcement?: Enforcement; within?: (trx: Db, row: ActionsTable) => Promise<void> } = {}): Promise<Action> {
      return presentAction(await store.transaction(async (trx) => {
        const row = await repo.findById(trx, id);
        if (!row) throw new QuellError('action_not_found');
        const stored = JSON.stringify({ ...(result.output !== undefined ? { output: result.output } : {}), ...(result.error !== undefined ? { error: result.error } : {}) });
        const patch = { result: stored, ...(more.enforcement ? { enforcement: JSON.stringify(more.enforcement) } : {}) };
        const done = await apply(trx, actor, row, result.outcome === 'completed' ? 'complete' : 'fail', patch, result.error ?? null);
        // What the result brings with it (alerts for a scan's findings) is kept with it, or not at all.
        await more.within?.(trx, done);
        if (row.undo_of !== null) {
          if (result.outcome === 'completed') {
            const original = await repo.findById(trx, row.undo_of);
            if (original) await apply(trx, actor, original, 'undo_complete', {}, `Undone by ${row.id}`);
          } else {
            await releaseUndoLink(trx, row);
          }
        }
        // A release that failed leaves the containment in force; a containment no agent could enforce is withdrawn.
        if (isFleet(row) && result.outcome === 'failed') await refreshContainment(trx, null);
        if (result.outcome === 'failed') notify(trx, [done]);
        return done;
      }));
    },
  };
}
