import { isIP } from 'node:net';
import {
  ACTION_CATALOGUE, type Action, type ActionStatus, type ActionType, type BulkDecisionBody, CAPABILITY_MATRIX, type CreateActionBody, FILE_QUARANTINE_TYPES,
  type Platform, canonicalParameters, parameterProblem, roleAtLeast,
} from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { ActionsTable } from '../../db/schema.ts';
import { type Db, afterCommit } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import { actionRow } from './action-row.ts';
import {
  AUTOMATION, type ActionsCore, type ActionsServiceDeps, alreadyOpen, isFleet, overridesGuard, requireGuardOverrideAllowed, requireOneType, requireStatus,
} from './actions.core.ts';
import { presentAction, storedParameters } from './actions.presenter.ts';
import { storedEntityKey } from './entity-key.ts';

/** An undo puts back what its original changed, which no guard stands in the way of: it never inherits the original's override. */
function undoParameters(row: ActionsTable): string {
  const undo: Record<string, unknown> = { ...storedParameters(row) };
  delete undo.overrideGuard;
  return JSON.stringify(undo);
}

/** What analysts, automation and the API ask of actions: propose, decide, cancel, undo. */
export function createActionCommands(deps: ActionsServiceDeps, core: ActionsCore) {
  const { store, repo, devices, audit, settings, clock, ids } = deps;
  const { apply, loadAll, queueFields, refreshContainment, requireNotAllowed, releaseUndoLink, notify } = core;

  /** Checks and inserts a new action inside `trx`; agents are told once `trx` commits. */
  async function createIn(trx: Db, actor: Actor, body: CreateActionBody): Promise<ActionsTable> {
    requirePermission(actor, 'actions:create');
    const def = ACTION_CATALOGUE[body.type];
    if (def.isUndo) throw new QuellError('undo_types_not_creatable', `${body.type} is created by undoing an action, through /api/actions/undo`);
    if (FILE_QUARANTINE_TYPES.includes(body.type) && body.entity.sha256 === undefined) throw new QuellError('validation_failed', `${body.type} needs entity.sha256`);
    if (body.type === 'remove_persistence' && body.entity.path === undefined) throw new QuellError('validation_failed', 'remove_persistence needs entity.path: the file the persistence is in');
    // The agent refuses a command with parameters its type does not take: say so now, not as a failed action later.
    const parameterError = parameterProblem(body.type, body.parameters ?? {});
    if (parameterError) throw new QuellError('validation_failed', parameterError);
    const parameters = canonicalParameters(body.parameters ?? {});
    if (overridesGuard(parameters)) requireGuardOverrideAllowed(actor, `Creating ${body.type}`, body.source);
    const manual = body.source === 'manual';
    if (manual && body.status === 'pending_approval') throw new QuellError('manual_actions_are_queued');
    if (body.type === 'contain_device' && isIP(body.entity.name) === 0) throw new QuellError('validation_failed', 'contain_device needs entity.name to be the IPv4 or IPv6 address of the device to contain');
    const status: ActionStatus = manual ? 'queued' : (body.status ?? 'pending_approval');
    const device = await devices.findDevice(trx, body.deviceId);
    if (!device || !inScope(actor, device.group_id)) throw new QuellError('device_not_found', `No such device: ${body.deviceId}`);
    if (CAPABILITY_MATRIX[body.type][device.platform as Platform] !== 'supported') throw new QuellError('unsupported_platform', `${body.type} is not supported on ${device.platform}`);
    if (body.type === 'contain_device' && device.agent_facts !== null) throw new QuellError('device_is_managed', `${device.name} runs a Quell agent: isolate it instead`);
    const now = clock.now();
    const { pendingExpiryHours } = await settings.read(trx);
    const id = ids.next();
    const pending = status === 'pending_approval';
    const row = actionRow({
      id, type: body.type, status, entity_type: def.entityType, entity_name: body.entity.name,
      entity_sha256: body.entity.sha256?.toLowerCase() ?? null, entity_path: body.entity.path ?? null, parameters: JSON.stringify(parameters),
      device_id: device.id, device_name: device.name, group_id: device.group_id, source: body.source,
      investigation_id: body.investigationId ?? null, incident_id: body.incidentId ?? null, approval_id: pending ? `AP-${id.slice(-12)}` : null,
      requested_by: actor.name, requested_by_user_id: actor.userId, requested_at: now, comment: body.comment ?? null,
      decided_by: pending ? null : manual ? actor.name : AUTOMATION, decided_at: pending ? null : now,
      expires_at: pending ? now + pendingExpiryHours * 3_600_000 : null, entity_key: storedEntityKey(body.type, body.entity, parameters),
    });
    await requireNotAllowed(trx, row);
    if (row.entity_key !== null) {
      const open = await repo.findOpen(trx, row.device_id, row.type, row.entity_key);
      if (open) throw alreadyOpen(open);
    }
    if (!pending) Object.assign(row, await queueFields(trx, row, now));
    if (!(await repo.insertUnlessOpen(trx, row))) {
      // A concurrent transaction proposed the same thing and committed first.
      const open = row.entity_key === null ? undefined : await repo.findOpen(trx, row.device_id, row.type, row.entity_key);
      throw open ? alreadyOpen(open) : new QuellError('action_already_open', `The same ${row.type} on ${row.device_name} was proposed meanwhile`);
    }
    if (!pending && isFleet(row)) await refreshContainment(trx, row);
    await repo.insertEvent(trx, { id: ids.next(), action_id: id, at: now, event: 'create', from_status: null, to_status: status, actor: actor.name, comment: row.comment });
    await audit.record(trx, actor, { kind: 'action.create', targetType: 'action', targetId: id, targetGroupIds: [row.group_id], after: presentAction(row) });
    notify(trx, [row]);
    return row;
  }

  async function decide(actor: Actor, body: BulkDecisionBody, event: 'approve' | 'reject'): Promise<Action[]> {
    requirePermission(actor, 'actions:decide');
    const comment = body.comment ?? null;
    const decided = await store.transaction(async (trx) => {
      const rows = await loadAll(trx, actor, body.ids);
      requireOneType(rows);
      requireStatus(rows, ['pending_approval'], 'action_not_pending');
      if (event === 'approve') {
        const overriding = rows.filter((r) => overridesGuard(storedParameters(r)));
        if (overriding.length > 0) requireGuardOverrideAllowed(actor, `Approving ${overriding.map((r) => r.id).join(', ')}`);
        const { fourEyesActionTypes } = await settings.read(trx);
        const own = rows.filter((r) => fourEyesActionTypes.includes(r.type as ActionType) && r.requested_by_user_id !== null && r.requested_by_user_id === actor.userId);
        if (own.length > 0) throw new QuellError('four_eyes_violation', `Four-eyes rule for ${own[0]!.type}: you requested ${own.map((r) => r.id).join(', ')}; another person must approve`);
      }
      const now = clock.now();
      const out: ActionsTable[] = [];
      for (const row of rows) {
        if (event === 'approve') await requireNotAllowed(trx, row);
        const queued = event === 'approve' ? await queueFields(trx, row, now) : {};
        const decidedRow = await apply(trx, actor, row, event, { decided_by: actor.name, decided_at: now, decision_comment: comment, ...queued }, comment);
        if (event === 'approve' && isFleet(row)) await refreshContainment(trx, decidedRow);
        out.push(decidedRow);
      }
      afterCommit(trx, () => out.forEach((row) => deps.onDecision?.(row.type as ActionType, now - row.requested_at)));
      if (event === 'approve') notify(trx, out);
      return out;
    });
    return decided.map(presentAction);
  }

  /** Creates the undo actions for completed originals; the caller has checked type and role. */
  async function undoRows(trx: Db, actor: Actor, rows: ActionsTable[], comment: string | null): Promise<ActionsTable[]> {
    requireStatus(rows, ['completed'], 'action_not_completed');
    const undone: ActionsTable[] = [];
    for (const row of rows) {
      const def = ACTION_CATALOGUE[row.type as ActionType];
      if (def.undoType === null || def.undoRole === null) throw new QuellError('not_undoable', `${row.type} cannot be undone`);
      if (!roleAtLeast(actor.role, def.undoRole)) throw new QuellError('undo_role_required', `Undoing ${row.type} needs the ${def.undoRole} role or higher`);
      const now = clock.now();
      // The undo acts on what its original acted on, for the same investigation and incident, queued at once.
      const undo = actionRow({
        id: ids.next(), type: def.undoType, status: 'queued', parameters: undoParameters(row), source: 'manual',
        entity_type: row.entity_type, entity_name: row.entity_name, entity_sha256: row.entity_sha256, entity_path: row.entity_path,
        device_id: row.device_id, device_name: row.device_name, group_id: row.group_id, investigation_id: row.investigation_id, incident_id: row.incident_id,
        requested_by: actor.name, requested_by_user_id: actor.userId, requested_at: now, comment, decided_by: actor.name, decided_at: now, undo_of: row.id,
      });
      Object.assign(undo, await queueFields(trx, undo, now));
      await repo.insert(trx, undo);
      if (!(await repo.linkUndo(trx, row.id, undo.id, now))) throw new QuellError('undo_in_progress', `Action ${row.id} already has an undo (${row.undone_by ?? 'just created'})`);
      if (isFleet(undo)) await refreshContainment(trx, undo);
      await repo.insertEvent(trx, { id: ids.next(), action_id: undo.id, at: now, event: 'create', from_status: null, to_status: 'queued', actor: actor.name, comment });
      await repo.insertEvent(trx, { id: ids.next(), action_id: row.id, at: now, event: 'undo_requested', from_status: 'completed', to_status: 'completed', actor: actor.name, comment });
      await audit.record(trx, actor, { kind: 'action.undo_requested', targetType: 'action', targetId: row.id, targetGroupIds: [row.group_id], after: { undoActionId: undo.id, undoType: undo.type } });
      undone.push(undo);
    }
    notify(trx, undone);
    return undone;
  }

  /** The quarantines of the same file elsewhere that one more undo takes back too. */
  async function quarantineOf(trx: Db, actor: Actor, id: string): Promise<{ row: ActionsTable; others: ActionsTable[] }> {
    const row = await repo.findById(trx, id);
    if (!row || !inScope(actor, row.group_id)) throw new QuellError('action_not_found', `No such action: ${id}`);
    if (!FILE_QUARANTINE_TYPES.includes(row.type as ActionType) || row.entity_sha256 === null) throw new QuellError('not_a_file_quarantine', `${row.type} is not a file quarantine`);
    return { row, others: await repo.quarantineInstances(trx, row.entity_sha256, FILE_QUARANTINE_TYPES, row.id, actor.groupIds) };
  }

  return {
    async create(actor: Actor, body: CreateActionBody): Promise<Action> {
      return presentAction(await store.transaction((trx) => createIn(trx, actor, body)));
    },

    /** For services that propose actions as one step of their own transaction (investigations). */
    createIn,

    approve: (actor: Actor, body: BulkDecisionBody) => decide(actor, body, 'approve'),
    reject: (actor: Actor, body: BulkDecisionBody) => decide(actor, body, 'reject'),

    async cancel(actor: Actor, body: BulkDecisionBody): Promise<Action[]> {
      requirePermission(actor, 'actions:cancel');
      const comment = body.comment ?? null;
      const canceled = await store.transaction(async (trx) => {
        const rows = await loadAll(trx, actor, body.ids);
        requireStatus(rows, ['pending_approval', 'queued'], 'action_not_cancelable');
        const out: ActionsTable[] = [];
        for (const row of rows) {
          const decision = row.status === 'pending_approval' ? { decided_by: actor.name, decided_at: clock.now(), decision_comment: comment } : {};
          out.push(await apply(trx, actor, row, 'cancel', decision, comment));
          await releaseUndoLink(trx, row);
          if (isFleet(row) && row.status === 'queued') await refreshContainment(trx, null);
        }
        notify(trx, out);
        return out;
      });
      return canceled.map(presentAction);
    },

    async undo(actor: Actor, body: BulkDecisionBody): Promise<Action[]> {
      requirePermission(actor, 'actions:undo');
      const undos = await store.transaction(async (trx) => {
        const rows = await loadAll(trx, actor, body.ids);
        requireOneType(rows);
        return undoRows(trx, actor, rows, body.comment ?? null);
      });
      return undos.map(presentAction);
    },

    /**
     * Undoes these completed actions inside `trx` — with `allInstances`, also
     * every other completed quarantine of the same files.
     */
    async undoIn(trx: Db, actor: Actor, idList: readonly string[], comment: string | null, allInstances: boolean): Promise<ActionsTable[]> {
      requirePermission(actor, 'actions:undo');
      const rows = await loadAll(trx, actor, idList);
      const all = new Map(rows.map((row) => [row.id, row]));
      for (const row of allInstances ? rows : []) {
        if (!FILE_QUARANTINE_TYPES.includes(row.type as ActionType) || row.entity_sha256 === null) continue;
        for (const other of await repo.quarantineInstances(trx, row.entity_sha256, FILE_QUARANTINE_TYPES, row.id, actor.groupIds)) all.set(other.id, other);
      }
      return undoRows(trx, actor, [...all.values()], comment);
    },

    /** Undoes this quarantine and every other completed quarantine of the same file, all or nothing. */
    async undoInstances(actor: Actor, id: string, comment: string | null): Promise<Action[]> {
      requirePermission(actor, 'actions:undo');
      const undos = await store.transaction(async (trx) => {
        const { row, others } = await quarantineOf(trx, actor, id);
        return undoRows(trx, actor, [row, ...others], comment);
      });
      return undos.map(presentAction);
    },

    /** The other devices where the same file was quarantined and not yet restored. */
    async instances(actor: Actor, id: string) {
      requirePermission(actor, 'actions:read');
      const { row, others } = await quarantineOf(store.db, actor, id);
      // Two quarantines of one file on one device (made before duplicates were refused) are one instance of it.
      const deviceCount = new Set(others.map((o) => o.device_id).filter((d) => d !== row.device_id)).size;
      return { action: presentAction(row), sha256: row.entity_sha256!, instances: others.map(presentAction), deviceCount };
    },
  };
}
