import type { ActionsTable } from '../../db/schema.ts';

/** What every new action row must be given; the rest starts empty. */
type Given = 'id' | 'type' | 'status' | 'entity_type' | 'entity_name' | 'device_id' | 'device_name' | 'group_id' | 'source' | 'requested_by' | 'requested_at';

/**
 * A new action row: what is given, every other column empty (null, no
 * parameters), last changed when it was requested. The one place a whole
 * row is spelled out, so a new column has one default.
 */
export function actionRow(given: Pick<ActionsTable, Given> & Partial<ActionsTable>): ActionsTable {
  return {
    entity_sha256: null, entity_path: null, parameters: '{}', investigation_id: null, incident_id: null, approval_id: null,
    requested_by_user_id: null, comment: null, decided_by: null, decided_at: null, decision_comment: null, expires_at: null,
    updated_at: given.requested_at, undo_of: null, undone_by: null, result: null, command_jws: null, deliver_by: null,
    state_version: null, enforcement: null, entity_key: null,
    ...given,
  };
}
