import type { AuditEntry } from '@quell/contracts';
import type { AuditLogTable } from '../../db/schema.ts';

const AGENT_ACTOR = /^agent:([0-9a-f-]{36})$/;

/** The device whose agent acted, when an agent did. */
export const agentDeviceOf = (actor: string): string | undefined => AGENT_ACTOR.exec(actor)?.[1];

/** An entry as readers see it, with the names (by `type:id`) of its target and of the device of an agent that acted. */
export function presentAuditEntry(row: AuditLogTable, names: ReadonlyMap<string, string>): AuditEntry {
  const agentDevice = agentDeviceOf(row.actor);
  return {
    seq: row.seq,
    at: new Date(row.at).toISOString(),
    actor: row.actor,
    sourceIp: row.source_ip,
    kind: row.kind,
    targetType: row.target_type,
    targetId: row.target_id,
    targetName: row.target_id === null ? null : (names.get(`${row.target_type}:${row.target_id}`) ?? null),
    actorName: agentDevice === undefined ? null : (names.get(`device:${agentDevice}`) ?? null),
    before: row.before_json === null ? null : JSON.parse(row.before_json),
    after: row.after_json === null ? null : JSON.parse(row.after_json),
    deviceGroupIds: row.group_ids === null ? null : (JSON.parse(row.group_ids) as string[]),
    hash: row.hash,
  };
}
