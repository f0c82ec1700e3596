/**
 * The action lifecycle (DESIGN.md §2) as one pure function over a table.
 * Only the actions service applies it, and it writes the result with
 * compare-and-set on the previous status.
 */
export const ACTION_STATUSES = [
  'pending_approval', 'queued', 'in_progress', 'completed', 'failed',
  'rejected', 'expired', 'cancelled', 'timed_out', 'undone',
] as const;
export type ActionStatus = (typeof ACTION_STATUSES)[number];

export const ACTION_EVENTS = [
  'approve', 'reject', 'expire', 'cancel', 'deliver', 'complete', 'fail', 'time_out', 'undo_complete',
] as const;
export type ActionEvent = (typeof ACTION_EVENTS)[number];

export const TRANSITIONS = {
  pending_approval: { approve: 'queued', reject: 'rejected', expire: 'expired', cancel: 'cancelled' },
  queued: { deliver: 'in_progress', cancel: 'cancelled', time_out: 'timed_out' },
  in_progress: { complete: 'completed', fail: 'failed', time_out: 'timed_out' },
  completed: { undo_complete: 'undone' },
  failed: {},
  rejected: {},
  expired: {},
  cancelled: {},
  timed_out: {},
  undone: {},
} as const satisfies Record<ActionStatus, Partial<Record<ActionEvent, ActionStatus>>>;

/** The status an event leads to, or null when the event is not allowed from `from`. */
export function nextStatus(from: ActionStatus, event: ActionEvent): ActionStatus | null {
  const row: Partial<Record<ActionEvent, ActionStatus>> = TRANSITIONS[from];
  return row[event] ?? null;
}

/**
 * Statuses that count as another wherever decisions are counted — the
 * status filter, the summary, the CSV export: a pending action that expires
 * is rejected by the system, as Defender counts it, while it keeps its own
 * status so that one can still tell the two apart.
 */
export const COUNTS_AS: Partial<Record<ActionStatus, ActionStatus>> = { expired: 'rejected' };

/** What a filter on `status` matches: that status, and those that count as it. */
export function statusesCountedAs(status: ActionStatus): ActionStatus[] {
  return [status, ...ACTION_STATUSES.filter((other) => COUNTS_AS[other] === status)];
}

/** Statuses from which nothing more happens to the action itself (undo aside). */
export function isTerminal(status: ActionStatus): boolean {
  return Object.keys(TRANSITIONS[status]).length === 0;
}

/** The Pending tab holds pending_approval; the History tab everything else. */
export const ACTION_VIEWS = ['pending', 'history'] as const;
export type ActionView = (typeof ACTION_VIEWS)[number];
