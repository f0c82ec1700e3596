import { describe, expect, it } from 'vitest';
import { ACTION_EVENTS, ACTION_STATUSES, type ActionEvent, type ActionStatus, isTerminal, nextStatus, statusesCountedAs } from './lifecycle.ts';

/** Every allowed transition, written out by hand from DESIGN.md §2 — the table under test must agree. */
const ALLOWED: Array<[ActionStatus, ActionEvent, ActionStatus]> = [
  ['pending_approval', 'approve', 'queued'],
  ['pending_approval', 'reject', 'rejected'],
  ['pending_approval', 'expire', 'expired'],
  ['pending_approval', 'cancel', 'cancelled'],
  ['queued', 'deliver', 'in_progress'],
  ['queued', 'cancel', 'cancelled'],
  ['queued', 'time_out', 'timed_out'],
  ['in_progress', 'complete', 'completed'],
  ['in_progress', 'fail', 'failed'],
  ['in_progress', 'time_out', 'timed_out'],
  ['completed', 'undo_complete', 'undone'],
];

describe('action lifecycle', () => {
  it.each(ALLOWED)('%s --%s--> %s', (from, event, to) => {
    expect(nextStatus(from, event)).toBe(to);
  });

  const forbidden = ACTION_STATUSES.flatMap((from) =>
    ACTION_EVENTS.filter((event) => !ALLOWED.some(([f, e]) => f === from && e === event)).map((event) => [from, event] as const),
  );

  it('covers every (status, event) pair as allowed or forbidden', () => {
    expect(ALLOWED.length + forbidden.length).toBe(ACTION_STATUSES.length * ACTION_EVENTS.length);
  });

  it.each(forbidden)('%s --%s--> is forbidden', (from, event) => {
    expect(nextStatus(from, event)).toBeNull();
  });

  it.each([
    ['failed', true], ['rejected', true], ['expired', true], ['cancelled', true], ['timed_out', true], ['undone', true],
    ['pending_approval', false], ['queued', false], ['in_progress', false], ['completed', false],
  ] as const)('%s is terminal: %s', (status, terminal) => {
    expect(isTerminal(status)).toBe(terminal);
  });

  // An expiry is the system's rejection (DESIGN.md §2): a filter on rejected finds both; every other status only itself.
  it.each(ACTION_STATUSES.map((status) => [status, status === 'rejected' ? ['rejected', 'expired'] : [status]] as const))('a filter on %s matches %j', (status, matched) => {
    expect(statusesCountedAs(status)).toEqual(matched);
  });
});
