import type { CreateDeviceBody, CreateDeviceGroupBody, Device, DeviceGroup, DeviceState, UpdateDeviceBody, UpdateDeviceGroupBody } from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { DeviceGroupsTable, DevicesTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { type DeviceExtras, NOTHING_IN_FORCE, presentDevice, presentDeviceGroup } from './devices.presenter.ts';
import type { DevicesRepository } from './devices.repository.ts';
import { applyGroupRules } from './group-rules.ts';

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
      for (const row of await repo.addresses(db, chunk)) entry(row.device_id).addresses.push(row.address);
      for (const row of await repo.waitingActions(db, chunk)) entry(row.device_id)[row.status === 'queued' ? 'queuedActions' : 'pendingActions'] = Number(row.count);
    }
    for (const id of states.keys()) entry(id);
    return extras;
  }

  /**
   * What is in force on each of these devices: what its actions put there
   * (kept by the actions service as they complete and are undone) and the
   * containment of its addresses.
   */
  async function statesOf(db: Db, deviceIds: readonly string[]): Promise<Map<string, DeviceState>> {
    const states = new Map<string, DeviceState>();
    const of = (id: string): DeviceState => {
      const state = states.get(id) ?? { isolatedBy: null, codeRestrictedBy: null, containedUsers: [], releasing: [], containment: [] };
      states.set(id, state);
      return state;
    };
    for (let i = 0; i < deviceIds.length; i += 500) {
      const chunk = deviceIds.slice(i, i + 500);
      for (const row of await repo.states(db, chunk)) {
        const state = of(row.device_id);
        if (row.kind === 'isolation') state.isolatedBy = row.action_id;
        else if (row.kind === 'code_restriction') state.codeRestrictedBy = row.action_id;
        else state.containedUsers.push({ name: row.entity, actionId: row.action_id });
        if (row.releasing) state.releasing.push(row.action_id);
      }
      for (const row of await repo.containment(db, chunk)) {
        const state = of(row.device_id);
        // The latest action per address comes first.
        if (!state.containment.some((c) => c.address === row.entity_name)) state.containment.push({ address: row.entity_name, actionId: row.id });
      }
    }
    return states;
  }

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
        await repo.setGroup(trx, id, body.groupId, body.groupId !== null);
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
        await repo.updateGroup(trx, id, patch);
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
