import { ACTION_CATALOGUE, ACTION_STATUSES, ERRORS, ROLE_LABELS, type ActionStatus, type Problem } from '@quell/contracts';
import { statusLabel } from '../format.ts';
import { ApiError } from './api-client.ts';

/** What went wrong, in words an analyst can act on; the code decides, never the wording. */
export function problemText(error: unknown): string {
  if (!(error instanceof ApiError)) return error instanceof Error ? error.message : 'Something went wrong';
  switch (error.code) {
    case 'action_not_pending':
    case 'action_not_completed':
    case 'action_state_conflict':
    case 'action_not_cancelable':
      return `${ERRORS[error.code].title}. ${decidedElsewhere(error.problem)}`.trim();
    case 'undo_in_progress':
      return 'An undo of this action already exists; the list now shows it.';
    case 'forbidden':
    case 'undo_role_required':
    case 'four_eyes_violation':
    case 'token_scope_missing':
      return `Not allowed: ${inWords(error.message)}`;
    case 'unauthenticated':
      return 'Your session has ended; sign in again.';
    case 'network_error':
    case 'unexpected_response':
      return error.message;
    default:
      return `${ERRORS[error.code].title}: ${error.message}`;
  }
}

/** The decision each status comes from: a queued or completed action was approved. */
const DECISION_OF: Record<ActionStatus, string> = {
  pending_approval: 'left pending',
  queued: 'approved',
  in_progress: 'approved',
  completed: 'approved',
  failed: 'approved',
  timed_out: 'approved',
  undone: 'approved',
  rejected: 'rejected',
  expired: 'expired',
  cancelled: 'cancelled',
};

/** "Already rejected by security-admin (now Rejected)." for each action another decision got to first. */
function decidedElsewhere(problem: Problem | null): string {
  const actions = problem?.actions ?? [];
  return actions.map((a) => {
    const status = (ACTION_STATUSES as readonly string[]).includes(a.status ?? '') ? (a.status as ActionStatus) : null;
    if (!status) return 'It changed meanwhile.';
    const by = a.decidedBy ? ` by ${a.decidedBy}` : '';
    return `Already ${DECISION_OF[status]}${by} (now ${statusLabel(status).toLowerCase()}).`;
  }).join(' ');
}

/** What the server names by id in a refusal, as the console labels it. */
const WORDS: Record<string, string> = {
  ...Object.fromEntries(Object.entries(ROLE_LABELS)),
  ...Object.fromEntries(Object.entries(ACTION_CATALOGUE).map(([type, def]) => [type, def.label.toLowerCase()])),
  'alerts:manage': 'triaging alerts',
  'indicators:manage': 'managing indicators',
  'actions:undo': 'undoing actions',
  'actions:decide': 'approving and rejecting actions',
  'actions:create': 'creating actions',
};

/** "Undoing quarantine_file needs the security_admin role" → "Undoing quarantine file needs the Security Administrator role". */
function inWords(message: string): string {
  return message.replace(/[a-z]+(?:[_:][a-z]+)+/g, (id) => WORDS[id] ?? id);
}
