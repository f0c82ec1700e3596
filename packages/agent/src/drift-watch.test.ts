import { describe, expect, it } from 'vitest';
import { type DriftReport, watchDrift } from './drift-watch.ts';

/** A promise and the function that settles it, for steps the test releases one at a time. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('the drift watch', () => {
  it('never overlaps a check with an action that changes an effect: the undo waits for the check under way, and a check asked for meanwhile waits for the undo', async () => {
    const events: string[] = [];
    let inForce = true;
    let applied = true;
    const checking = gate();
    const reports: DriftReport[] = [];
    const watch = watchDrift({
      intervalMs: 60_000,
      effects: () => (inForce ? [{
        effect: 'isolation',
        actionIds: ['a'],
        async check() {
          events.push('check');
          await checking.opened;
          return applied ? null : 'gone';
        },
        async repair() {
          events.push('repair');
          applied = true;
        },
      }] : []),
      onDrift: (report) => reports.push(report),
      onError: (_effect, error) => { throw error; },
    });
    try {
      const firstCheck = watch.checkNow();
      const undo = watch.exclusive(async () => {
        events.push('undo');
        applied = false;
        inForce = false;
      });
      const secondCheck = watch.checkNow();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(events).toEqual(['check']);
      checking.open();
      await Promise.all([firstCheck, undo, secondCheck]);
      // The second check found nothing in force: the removed effect was not put back.
      expect(events).toEqual(['check', 'undo']);
      expect(reports).toEqual([]);
      expect(applied).toBe(false);
    } finally {
      watch.close();
    }
  });

  it('a change that fails does not stop the checks after it', async () => {
    let checks = 0;
    const watch = watchDrift({
      intervalMs: 60_000,
      effects: () => [{ effect: 'isolation', actionIds: ['a'], check: async () => { checks += 1; return null; }, repair: async () => {} }],
      onDrift: () => {},
      onError: (_effect, error) => { throw error; },
    });
    try {
      await expect(watch.exclusive(async () => { throw new Error('executor failed'); })).rejects.toThrow('executor failed');
      await watch.checkNow();
      expect(checks).toBe(1);
    } finally {
      watch.close();
    }
  });

  it('reports an effect it cannot put back once, again when what it finds changes, and a repair once it succeeds', async () => {
    let found: string | null = 'a different file at /etc/cron.d/x';
    let repairs = 0;
    let repairable = false;
    const reports: DriftReport[] = [];
    const watch = watchDrift({
      intervalMs: 60_000,
      effects: () => [{
        effect: 'removed_task',
        actionIds: ['a'],
        check: async () => found,
        async repair() {
          repairs += 1;
          if (!repairable) throw new Error('left alone');
          found = null;
        },
      }],
      onDrift: (report) => reports.push(report),
      onError: (_effect, error) => { throw error; },
    });
    try {
      for (let i = 0; i < 3; i++) await watch.checkNow();
      found = 'a different file at /etc/cron.d/y';
      await watch.checkNow();
      repairable = true;
      await watch.checkNow();
      await watch.checkNow();
      expect(repairs).toBe(5);
      expect(reports.map(({ found: what, repaired, error }) => ({ what, repaired, error }))).toEqual([
        { what: 'a different file at /etc/cron.d/x', repaired: false, error: 'left alone' },
        { what: 'a different file at /etc/cron.d/y', repaired: false, error: 'left alone' },
        { what: 'a different file at /etc/cron.d/y', repaired: true, error: undefined },
      ]);
    } finally {
      watch.close();
    }
  });
});

describe('the drift watch, one action at a time', () => {
  it('reports a drift on the action whose effect drifted and on no other', async () => {
    const lifted = new Set(['b']);
    const reports: DriftReport[] = [];
    const watch = watchDrift({
      intervalMs: 60_000,
      effects: () => ['a', 'b', 'c'].map((id) => ({
        effect: 'quarantined_file' as const,
        actionIds: [id],
        check: async () => (lifted.has(id) ? `/tmp/${id} is back` : null),
        repair: async () => void lifted.delete(id),
      })),
      onDrift: (report) => reports.push(report),
      onError: (_effect, error) => { throw error; },
    });
    try {
      await watch.checkNow();
      expect(reports.map(({ actionIds, found, repaired }) => ({ actionIds, found, repaired }))).toEqual([{ actionIds: ['b'], found: '/tmp/b is back', repaired: true }]);
    } finally {
      watch.close();
    }
  });
});
