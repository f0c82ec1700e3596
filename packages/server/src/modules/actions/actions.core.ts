import {
  ACTION_CATALOGUE, type ActionEvent, type ActionParameters, type ActionSource, type ActionStatus, type ActionType, FLEET_ACTION_TYPES,
  ISOLATION_DELIVERY_WINDOW_HOURS, type IndicatorType, nextStatus,
} from '@quell/contracts';
import { type Actor, inScope } from '../../actor.ts';
import type { CommandSigner } from '../../command-signer.ts';
import type { ActionsTable } from '../../db/schema.ts';
import { type Db, type Store, afterCommit } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { DevicesRepository } from '../devices/devices.repository.ts';
import { writeDesiredState } from '../desired-state/desired-state.ts';
import type { SettingsService } from '../settings/settings.service.ts';
import { presentAction, storedParameters } from './actions.presenter.ts';
import type { ActionsRepository } from './actions.repository.ts';

/**
 * What every part of the actions service shares: the one status writer
 * (apply), queueing with a signed command, containment's state, the checks
 * of a bulk call, and telling agents after commit.
 */

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

export const isFleet = (row: Pick<ActionsTable, 'type'>): boolean => FLEET_ACTION_TYPES.includes(row.type as ActionType);

/** Sources where no person decided to act: they never lift the agent's guards. */
const AUTOMATED_SOURCES: readonly ActionSource[] = ['automated_investigation', 'antivirus'];
export const overridesGuard = (parameters: ActionParameters): boolean => 'overrideGuard' in parameters && parameters.overrideGuard === true;

/**
 * `parameters.overrideGuard: true` lifts the agent's system-tier guards
 * (critical files, units, modules, root; docs/agent-safety.md). Only a Global
 * Administrator may ask for it or approve an action that carries it, and
 * never automation: not the system's own actor, not an automated source.
 */
export function requireGuardOverrideAllowed(actor: Actor, doing: string, source?: ActionSource): void {
  if (actor.kind === 'system' || (source !== undefined && AUTOMATED_SOURCES.includes(source))) {
    throw new QuellError('guard_override_forbidden', `${doing} with parameters.overrideGuard: automated actions never override the agent's guards`);
  }
  if (actor.role !== 'global_admin') throw new QuellError('guard_override_forbidden', `${doing} with parameters.overrideGuard needs a Global Administrator; your role is ${actor.role}`);
}

/** The refusal of a second open action on the same entity: it names the open one, and who proposed it. */
export function alreadyOpen(open: ActionsTable): QuellError {
  const by = open.investigation_id !== null ? `investigation ${open.investigation_id}` : open.requested_by;
  return new QuellError('action_already_open', `${open.type} of ${open.entity_name} on ${open.device_name} is already open as action ${open.id} (${open.status}), proposed by ${by}`, {
    actions: [{ id: open.id, status: open.status, decidedBy: open.decided_by }],
  });
}

export function requireOneType(rows: ActionsTable[]): void {
  const types = [...new Set(rows.map((r) => r.type))];
  if (types.length > 1) throw new QuellError('mixed_action_types', `A bulk call takes actions of one type; these are ${types.join(', ')}`);
}

export function requireStatus(rows: ActionsTable[], allowed: readonly ActionStatus[], code: 'action_not_pending' | 'action_not_cancelable' | 'action_not_completed'): void {
  const wrong = rows.filter((r) => !allowed.includes(r.status as ActionStatus));
  if (wrong.length === 0) return;
  const list = wrong.map((r) => `${r.id} is ${r.status}${r.decided_by ? ` (decided by ${r.decided_by})` : ''}`).join('; ');
  throw new QuellError(code, `Nothing was changed: ${list}`, { actions: wrong.map((r) => ({ id: r.id, status: r.status, decidedBy: r.decided_by })) });
}

export function createActionsCore(deps: ActionsServiceDeps) {
  const { repo, devices, audit, settings, clock, ids } = deps;

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
    await audit.record(trx, actor, {
      kind: `action.${event}`, targetType: 'action', targetId: row.id, targetGroupIds: [row.group_id], before: { status: from }, after: { status: to, ...(comment ? { comment } : {}) },
    });
    await keepDeviceState(trx, row, to);
    return { ...row, ...changed };
  }
  /** What is in force on the device follows its isolation, restriction and user containment as they complete and are undone. */
  async function keepDeviceState(trx: Db, row: ActionsTable, to: ActionStatus): Promise<void> {
    const kind = ACTION_CATALOGUE[row.type as ActionType].deviceState;
    if (kind === null) return;
    if (to === 'completed') {
      const entity = kind === 'contained_user' ? row.entity_name : '';
      await devices.holdState(trx, { device_id: row.device_id, kind, entity, action_id: row.id });
    } else if (to === 'undone') {
      await devices.releaseState(trx, row.id);
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
    await repo.setStateVersion(trx, stamp.id, version);
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

  /** When an undo action ends without completing, its original may be undone again. */
  async function releaseUndoLink(trx: Db, undo: ActionsTable): Promise<void> {
    if (undo.undo_of === null) return;
    await repo.unlinkUndo(trx, undo.undo_of, undo.id, clock.now());
  }

  /** Once `trx` commits: tells agents' connections of new commands, and of a new containment state. */
  function notify(trx: Db, rows: ActionsTable[]): void {
    const devices = [...new Set(rows.filter((r) => r.status === 'queued' && !isFleet(r)).map((r) => r.device_id))];
    const state = rows.some((r) => isFleet(r) && r.state_version !== null);
    afterCommit(trx, () => {
      if (devices.length > 0) deps.dispatch?.(devices);
      if (state) deps.publishState?.();
    });
  }

  return { apply, loadAll, queueFields, refreshContainment, requireNotAllowed, releaseUndoLink, notify };
}
export type ActionsCore = ReturnType<typeof createActionsCore>;
