import {
  type CreateDeviceBody, type CreateDeviceGroupBody, DEVICE_OFFLINE_AFTER_MS, type Device, type DeviceFacts, type DeviceGroup, type DeviceHealth, type UpdateDeviceBody,
} from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { DeviceGroupsTable, DevicesTable } from '../../db/schema.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { DeviceRow, DevicesRepository } from './devices.repository.ts';

export function deviceHealth(row: DeviceRow, now: number): DeviceHealth {
  if (row.agent_facts === null) return 'unmanaged';
  return row.last_seen_at !== null && now - row.last_seen_at < DEVICE_OFFLINE_AFTER_MS ? 'online' : 'offline';
}

export function presentDevice(row: DeviceRow, now: number): Device {
  const facts = row.agent_facts === null ? null : (JSON.parse(row.agent_facts) as DeviceFacts);
  return {
    id: row.id,
    name: row.name,
    platform: row.platform as Device['platform'],
    groupId: row.group_id,
    createdAt: new Date(row.created_at).toISOString(),
    lastSeenAt: row.last_seen_at === null ? null : new Date(row.last_seen_at).toISOString(),
    health: deviceHealth(row, now),
    agent: facts === null ? null : { os: facts.os, kernel: facts.kernel, agentVersion: facts.agentVersion, ips: facts.ips, enrolledAt: new Date(row.agent_enrolled_at!).toISOString() },
  };
}

export function presentDeviceGroup(row: DeviceGroupsTable): DeviceGroup {
  return {
    id: row.id,
    name: row.name,
    rank: row.rank,
    automationLevel: row.automation_level as DeviceGroup['automationLevel'],
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/**
 * Devices and device groups. Agents register devices when they enrol; until
 * then (and for unmanaged devices) administrators register them here.
 */
export function createDevicesService(deps: { store: Store; repo: DevicesRepository; audit: AuditService; clock: Clock; ids: Ids }) {
  const { store, repo, audit, clock, ids } = deps;

  return {
    async create(actor: Actor, body: CreateDeviceBody): Promise<Device> {
      requirePermission(actor, 'devices:manage');
      return store.transaction(async (trx) => {
        if (body.groupId !== undefined && !(await repo.findGroup(trx, body.groupId))) throw new QuellError('device_group_not_found');
        if (!inScope(actor, body.groupId ?? null)) throw new QuellError('device_group_not_found');
        const row: DevicesTable = { id: ids.next(), name: body.name, platform: body.platform, group_id: body.groupId ?? null, created_at: clock.now(), last_seen_at: null };
        await repo.insertDevice(trx, row);
        const device = presentDevice({ ...row, agent_facts: null, agent_enrolled_at: null }, clock.now());
        await audit.record(trx, actor, { kind: 'device.create', targetType: 'device', targetId: row.id, after: device });
        return device;
      });
    },

    async list(actor: Actor): Promise<Device[]> {
      requirePermission(actor, 'devices:read');
      const now = clock.now();
      return (await repo.listDevices(store.db, actor.groupIds)).map((row) => presentDevice(row, now));
    },

    async get(actor: Actor, id: string): Promise<Device> {
      requirePermission(actor, 'devices:read');
      const row = await repo.findDevice(store.db, id);
      // Out of scope looks exactly like absent: a scoped user learns nothing about other groups.
      if (!row || !inScope(actor, row.group_id)) throw new QuellError('device_not_found');
      return presentDevice(row, clock.now());
    },

    /** Moves a device to another device group; both the old and the new group must be in the actor's scope. */
    async update(actor: Actor, id: string, body: UpdateDeviceBody): Promise<Device> {
      requirePermission(actor, 'devices:manage');
      return store.transaction(async (trx) => {
        const row = await repo.findDevice(trx, id);
        if (!row || !inScope(actor, row.group_id)) throw new QuellError('device_not_found');
        if (body.groupId !== null && (!(await repo.findGroup(trx, body.groupId)) || !inScope(actor, body.groupId))) throw new QuellError('device_group_not_found');
        await trx.updateTable('devices').set({ group_id: body.groupId }).where('id', '=', id).execute();
        const before = presentDevice(row, clock.now());
        const after = presentDevice({ ...row, group_id: body.groupId }, clock.now());
        await audit.record(trx, actor, { kind: 'device.update', targetType: 'device', targetId: id, before: { groupId: before.groupId }, after: { groupId: after.groupId } });
        return after;
      });
    },

    async createGroup(actor: Actor, body: CreateDeviceGroupBody): Promise<DeviceGroup> {
      requirePermission(actor, 'device_groups:manage');
      return store.transaction(async (trx) => {
        if (await repo.findGroupByName(trx, body.name)) throw new QuellError('device_group_name_taken');
        const row: DeviceGroupsTable = { id: ids.next(), name: body.name, rank: body.rank, automation_level: body.automationLevel, created_at: clock.now() };
        await repo.insertGroup(trx, row);
        await audit.record(trx, actor, { kind: 'device_group.create', targetType: 'device_group', targetId: row.id, after: presentDeviceGroup(row) });
        return presentDeviceGroup(row);
      });
    },

    async listGroups(actor: Actor): Promise<DeviceGroup[]> {
      requirePermission(actor, 'devices:read');
      return (await repo.listGroups(store.db)).filter((g) => inScope(actor, g.id)).map(presentDeviceGroup);
    },
  };
}
export type DevicesService = ReturnType<typeof createDevicesService>;
