import type { DeviceGroupRule } from '@quell/contracts';
import type { Db } from '../../db/store.ts';

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
  const groups = (await trx.selectFrom('device_groups').select(['id', 'rule']).where('rule', 'is not', null).orderBy('rank', 'desc').orderBy('name').execute())
    .map((g) => ({ id: g.id, rule: JSON.parse(g.rule!) as DeviceGroupRule }));
  let query = trx.selectFrom('devices').select(['id', 'name', 'platform', 'group_id']).where('group_pinned', '=', 0);
  if (deviceIds) {
    if (deviceIds.length === 0) return [];
    query = query.where('id', 'in', deviceIds);
  }
  const moved: string[] = [];
  for (const device of await query.execute()) {
    const groupId = groups.find((g) => ruleMatches(g.rule, device))?.id ?? null;
    if (groupId === device.group_id) continue;
    await trx.updateTable('devices').set({ group_id: groupId }).where('id', '=', device.id).execute();
    moved.push(device.id);
  }
  return moved;
}
