import type { Indicator, IndicatorAction, IndicatorHit, IndicatorHitRow, IndicatorType } from '@quell/contracts';
import { type Actor, inScope } from '../../actor.ts';
import type { IndicatorsTable } from '../../db/schema.ts';

export function presentIndicator(row: IndicatorsTable, now: number): Indicator {
  return {
    id: row.id,
    type: row.type as IndicatorType,
    value: row.value,
    action: row.action as IndicatorAction,
    title: row.title,
    description: row.description,
    deviceGroupIds: JSON.parse(row.device_group_ids) as string[],
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
    active: row.expires_at === null || row.expires_at > now,
    createdBy: row.created_by,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

/**
 * An indicator as a user scoped to device groups may see it: one for every
 * group, or for one of theirs, naming only their groups; any other, not at all.
 */
export function visibleTo(actor: Actor, indicator: Indicator): Indicator | null {
  if (actor.groupIds === null || indicator.deviceGroupIds.length === 0) return indicator;
  const theirs = indicator.deviceGroupIds.filter((id) => inScope(actor, id));
  return theirs.length === 0 ? null : { ...indicator, deviceGroupIds: theirs };
}

/** One indicator's hits on one device, summed over its hours, as the API shows them. */
export function presentHits(row: { indicator_id: string; device_id: string; device_name: string; count: number | string; first_at: number | string; last_at: number | string; last_hit: string }): IndicatorHitRow {
  const last = JSON.parse(row.last_hit) as IndicatorHit;
  return {
    indicatorId: row.indicator_id,
    deviceId: row.device_id,
    deviceName: row.device_name,
    count: Number(row.count),
    firstAt: new Date(Number(row.first_at)).toISOString(),
    lastAt: new Date(Number(row.last_at)).toISOString(),
    lastHit: {
      action: last.action,
      remote: last.remote ?? null,
      name: last.name ?? null,
      direction: last.direction ?? null,
      path: last.path ?? null,
      process: last.process?.name ?? null,
      user: last.user ?? null,
    },
  };
}
