import {
  type CreateDeviceBody, type CreateDeviceGroupBody, DEVICE_OFFLINE_AFTER_MS, type Device, type DeviceFacts, type DeviceGroup, type DeviceGroupRule, type DeviceHealth, type DeviceState,
  FLEET_ACTION_TYPES, type UpdateDeviceBody, type UpdateDeviceGroupBody,
} from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { DeviceGroupsTable, DevicesTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { DeviceRow, DevicesRepository } from './devices.repository.ts';
import { applyGroupRules } from './group-rules.ts';

export function deviceHealth(row: DeviceRow, now: number): DeviceHealth {
  if (row.agent_facts === null) return 'unmanaged';
  return row.last_seen_at !== null && now - row.last_seen_at < DEVICE_OFFLINE_AFTER_MS ? 'online' : 'offline';
}

const NOTHING_IN_FORCE: DeviceState = { isolatedBy: null, codeRestrictedBy: null, containedUsers: [] };

/** What is in force on each device, the addresses alerts reported for it, and how many of its actions wait for approval or delivery. */
interface DeviceExtras { state: DeviceState; addresses: string[]; pendingActions: number; queuedActions: number }
const NO_EXTRAS: DeviceExtras = { state: NOTHING_IN_FORCE, addresses: [], pendingActions: 0, queuedActions: 0 };

async function extrasOf(db: Db, deviceIds: readonly string[]): Promise<Map<string, DeviceExtras>> {
  const states = await statesOf(db, deviceIds);
  const extras = new Map<string, DeviceExtras>();
  const entry = (id: string): DeviceExtras => {
    const found = extras.get(id) ?? { state: states.get(id) ?? NOTHING_IN_FORCE, addresses: [], pendingActions: 0, queuedActions: 0 };
    extras.set(id, found);
    return found;
  };
  for (let i = 0; i < deviceIds.length; i += 500) {
    const chunk = deviceIds.slice(i, i + 500);
    const rows = await db.selectFrom('device_addresses').select(['device_id', 'address']).where('device_id', 'in', chunk)
      .orderBy('seen_at', 'desc').orderBy('address').execute();
    for (const row of rows) entry(row.device_id).addresses.push(row.address);
    const waiting = await db.selectFrom('actions').select((eb) => ['device_id', 'status', eb.fn.countAll<number>().as('count')])
      .where('device_id', 'in', chunk).where((eb) => eb.or([eb('status', '=', 'pending_approval'), eb.and([eb('status', '=', 'queued'), eb('type', 'not in', FLEET_ACTION_TYPES)])]))
      .groupBy(['device_id', 'status']).execute();
    for (const row of waiting) entry(row.device_id)[row.status === 'queued' ? 'queuedActions' : 'pendingActions'] = Number(row.count);
  }
  for (const id of states.keys()) entry(id);
  return extras;
}

/** What is in force on each of these devices (kept by the actions service as actions complete and are undone). */
async function statesOf(db: Db, deviceIds: readonly string[]): Promise<Map<string, DeviceState>> {
  const states = new Map<string, DeviceState>();
  for (let i = 0; i < deviceIds.length; i += 500) {
    const rows = await db.selectFrom('device_state').selectAll().where('device_id', 'in', deviceIds.slice(i, i + 500)).orderBy('entity').execute();
    for (const row of rows) {
      const state = states.get(row.device_id) ?? { isolatedBy: null, codeRestrictedBy: null, containedUsers: [] };
      if (row.kind === 'isolation') state.isolatedBy = row.action_id;
      else if (row.kind === 'code_restriction') state.codeRestrictedBy = row.action_id;
      else state.containedUsers.push({ name: row.entity, actionId: row.action_id });
      states.set(row.device_id, state);
    }
  }
  return states;
}

/** The agent's last signed state report: the version, and what it could not enforce (the keys its report names them by). */
function desiredStateOf(row: DeviceRow): NonNullable<Device['agent']>['desiredState'] {
  const failures = row.agent_state_failures === null ? {} : (JSON.parse(row.agent_state_failures) as Record<string, string>);
  return {
    version: row.agent_state_version === null ? null : Number(row.agent_state_version),
    error: row.agent_state_error,
    addressIndicators: failures.address_blocks ?? null,
    dnsIndicators: failures.dns ?? null,
  };
}

export function presentDevice(row: DeviceRow, now: number, extras: DeviceExtras = NO_EXTRAS): Device {
  const facts = row.agent_facts === null ? null : (JSON.parse(row.agent_facts) as DeviceFacts);
  return {
    id: row.id,
    name: row.name,
    platform: row.platform as Device['platform'],
    groupId: row.group_id,
    createdAt: new Date(row.created_at).toISOString(),
    lastSeenAt: row.last_seen_at === null ? null : new Date(row.last_seen_at).toISOString(),
    health: deviceHealth(row, now),
    discoveredFrom: row.discovered_from ?? null,
    addresses: extras.addresses,
    agent: facts === null ? null : {
      os: facts.os, kernel: facts.kernel, agentVersion: facts.agentVersion, ips: facts.ips, enrolledAt: new Date(row.agent_enrolled_at!).toISOString(),
      desiredState: desiredStateOf(row),
    },
    offboarding: row.offboard_requested_at === null ? null
      : { requestedAt: new Date(Number(row.offboard_requested_at)).toISOString(), releaseEffects: Number(row.offboard_release_effects) === 1 },
    offboarded: row.offboarded_report === null || row.offboarded_at === null ? null
      : { at: new Date(Number(row.offboarded_at)).toISOString(), ...(JSON.parse(row.offboarded_report) as Omit<NonNullable<Device['offboarded']>, 'at'>) },
    pendingActions: extras.pendingActions,
    queuedActions: extras.queuedActions,
    state: extras.state,
  };
}

export function presentDeviceGroup(row: DeviceGroupsTable): DeviceGroup {
  return {
    id: row.id,
    name: row.name,
    rank: row.rank,
    automationLevel: row.automation_level as DeviceGroup['automationLevel'],
    rule: row.rule === null ? null : (JSON.parse(row.rule) as DeviceGroupRule),
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/**
 * Devices and device groups. Agents register devices when they enrol; until
 * then (and for unmanaged devices) administrators register them here.
 */
export function createDevicesService(deps: {
  store: Store; repo: DevicesRepository; audit: AuditService; clock: Clock; ids: Ids;
  /** Told, after commit, of devices that changed group (their agents take up the new group's desired state). */
  onMoved?: (deviceIds: string[]) => void;
}) {
  const { store, repo, audit, clock, ids } = deps;
  const moved = (deviceIds: string[]): void => {
    if (deviceIds.length > 0) deps.onMoved?.(deviceIds);
  };

  async function checkGroupName(trx: Db, name: string, except: string | null): Promise<void> {
    const taken = await repo.findGroupByName(trx, name);
    if (taken && taken.id !== except) throw new QuellError('device_group_name_taken');
  }

  return {
    async create(actor: Actor, body: CreateDeviceBody): Promise<Device> {
      requirePermission(actor, 'devices:manage');
      return store.transaction(async (trx) => {
        if (body.groupId !== undefined && !(await repo.findGroup(trx, body.groupId))) throw new QuellError('device_group_not_found');
        if (!inScope(actor, body.groupId ?? null)) throw new QuellError('device_group_not_found');
        const pinned = body.groupId !== undefined;
        const row: DevicesTable = { id: ids.next(), name: body.name, platform: body.platform, group_id: body.groupId ?? null, created_at: clock.now(), last_seen_at: null, group_pinned: pinned ? 1 : 0 };
        await repo.insertDevice(trx, row);
        if (!pinned) await applyGroupRules(trx, [row.id]);
        const device = presentDevice((await repo.findDevice(trx, row.id))!, clock.now());
        if (!inScope(actor, device.groupId)) throw new QuellError('device_group_not_found', 'The groups\' rules put this device in a group outside your scope');
        await audit.record(trx, actor, { kind: 'device.create', targetType: 'device', targetId: row.id, after: device });
        return device;
      });
    },

    async list(actor: Actor): Promise<Device[]> {
      requirePermission(actor, 'devices:read');
      const now = clock.now();
      const rows = await repo.listDevices(store.db, actor.groupIds);
      const extras = await extrasOf(store.db, rows.map((r) => r.id));
      return rows.map((row) => presentDevice(row, now, extras.get(row.id)));
    },

    async get(actor: Actor, id: string): Promise<Device> {
      requirePermission(actor, 'devices:read');
      const row = await repo.findDevice(store.db, id);
      // Out of scope looks exactly like absent: a scoped user learns nothing about other groups.
      if (!row || !inScope(actor, row.group_id)) throw new QuellError('device_not_found');
      return presentDevice(row, clock.now(), (await extrasOf(store.db, [id])).get(id));
    },

    /**
     * Puts a device in a group by hand (rules leave it there), or with null
     * hands it back to the groups' rules; the old and the new group must be in the actor's scope.
     */
    async update(actor: Actor, id: string, body: UpdateDeviceBody): Promise<Device> {
      requirePermission(actor, 'devices:manage');
      const after = await store.transaction(async (trx) => {
        const row = await repo.findDevice(trx, id);
        if (!row || !inScope(actor, row.group_id)) throw new QuellError('device_not_found');
        if (body.groupId !== null && (!(await repo.findGroup(trx, body.groupId)) || !inScope(actor, body.groupId))) throw new QuellError('device_group_not_found');
        await trx.updateTable('devices').set({ group_id: body.groupId, group_pinned: body.groupId === null ? 0 : 1 }).where('id', '=', id).execute();
        if (body.groupId === null) await applyGroupRules(trx, [id]);
        const updated = presentDevice((await repo.findDevice(trx, id))!, clock.now(), (await extrasOf(trx, [id])).get(id));
        await audit.record(trx, actor, { kind: 'device.update', targetType: 'device', targetId: id, before: { groupId: row.group_id }, after: { groupId: updated.groupId, byHand: body.groupId !== null },
          concerns: { groupIds: [row.group_id] } });
        return { device: updated, changed: updated.groupId !== row.group_id };
      });
      if (after.changed) moved([id]);
      return after.device;
    },

    async createGroup(actor: Actor, body: CreateDeviceGroupBody): Promise<DeviceGroup> {
      requirePermission(actor, 'device_groups:manage');
      const { group, movedIds } = await store.transaction(async (trx) => {
        await checkGroupName(trx, body.name, null);
        const row: DeviceGroupsTable = {
          id: ids.next(), name: body.name, rank: body.rank, automation_level: body.automationLevel, created_at: clock.now(), rule: body.rule ? JSON.stringify(body.rule) : null,
        };
        await repo.insertGroup(trx, row);
        await audit.record(trx, actor, { kind: 'device_group.create', targetType: 'device_group', targetId: row.id, after: presentDeviceGroup(row) });
        return { group: presentDeviceGroup(row), movedIds: row.rule ? await applyGroupRules(trx) : [] };
      });
      moved(movedIds);
      return group;
    },

    /** Changes a group; a new rule or rank puts every device that was not placed by hand where the rules now say. */
    async updateGroup(actor: Actor, id: string, body: UpdateDeviceGroupBody): Promise<DeviceGroup> {
      requirePermission(actor, 'device_groups:manage');
      const { group, movedIds } = await store.transaction(async (trx) => {
        const row = await repo.findGroup(trx, id);
        if (!row || !inScope(actor, id)) throw new QuellError('device_group_not_found');
        if (body.name !== undefined) await checkGroupName(trx, body.name, id);
        const patch: Partial<DeviceGroupsTable> = {
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(body.rank !== undefined ? { rank: body.rank } : {}),
          ...(body.automationLevel !== undefined ? { automation_level: body.automationLevel } : {}),
          ...(body.rule !== undefined ? { rule: body.rule === null ? null : JSON.stringify(body.rule) } : {}),
        };
        await trx.updateTable('device_groups').set(patch).where('id', '=', id).execute();
        const after = { ...row, ...patch };
        await audit.record(trx, actor, { kind: 'device_group.update', targetType: 'device_group', targetId: id, before: presentDeviceGroup(row), after: presentDeviceGroup(after) });
        const rulesChanged = body.rule !== undefined || body.rank !== undefined;
        return { group: presentDeviceGroup(after), movedIds: rulesChanged ? await applyGroupRules(trx) : [] };
      });
      moved(movedIds);
      return group;
    },

    async listGroups(actor: Actor): Promise<DeviceGroup[]> {
      requirePermission(actor, 'devices:read');
      return (await repo.listGroups(store.db)).filter((g) => inScope(actor, g.id)).map(presentDeviceGroup);
    },
  };
}
export type DevicesService = ReturnType<typeof createDevicesService>;
