/**
 * The one catalogue of error codes. Every problem response carries one of
 * these as `code`; clients branch on the code, never on the wording.
 * docs/errors.md documents each one (a test keeps the two in step).
 */
export const ERRORS = {
  validation_failed: { status: 400, title: 'The request does not match the schema' },
  malformed_json: { status: 400, title: 'The body is not valid JSON' },
  mixed_action_types: { status: 400, title: 'A bulk call must name actions of one action type' },
  duplicate_ids: { status: 400, title: 'The same id appears more than once' },
  invalid_cursor: { status: 400, title: 'The page cursor is not valid for this query' },
  invalid_time_range: { status: 400, title: 'The time range is not valid' },
  not_undoable: { status: 400, title: 'This action type cannot be undone' },
  not_a_file_quarantine: { status: 400, title: 'Instances exist only for file quarantine actions' },
  unsupported_platform: { status: 400, title: 'The device platform does not support this action type' },
  entity_type_mismatch: { status: 400, title: 'The entity type does not match the action type' },
  invalid_initial_status: { status: 400, title: 'A new action is born pending_approval or queued' },
  manual_actions_are_queued: { status: 400, title: 'Manual actions need no approval and are born queued' },
  device_is_managed: { status: 400, title: 'Contain device is for devices without an agent; isolate a managed device instead' },
  undo_types_not_creatable: { status: 400, title: 'Undo actions are created through /api/actions/undo' },
  unauthenticated: { status: 401, title: 'Sign in or send a valid bearer token' },
  invalid_credentials: { status: 401, title: 'Wrong user name or password' },
  forbidden: { status: 403, title: 'Your role does not allow this' },
  csrf_token_invalid: { status: 403, title: 'Missing or wrong x-csrf-token header' },
  four_eyes_violation: { status: 403, title: 'The requester of an action cannot approve it' },
  undo_role_required: { status: 403, title: 'A higher role is needed to undo this action type' },
  token_scope_missing: { status: 403, title: 'The API token lacks the scope for this call' },
  role_too_high: { status: 403, title: 'You cannot grant a role above your own' },
  action_not_found: { status: 404, title: 'No such action' },
  device_not_found: { status: 404, title: 'No such device' },
  device_group_not_found: { status: 404, title: 'No such device group' },
  user_not_found: { status: 404, title: 'No such user' },
  token_not_found: { status: 404, title: 'No such token' },
  enrolment_token_invalid: { status: 401, title: 'The enrolment token is unknown, used up, expired or revoked' },
  agent_signature_invalid: { status: 401, title: 'The upload is not signed by the agent of that action\'s device' },
  package_not_found: { status: 404, title: 'No investigation package for this action' },
  package_not_expected: { status: 409, title: 'This action is not an investigation package waiting for its upload' },
  route_not_found: { status: 404, title: 'No such route' },
  action_not_pending: { status: 409, title: 'The action is no longer pending approval' },
  action_not_cancelable: { status: 409, title: 'Only pending or queued actions can be cancelled' },
  action_not_completed: { status: 409, title: 'Only completed actions can be undone' },
  undo_in_progress: { status: 409, title: 'An undo of this action already exists' },
  action_state_conflict: { status: 409, title: 'The action changed status meanwhile' },
  username_taken: { status: 409, title: 'That user name is taken' },
  device_group_name_taken: { status: 409, title: 'That device group name is taken' },
  payload_too_large: { status: 413, title: 'The body is too large' },
  unsupported_media_type: { status: 415, title: 'Send application/json' },
  too_many_login_attempts: { status: 429, title: 'Too many failed sign-ins; wait and try again' },
  internal_error: { status: 500, title: 'Internal error' },
  not_ready: { status: 503, title: 'The server is not ready' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];
