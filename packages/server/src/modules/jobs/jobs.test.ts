import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, testClock, useTestApp } from '../../test/helper.ts';
import { createJobRunner } from './jobs.ts';

describe(`durable jobs (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('keep their schedule across restarts and take over a crashed holder\'s job once its lease runs out', async () => {
    const { store } = ctx();
    const clock = testClock();
    let runs = 0;
    const job = { name: 'count', intervalMs: 60_000, run: async () => void runs++ };
    const first = createJobRunner({ store, clock, owner: 'first', jobs: [job], pollMs: 1000, leaseMs: 30_000 });
    expect(await first.tick()).toEqual(['count']);
    expect(await first.tick()).toEqual([]);

    // A restarted process sees the schedule in the database and waits for it.
    const restarted = createJobRunner({ store, clock, owner: 'restarted', jobs: [job], pollMs: 1000, leaseMs: 30_000 });
    expect(await restarted.tick()).toEqual([]);
    clock.advance(60_001);

    // A process that claimed the job and died leaves a lease behind...
    await store.db.updateTable('jobs').set({ locked_by: 'crashed', locked_until: clock.now() + 30_000 }).where('name', '=', 'count').execute();
    expect(await restarted.tick()).toEqual([]);
    // ...which another process takes over once it has run out.
    clock.advance(30_001);
    expect(await restarted.tick()).toEqual(['count']);
    expect(runs).toBe(2);
  });

  it('record a failing run and try again at the next interval', async () => {
    const { store } = ctx();
    const clock = testClock();
    const errors: string[] = [];
    const runner = createJobRunner({
      store, clock, owner: 'p', pollMs: 1000,
      jobs: [{ name: 'flaky', intervalMs: 1000, run: async () => { throw new Error('database hiccup'); } }],
      onError: (name) => errors.push(name),
    });
    expect(await runner.tick()).toEqual(['flaky']);
    const row = await store.db.selectFrom('jobs').selectAll().where('name', '=', 'flaky').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ locked_by: null, last_error: 'Error: database hiccup', run_at: clock.now() + 1000 });
    expect(errors).toEqual(['flaky']);
  });
});
