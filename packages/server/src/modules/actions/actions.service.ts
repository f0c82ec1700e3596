import {
  ACTION_CATALOGUE, type Action, type ActionEvent, type ActionOrigin, type ActionParameters, type ActionSource, type ActionStatus, type ActionType, type BulkDecisionBody,
  CAPABILITY_MATRIX, type CreateActionBody, IN_FORCE_STATUSES, isStatusIn, DEVICE_OFFLINE_AFTER_MS, FILE_QUARANTINE_TYPES, FLEET_ACTION_TYPES, ISOLATION_DELIVERY_WINDOW_HOURS,
  type ExportActionsQuery, type IndicatorType, type ListActionsQuery, type Platform, canonicalParameters, nextStatus, parameterProblem, roleAtLeast, statusesCountedAs,
} from '@quell/contracts';
import { storedEntityKey } from './entity-key.ts';
import { isIP } from 'node:net';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { ActionsTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { DevicesRepository } from '../devices/devices.repository.ts';
import { deviceHealth } from '../devices/devices.service.ts';
import type { SettingsService } from '../settings/settings.service.ts';
import { presentAction, presentDrift, presentTimelineEntry, storedParameters } from './actions.presenter.ts';
import { type ActionFilter, type ActionsRepository, type SortColumn } from './actions.repository.ts';
import { decodeCursor, encodeCursor, resolveTimeRange } from './actions.query.ts';
import type { CommandSigner } from '../../command-signer.ts';
import { type Enforcement, enforcementOf, writeDesiredState } from '../desired-state/desired-state.ts';

/** Who decided an action that its creator queued without approval. */
export const AUTOMATION = 'Automation';

export interface ActionsServiceDeps {
  store: Store;
  repo: ActionsRepository;
  devices: DevicesRepository;
  audit: AuditService;
  settings: SettingsService;
  clock: Clock;
  ids: Ids;
  /** Told of every approve/reject with the time the action waited, for metrics. */
  onDecision?: (type: ActionType, waitedMs: number) => void;
  /** Signs the command of every action that becomes queued; without it actions carry no command (no agents). */
  signer?: CommandSigner;
  /** Told, after commit, of the devices that have new queued actions. */
  dispatch?: (deviceIds: string[]) => void;
  /** Told, after commit, that the containment state every agent enforces has a new version. */
  publishState?: () => void;
  /** The allow indicator protecting one of these values on a device of this group, if any (indicators service). */
  allowing?: (db: Db, values: Array<{ type: IndicatorType; value: string }>, groupId: string | null) => Promise<{ id: string; title: string } | null>;
}

/** The action types whose completion puts a device in a state (and whose undo takes it out). */
const DEVICE_STATE_KINDS: Partial<Record<string, 'isolation' | 'code_restriction' | 'contained_user'>> = {
  isolate_device: 'isolation', restrict_code_execution: 'code_restriction', contain_user: 'contained_user',
};
const isFleet = (row: Pick<ActionsTable, 'type'>): boolean => FLEET_ACTION_TYPES.includes(row.type as ActionType);
/** A containment in the state agents enforce, or a release that has not failed. */
const enforcedNow = (row: Pick<ActionsTable, 'type' | 'status' | 'undone_by'>): boolean => (row.type === 'release_containment'
  ? isStatusIn(IN_FORCE_STATUSES, row.status)
  : isStatusIn(IN_FORCE_STATUSES, row.status) && row.undone_by === null);

/** Sources where no person decided to act: they never lift the agent's guards. */
const AUTOMATED_SOURCES: readonly ActionSource[] = ['automated_investigation', 'antivirus'];
const overridesGuard = (parameters: ActionParameters): boolean => 'overrideGuard' in parameters && parameters.overrideGuard === true;

/**
 * `parameters.overrideGuard: true` lifts the agent's system-tier guards
 * (critical files, units, modules, root; docs/agent-safety.md). Only a Global
 * Administrator may ask for it or approve an action that carries it, and
 * never automation: not the system's own actor, not an automated source.
 */
function requireGuardOverrideAllowed(actor: Actor, doing: string, source?: ActionSource): void {
  if (actor.kind === 'system' || (source !== undefined && AUTOMATED_SOURCES.includes(source))) {
    throw new QuellError('guard_override_forbidden', `${doing} with parameters.overrideGuard: automated actions never override the agent's guards`);
  }
  if (actor.role !== 'global_admin') throw new QuellError('guard_override_forbidden', `${doing} with parameters.overrideGuard needs a Global Administrator; your role is ${actor.role}`);
}

/** An undo puts back what its original changed, which no guard stands in the way of: it never inherits the original's override. */
function undoParameters(row: ActionsTable): string {
  const undo: Record<string, unknown> = { ...storedParameters(row) };
  delete undo.overrideGuard;
  return JSON.stringify(undo);
}

/** The refusal of a second open action on the same entity: it names the open one, and who proposed it. */
export function alreadyOpen(open: ActionsTable): QuellError {
  const by = open.investigation_id !== null ? `investigation ${open.investigation_id}` : open.requested_by;
  return new QuellError('action_already_open', `${open.type} of ${open.entity_name} on ${open.device_name} is already open as action ${open.id} (${open.status}), proposed by ${by}`, {
    actions: [{ id: open.id, status: open.status, decidedBy: open.decided_by }],
  });
}

export interface AgentResult { outcome: 'completed' | 'failed'; output?: string; error?: string }

/** The action types whose effect stays in force on their device until undone, kept true by its agent, and that effect in words. */
const IN_FORCE_EFFECTS: Partial<Record<ActionType, string>> = {
  isolate_device: 'isolation', restrict_code_execution: 'code restriction', contain_user: 'containment of the user', stop_service: 'stopped service',
  remove_scheduled_task: 'removal of the task', remove_persistence: 'removal of the persistence', quarantine_file: 'removal of the file', stop_and_quarantine_file: 'removal of the file',
};

export function createActionsService(deps: ActionsServiceDeps) {
  const { store, repo, devices, audit, settings, clock, ids } = deps;

  /**
   * The only place a status is written: checks the lifecycle table, then
   * compare-and-sets on the status it read, records the timeline and audit.
   */
  async function apply(trx: Db, actor: Actor, row: ActionsTable, event: ActionEvent, patch: Partial<ActionsTable>, comment: string | null): Promise<ActionsTable> {
    const from = row.status as ActionStatus;
    const to = nextStatus(from, event);
    if (to === null) throw new QuellError('action_state_conflict', `Action ${row.id} is ${from}; ${event} is not possible`, { actions: [{ id: row.id, status: from, decidedBy: row.decided_by }] });
    const now = clock.now();
    const changed = { ...patch, status: to, updated_at: now };
    if (!(await repo.transition(trx, row.id, from, changed))) {
      const current = await repo.findById(trx, row.id);
      throw new QuellError('action_state_conflict', `Action ${row.id} changed meanwhile; it is now ${current?.status}`, { actions: [{ id: row.id, status: current?.status, decidedBy: current?.decided_by ?? null }] });
    }
    await repo.insertEvent(trx, { id: ids.next(), action_id: row.id, at: now, event, from_status: from, to_status: to, actor: actor.name, comment });
    await audit.record(trx, actor, { kind: `action.${event}`, targetType: 'action', targetId: row.id, before: { status: from }, after: { status: to, ...(comment ? { comment } : {}) } });
    await keepDeviceState(trx, row, to);
    return { ...row, ...changed };
  }

  /** What is in force on the device follows its isolation, restriction and user containment as they complete and are undone. */
  async function keepDeviceState(trx: Db, row: ActionsTable, to: ActionStatus): Promise<void> {
    const kind = DEVICE_STATE_KINDS[row.type];
    if (kind === undefined) return;
    if (to === 'completed') {
      const entity = kind === 'contained_user' ? row.entity_name : '';
      await trx.insertInto('device_state').values({ device_id: row.device_id, kind, entity, action_id: row.id })
        .onConflict((oc) => oc.columns(['device_id', 'kind', 'entity']).doUpdateSet({ action_id: row.id })).execute();
    } else if (to === 'undone') {
      await trx.deleteFrom('device_state').where('action_id', '=', row.id).execute();
    }
  }

  /** Loads the named actions inside the transaction; any unknown or out-of-scope id fails the whole call. */
  async function loadAll(trx: Db, actor: Actor, idList: readonly string[]): Promise<ActionsTable[]> {
    if (new Set(idList).size !== idList.length) throw new QuellError('duplicate_ids', 'Each action id may appear once');
    const rows = await repo.findByIds(trx, idList);
    const visible = new Map(rows.filter((r) => inScope(actor, r.group_id)).map((r) => [r.id, r]));
    const missing = idList.filter((id) => !visible.has(id));
    if (missing.length > 0) throw new QuellError('action_not_found', `No such action: ${missing.join(', ')}`, { actions: missing.map((id) => ({ id })) });
    return idList.map((id) => visible.get(id)!);
  }

  /**
   * What an action gets when it becomes queued: the deadline for its device
   * to take it, and its command, signed now — what the agent will run is
   * exactly what was decided.
   */
  async function queueFields(trx: Db, row: ActionsTable, now: number): Promise<Pick<ActionsTable, 'command_jws' | 'deliver_by'>> {
    const hours = row.type === 'isolate_device' ? ISOLATION_DELIVERY_WINDOW_HOURS : (await settings.read(trx)).deliveryWindowHours;
    const deliverBy = now + hours * 3_600_000;
    // Fleet types reach agents as the signed containment state, not as a command to one device.
    if (!deps.signer || isFleet(row)) return { command_jws: null, deliver_by: deliverBy };
    const entity = presentAction(row).entity;
    const command_jws = await deps.signer.sign({
      actionId: row.id, deviceId: row.device_id, type: row.type as ActionType, entity,
      parameters: storedParameters(row), undoOf: row.undo_of, exp: Math.floor(deliverBy / 1000),
    }, now);
    return { command_jws, deliver_by: deliverBy };
  }

  /**
   * Signs the next containment state after a change to a fleet action; the
   * action that made the change (`stamp`) records the version it took effect at.
   */
  async function refreshContainment(trx: Db, stamp: ActionsTable | null): Promise<void> {
    const version = await writeDesiredState(trx, deps.signer, clock.now());
    if (stamp === null) return;
    await trx.updateTable('actions').set({ state_version: version }).where('id', '=', stamp.id).execute();
    stamp.state_version = version;
  }

  /** An allow indicator keeps its entity from ever being remediated: proposing or approving it is refused. */
  async function requireNotAllowed(trx: Db, row: Pick<ActionsTable, 'type' | 'entity_sha256' | 'entity_name' | 'group_id'>): Promise<void> {
    if (ACTION_CATALOGUE[row.type as ActionType].isUndo || !deps.allowing) return;
    const values: Array<{ type: IndicatorType; value: string }> = [];
    if (row.entity_sha256 !== null) values.push({ type: 'sha256', value: row.entity_sha256 });
    if (row.type === 'contain_device') values.push({ type: 'ip', value: row.entity_name });
    const indicator = values.length === 0 ? null : await deps.allowing(trx, values, row.group_id);
    if (indicator) throw new QuellError('entity_allowed', `Allow indicator ${indicator.id} ("${indicator.title}") protects ${values.map((v) => v.value).join(', ')}; expire or change it to remediate`);
  }

  function requireOneType(rows: ActionsTable[]): void {
    const types = [...new Set(rows.map((r) => r.type))];
    if (types.length > 1) throw new QuellError('mixed_action_types', `A bulk call takes actions of one type; these are ${types.join(', ')}`);
  }

  function requireStatus(rows: ActionsTable[], allowed: readonly ActionStatus[], code: 'action_not_pending' | 'action_not_cancelable' | 'action_not_completed'): void {
    const wrong = rows.filter((r) => !allowed.includes(r.status as ActionStatus));
    if (wrong.length === 0) return;
    const list = wrong.map((r) => `${r.id} is ${r.status}${r.decided_by ? ` (decided by ${r.decided_by})` : ''}`).join('; ');
    throw new QuellError(code, `Nothing was changed: ${list}`, { actions: wrong.map((r) => ({ id: r.id, status: r.status, decidedBy: r.decided_by })) });
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
      return out;
    });
    for (const row of decided) deps.onDecision?.(row.type as ActionType, (row.decided_at ?? row.requested_at) - row.requested_at);
    if (event === 'approve') notify(decided);
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
      const undo: ActionsTable = {
        ...row,
        id: ids.next(),
        type: def.undoType,
        parameters: undoParameters(row),
        status: 'queued',
        source: 'manual',
        approval_id: null,
        requested_by: actor.name,
        requested_by_user_id: actor.userId,
        requested_at: now,
        comment,
        decided_by: actor.name,
        decided_at: now,
        decision_comment: null,
        expires_at: null,
        updated_at: now,
        undo_of: row.id,
        undone_by: null,
        result: null,
        command_jws: null,
        deliver_by: null,
        state_version: null,
        enforcement: null,
        entity_key: null,
      };
      Object.assign(undo, await queueFields(trx, undo, now));
      await repo.insert(trx, undo);
      if (!(await repo.linkUndo(trx, row.id, undo.id, now))) throw new QuellError('undo_in_progress', `Action ${row.id} already has an undo (${row.undone_by ?? 'just created'})`);
      if (isFleet(undo)) await refreshContainment(trx, undo);
      await repo.insertEvent(trx, { id: ids.next(), action_id: undo.id, at: now, event: 'create', from_status: null, to_status: 'queued', actor: actor.name, comment });
      await repo.insertEvent(trx, { id: ids.next(), action_id: row.id, at: now, event: 'undo_requested', from_status: 'completed', to_status: 'completed', actor: actor.name, comment });
      await audit.record(trx, actor, { kind: 'action.undo_requested', targetType: 'action', targetId: row.id, after: { undoActionId: undo.id, undoType: undo.type } });
      undone.push(undo);
    }
    return undone;
  }

  function toFilter(actor: Actor, query: ExportActionsQuery & { view?: ListActionsQuery['view'] }): ActionFilter {
    const { from, to } = resolveTimeRange(query, clock.now());
    return {
      view: query.view, from, to, type: query.type, source: query.source, entityType: query.entityType,
      // Rejected finds the expired too: an expiry is the system's rejection.
      ...(query.status !== undefined ? { statuses: statusesCountedAs(query.status) } : {}),
      deviceId: query.deviceId, investigationId: query.investigationId, incidentId: query.incidentId, decidedBy: query.decidedBy, entity: query.entity, groupIds: actor.groupIds,
    };
  }

  const sortColumn = (sort: ListActionsQuery['sort']): SortColumn => (sort === 'updatedAt' ? 'updated_at' : 'requested_at');

  /** Checks and inserts a new action inside `trx`; the caller tells the agents (notify) after commit. */
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
    const row: ActionsTable = {
      id,
      type: body.type,
      status,
      entity_type: def.entityType,
      entity_name: body.entity.name,
      entity_sha256: body.entity.sha256?.toLowerCase() ?? null,
      entity_path: body.entity.path ?? null,
      parameters: JSON.stringify(parameters),
      device_id: device.id,
      device_name: device.name,
      group_id: device.group_id,
      source: body.source,
      investigation_id: body.investigationId ?? null,
      incident_id: body.incidentId ?? null,
      approval_id: pending ? `AP-${id.slice(-12)}` : null,
      requested_by: actor.name,
      requested_by_user_id: actor.userId,
      requested_at: now,
      comment: body.comment ?? null,
      decided_by: pending ? null : manual ? actor.name : AUTOMATION,
      decided_at: pending ? null : now,
      decision_comment: null,
      expires_at: pending ? now + pendingExpiryHours * 3_600_000 : null,
      updated_at: now,
      undo_of: null,
      undone_by: null,
      result: null,
      command_jws: null,
      deliver_by: null,
      state_version: null,
      enforcement: null,
      entity_key: storedEntityKey(body.type, body.entity, parameters),
    };
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
    await audit.record(trx, actor, { kind: 'action.create', targetType: 'action', targetId: id, after: presentAction(row) });
    return row;
  }

  return {
    async create(actor: Actor, body: CreateActionBody): Promise<Action> {
      const created = await store.transaction((trx) => createIn(trx, actor, body));
      notify([created]);
      return presentAction(created);
    },

    /** For services that propose actions as one step of their own transaction (investigations); call notify after commit. */
    createIn,
    notify,
    /** What was last decided or done about an entity on a device, once no action on it is open (a rejection is remembered). */
    lastClosedIn: (trx: Db, deviceId: string, types: readonly ActionType[], key: string) => repo.lastClosed(trx, deviceId, types, key),
    /** Of these devices, those where the file is quarantined now. */
    quarantinedOnIn: (trx: Db, sha256: string, deviceIds: readonly string[]) => repo.quarantinedOn(trx, sha256, deviceIds),

    async list(actor: Actor, query: ListActionsQuery): Promise<{ items: Action[]; nextCursor: string | null; total: number | null }> {
      requirePermission(actor, 'actions:read');
      const filter = toFilter(actor, query);
      const column = sortColumn(query.sort);
      const order = query.order ?? 'desc';
      const limit = query.limit ?? 50;
      const after = query.cursor === undefined ? null : decodeCursor(query.cursor, column, order);
      const rows = await repo.page(store.db, filter, { column, order, after, limit });
      const last = rows.length === limit ? rows[rows.length - 1] : undefined;
      return {
        items: rows.map(presentAction),
        nextCursor: last ? encodeCursor(column, order, last[column], last.id) : null,
        total: query.withTotal ? await repo.count(store.db, filter) : null,
      };
    },

    /** History rows in export order, a page at a time, so memory stays flat whatever the size. */
    async *exportRows(actor: Actor, query: ExportActionsQuery): AsyncGenerator<ActionsTable> {
      requirePermission(actor, 'actions:read');
      const filter = toFilter(actor, { ...query, view: 'history' });
      const column = sortColumn(query.sort);
      const order = query.order ?? 'desc';
      let after: { value: number; id: string } | null = null;
      for (;;) {
        const rows = await repo.page(store.db, filter, { column, order, after, limit: 2000 });
        yield* rows;
        if (rows.length < 2000) return;
        // SQLite answers synchronously: without this pause a long export would hold the event loop
        // and every other request (health checks included) would wait until it ends.
        await new Promise((resolve) => setImmediate(resolve));
        const last = rows[rows.length - 1]!;
        after = { value: last[column], id: last.id };
      }
    },

    async get(actor: Actor, id: string) {
      requirePermission(actor, 'actions:read');
      const row = await repo.findById(store.db, id);
      if (!row || !inScope(actor, row.group_id)) throw new QuellError('action_not_found', `No such action: ${id}`);
      // Agents' reports speak of the latest state: they tell about a containment while it is in force; after, its record stands.
      const enforcement = !isFleet(row) || row.state_version === null ? null
        : enforcedNow(row) ? await enforcementOf(store.db, row, clock.now() - DEVICE_OFFLINE_AFTER_MS)
          : row.enforcement === null ? null : (JSON.parse(row.enforcement) as Enforcement);
      return {
        action: presentAction(row), timeline: (await repo.events(store.db, id)).map(presentTimelineEntry), waiting: await waitingFor(row, enforcement), enforcement,
        unverified: await unverifiedFor(row),
        drift: (await repo.drifts(store.db, id)).map(presentDrift),
        origin: await originOf(row),
      };
    },

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
        return out;
      });
      notify(canceled);
      return canceled.map(presentAction);
    },

    async undo(actor: Actor, body: BulkDecisionBody): Promise<Action[]> {
      requirePermission(actor, 'actions:undo');
      const undos = await store.transaction(async (trx) => {
        const rows = await loadAll(trx, actor, body.ids);
        requireOneType(rows);
        return undoRows(trx, actor, rows, body.comment ?? null);
      });
      notify(undos);
      return undos.map(presentAction);
    },

    /** The other devices where the same file was quarantined and not yet restored. */
    async instances(actor: Actor, id: string) {
      requirePermission(actor, 'actions:read');
      const row = await repo.findById(store.db, id);
      if (!row || !inScope(actor, row.group_id)) throw new QuellError('action_not_found', `No such action: ${id}`);
      if (!FILE_QUARANTINE_TYPES.includes(row.type as ActionType) || row.entity_sha256 === null) throw new QuellError('not_a_file_quarantine', `${row.type} is not a file quarantine`);
      const others = await repo.quarantineInstances(store.db, row.entity_sha256, FILE_QUARANTINE_TYPES, row.id, actor.groupIds);
      // Two quarantines of one file on one device (made before duplicates were refused) are one instance of it.
      const deviceCount = new Set(others.map((o) => o.device_id).filter((d) => d !== row.device_id)).size;
      return { action: presentAction(row), sha256: row.entity_sha256, instances: others.map(presentAction), deviceCount };
    },

    /** Undoes this quarantine and every other completed quarantine of the same file, all or nothing. */
    /**
     * Undoes these completed actions inside `trx` — with `allInstances`, also
     * every other completed quarantine of the same files; the caller notifies after commit.
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

    async undoInstances(actor: Actor, id: string, comment: string | null): Promise<Action[]> {
      requirePermission(actor, 'actions:undo');
      const undos = await store.transaction(async (trx) => {
        const row = await repo.findById(trx, id);
        if (!row || !inScope(actor, row.group_id)) throw new QuellError('action_not_found', `No such action: ${id}`);
        if (!FILE_QUARANTINE_TYPES.includes(row.type as ActionType) || row.entity_sha256 === null) throw new QuellError('not_a_file_quarantine', `${row.type} is not a file quarantine`);
        const others = await repo.quarantineInstances(trx, row.entity_sha256, FILE_QUARANTINE_TYPES, row.id, actor.groupIds);
        return undoRows(trx, actor, [row, ...others], comment);
      });
      notify(undos);
      return undos.map(presentAction);
    },

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
        const def = ACTION_CATALOGUE[local.type];
        const row: ActionsTable = {
          id: local.id, type: local.type, status: 'queued', entity_type: def.entityType, entity_name: local.entity.name, entity_sha256: local.entity.sha256,
          entity_path: local.entity.path, parameters: '{}', device_id: device.id, device_name: device.name, group_id: device.group_id, source: local.source,
          investigation_id: null, incident_id: null, approval_id: null, requested_by: actor.name, requested_by_user_id: null, requested_at: local.at, comment: null,
          decided_by: AUTOMATION, decided_at: local.at, decision_comment: null, expires_at: null, updated_at: local.at, undo_of: null, undone_by: null,
          result: null, command_jws: null, deliver_by: null, state_version: null, enforcement: null,
          // What the agent already did is recorded, never refused as a duplicate of an open proposal.
          entity_key: null,
        };
        await repo.insert(trx, row);
        await repo.insertEvent(trx, { id: ids.next(), action_id: row.id, at: local.at, event: 'create', from_status: null, to_status: 'queued', actor: actor.name, comment: null });
        await audit.record(trx, actor, { kind: 'action.create', targetType: 'action', targetId: row.id, after: presentAction(row) });
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
      const done = await store.transaction(async (trx) => {
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
        return done;
      });
      if (result.outcome === 'failed') notify([done]);
      return presentAction(done);
    },

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

    async summary(actor: Actor) {
      requirePermission(actor, 'actions:read');
      const now = clock.now();
      const pending = await repo.pendingByType(store.db, actor.groupIds);
      const oldest = pending.length === 0 ? null : Math.min(...pending.map((p) => p.oldest));
      const since = Math.floor(now / 86_400_000 - 29) * 86_400_000;
      const perDay = await repo.statusPerDay(store.db, since, actor.groupIds);
      const rejected = statusesCountedAs('rejected') as readonly string[];
      const total = (counted: (status: string) => boolean): number => perDay.filter((d) => counted(d.status)).reduce((sum, d) => sum + d.count, 0);
      const offline = await repo.queuedOffline(store.db, now - DEVICE_OFFLINE_AFTER_MS, actor.groupIds);
      return {
        queuedOffline: { ...offline, lastSeenAt: offline.lastSeenAt === null ? null : new Date(offline.lastSeenAt).toISOString() },
        rejectedLast30Days: total((status) => rejected.includes(status)),
        expiredLast30Days: total((status) => status === 'expired'),
        pendingByType: pending.map((p) => ({ type: p.type as ActionType, count: p.count })),
        pendingTotal: pending.reduce((sum, p) => sum + p.count, 0),
        oldestPendingAt: oldest === null ? null : new Date(oldest).toISOString(),
        oldestPendingAgeSeconds: oldest === null ? null : Math.floor((now - oldest) / 1000),
        byStatusPerDay: perDay.map((d) => ({ day: new Date(d.day * 86_400_000).toISOString().slice(0, 10), status: d.status as ActionStatus, count: d.count })),
      };
    },
  };

  /** Where an action came from: the alerts that started its investigation, and their incidents (the action's own first). */
  async function originOf(row: ActionsTable): Promise<ActionOrigin> {
    const alerts = row.investigation_id === null ? [] : await repo.alertsOf(store.db, row.investigation_id);
    const incidentIds = [...new Set([row.incident_id, ...alerts.map((a) => a.incident_id)].filter((id) => id !== null))];
    return { alerts: alerts.map((a) => ({ id: a.id, title: a.title, incidentId: a.incident_id })), incidentIds };
  }

  /**
   * An effect in force is only as true as its agent's last check: while the
   * agent is out of contact (stopped, or the device off or cut off), it is
   * said to be unverified since the agent was last heard from.
   */
  async function unverifiedFor(row: ActionsTable): Promise<{ since: string | null; reason: string } | null> {
    const effect = IN_FORCE_EFFECTS[row.type as ActionType];
    if (row.status !== 'completed' || effect === undefined) return null;
    const device = await devices.findDevice(store.db, row.device_id);
    if (!device || deviceHealth(device, clock.now()) !== 'offline') return null;
    const since = device.last_seen_at === null ? null : new Date(device.last_seen_at).toISOString();
    return { since, reason: `The device's agent has not been in contact since ${since ?? 'it enrolled'}: whether the ${effect} still holds is unverified since then` };
  }

  /** Why a queued action has not reached its device yet, in words an analyst can act on. */
  async function waitingFor(row: ActionsTable, enforcement: Enforcement | null): Promise<{ reason: string; deviceLastSeenAt: string | null; deliverBy: string | null } | null> {
    if (row.status !== 'queued') return null;
    if (enforcement) {
      const deliverBy = row.deliver_by === null ? null : new Date(row.deliver_by).toISOString();
      const reason = enforcement.waitingOnline > 0
        ? `Waiting for ${enforcement.waitingOnline} online agents to apply it`
        : `Waiting for a managed agent to come online and apply it${deliverBy ? `; times out ${deliverBy}` : ''}`;
      return { reason, deviceLastSeenAt: null, deliverBy };
    }
    const device = await devices.findDevice(store.db, row.device_id);
    if (!device) return null;
    const health = deviceHealth(device, clock.now());
    if (health === 'online') return null;
    const lastSeen = device.last_seen_at === null ? null : new Date(device.last_seen_at).toISOString();
    const deliverBy = row.deliver_by === null ? null : new Date(row.deliver_by).toISOString();
    const reason = health === 'unmanaged'
      ? 'Waiting for an agent: the device has none enrolled'
      : `Waiting for device, last seen ${lastSeen ?? 'never'}${deliverBy ? `; times out ${deliverBy}` : ''}`;
    return { reason, deviceLastSeenAt: lastSeen, deliverBy };
  }

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
          return step(trx, current);
        });
        if (row === null) continue;
        moved++;
        notify([row]);
      }
    }
  }

  /** After commit: tells agents' connections of new commands, and of a new containment state. */
  function notify(rows: ActionsTable[]): void {
    const devices = [...new Set(rows.filter((r) => r.status === 'queued' && !isFleet(r)).map((r) => r.device_id))];
    if (devices.length > 0) deps.dispatch?.(devices);
    if (rows.some((r) => isFleet(r) && r.state_version !== null)) deps.publishState?.();
  }

  /** When an undo action ends without completing, its original may be undone again. */
  async function releaseUndoLink(trx: Db, undo: ActionsTable): Promise<void> {
    if (undo.undo_of === null) return;
    await trx.updateTable('actions').set({ undone_by: null, updated_at: clock.now() }).where('id', '=', undo.undo_of).where('undone_by', '=', undo.id).execute();
  }
}
export type ActionsService = ReturnType<typeof createActionsService>;
