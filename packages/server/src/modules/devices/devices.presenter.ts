import { DEVICE_OFFLINE_AFTER_MS, type Device, type DeviceFacts, type DeviceGroup, type DeviceGroupRule, type DeviceHealth, type DeviceState } from '@quell/contracts';
import type { DeviceGroupsTable } from '../../db/schema.ts';
import type { DeviceRow } from './devices.repository.ts';

export function deviceHealth(row: DeviceRow, now: number): DeviceHealth {
  if (row.agent_facts === null) return 'unmanaged';
  return row.last_seen_at !== null && now - row.last_seen_at < DEVICE_OFFLINE_AFTER_MS ? 'online' : 'offline';
}

export const NOTHING_IN_FORCE: Readonly<DeviceState> = Object.freeze({ isolatedBy: null, codeRestrictedBy: null, containedUsers: [], releasing: [], containment: [] });

/** What is in force on each device, the addresses alerts reported for it, and how many of its actions wait for approval or delivery. */
export interface DeviceExtras { state: DeviceState; addresses: string[]; pendingActions: number; queuedActions: number }
export const NO_EXTRAS: DeviceExtras = { state: NOTHING_IN_FORCE, addresses: [], pendingActions: 0, queuedActions: 0 };

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
