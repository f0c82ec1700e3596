import type { DeviceGroupRule } from '@quell/contracts';
import type { Db } from '../../db/store.ts';
import { createDevicesRepository } from './devices.repository.ts';

const repo = createDevicesRepository();

/** `web-*` → /^web-.*$/i: every other character stands for itself. */
function patternRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
}

export function ruleMatches(rule: DeviceGroupRule, device: { name: string; platform: string }): boolean {
  return (rule.namePattern === undefined || patternRegExp(rule.namePattern).test(device.name)) && (rule.platform === undefined || rule.platform === device.platform);
}

/**
 * Puts each device that no administrator placed by hand in the highest-ranked
 * group whose rule matches it (or in none), inside `trx`; all devices, or
 * only those named. Returns the ids of the devices that changed group.
 */
export async function applyGroupRules(trx: Db, deviceIds?: readonly string[]): Promise<string[]> {
  if (deviceIds?.length === 0) return [];
  const groups = (await repo.ruledGroups(trx)).map((g) => ({ id: g.id, rule: JSON.parse(g.rule!) as DeviceGroupRule }));
  const moved: string[] = [];
  for (const device of await repo.unpinned(trx, deviceIds)) {
    const groupId = groups.find((g) => ruleMatches(g.rule, device))?.id ?? null;
    if (groupId === device.group_id) continue;
    await repo.setGroup(trx, device.id, groupId, false);
    moved.push(device.id);
  }
  return moved;
}
