import { type Action, type ActionDetail, type ActionParameters, type ActionStatus, type ActionTimelineEntry, COUNTS_AS } from '@quell/contracts';
import { csvCell } from '../../csv.ts';
import type { ActionDriftTable, ActionEventsTable, ActionsTable } from '../../db/schema.ts';
import type { ExportRow } from './actions.repository.ts';

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** A row's parameters, typed as its type takes them (migration 0023 put those stored before in today's form). */
export function storedParameters(row: Pick<ActionsTable, 'parameters'>): ActionParameters {
  return JSON.parse(row.parameters) as ActionParameters;
}

/** The boundary between rows and what clients see: every API response goes through here. */
export function presentAction(row: ActionsTable): Action {
  return {
    id: row.id,
    type: row.type as Action['type'],
    status: row.status as Action['status'],
    entityType: row.entity_type as Action['entityType'],
    entity: {
      name: row.entity_name,
      ...(row.entity_sha256 !== null ? { sha256: row.entity_sha256 } : {}),
      ...(row.entity_path !== null ? { path: row.entity_path } : {}),
    },
    parameters: storedParameters(row),
    deviceId: row.device_id,
    deviceName: row.device_name,
    deviceGroupId: row.group_id,
    source: row.source as Action['source'],
    investigationId: row.investigation_id,
    incidentId: row.incident_id,
    approvalId: row.approval_id,
    requestedBy: row.requested_by,
    requestedAt: iso(row.requested_at),
    comment: row.comment,
    decidedBy: row.decided_by,
    decidedAt: isoOrNull(row.decided_at),
    decisionComment: row.decision_comment,
    expiresAt: isoOrNull(row.expires_at),
    updatedAt: iso(row.updated_at),
    undoOf: row.undo_of,
    undoneBy: row.undone_by,
    result: row.result === null ? null : (JSON.parse(row.result) as Action['result']),
  };
}

export function presentTimelineEntry(row: ActionEventsTable): ActionTimelineEntry {
  return {
    at: iso(row.at),
    event: row.event as ActionTimelineEntry['event'],
    fromStatus: row.from_status as ActionTimelineEntry['fromStatus'],
    toStatus: row.to_status as ActionTimelineEntry['toStatus'],
    actor: row.actor,
    comment: row.comment,
  };
}

/** CSV columns of the History export, in order; `countsAs` is the status it is counted as (rejected for an expired action). */
export const CSV_COLUMNS = [
  'id', 'type', 'status', 'entityType', 'entity', 'sha256', 'deviceId', 'deviceName', 'source', 'investigationId',
  'incidentId', 'approvalId', 'requestedBy', 'requestedAt', 'decidedBy', 'decidedAt', 'comment', 'decisionComment', 'updatedAt', 'countsAs',
] as const;

export function csvRow(row: ExportRow): string {
  const cells = [
    row.id, row.type, row.status, row.entity_type, row.entity_name, row.entity_sha256, row.device_id, row.device_name, row.source,
    row.investigation_id, row.incident_id, row.approval_id, row.requested_by, iso(row.requested_at), row.decided_by,
    isoOrNull(row.decided_at), row.comment, row.decision_comment, iso(row.updated_at), COUNTS_AS[row.status as ActionStatus] ?? row.status,
  ];
  return cells.map(csvCell).join(',') + '\r\n';
}

export function presentDrift(row: ActionDriftTable & { device_name: string }): ActionDetail['drift'][number] {
  return {
    deviceId: row.device_id, deviceName: row.device_name, count: Number(row.count), firstAt: iso(Number(row.first_at)),
    lastAt: iso(Number(row.last_at)), detail: row.detail, repaired: Number(row.repaired) === 1,
  };
}
