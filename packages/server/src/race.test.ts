import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from './test/helper.ts';

const run = promisify(execFile);
const WORKER = new URL('./test/race-worker.ts', import.meta.url).pathname;

/** Starts the worker in a separate Node process on the test's database. */
async function worker(location: object, args: string[]): Promise<Record<string, string>> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', WORKER, ...args], {
    env: { ...process.env, QUELL_TEST_LOCATION: JSON.stringify(location) },
    timeout: 60_000,
  });
  return JSON.parse(stdout) as Record<string, string>;
}

describe(`two server processes on one database (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('decide the same actions at once: exactly one decision wins each action, the other gets a conflict', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push(await ctx().createAction({ type: 'stop_service', entity: { name: `svc-${i}` } }));
    const startAt = String(Date.now() + 2500);
    const location = ctx().db.location;
    const [approvals, rejections] = await Promise.all([worker(location, ['approve', startAt, ...ids]), worker(location, ['reject', startAt, ...ids])]);

    for (const id of ids) {
      const winners = [approvals[id], rejections[id]].filter((o) => o === 'won');
      expect(winners, id).toHaveLength(1);
      const loser = approvals[id] === 'won' ? rejections[id] : approvals[id];
      expect(['action_not_pending', 'action_state_conflict']).toContain(loser);
      const { action, timeline } = await ctx().services.actions.get(ctx().users.security_reader.actor, id);
      expect(action.status).toBe(approvals[id] === 'won' ? 'queued' : 'rejected');
      expect(timeline.filter((e) => e.event === 'approve' || e.event === 'reject')).toHaveLength(1);
    }
    expect((await ctx().services.audit.verify()).ok).toBe(true);
  });

  it('run the expiry job at once: each overdue action expires exactly once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await ctx().createAction({ type: 'disable_driver', entity: { name: `mod${i}` } }));
    // The workers use the real clock; move these actions' deadlines into the past.
    await ctx().store.db.updateTable('actions').set({ expires_at: Date.now() - 1000 }).where('id', 'in', ids).execute();
    await ctx().store.db.deleteFrom('jobs').execute();
    const startAt = String(Date.now() + 2500);
    const location = ctx().db.location;
    const results = await Promise.all([worker(location, ['jobs', startAt]), worker(location, ['jobs', startAt]), worker(location, ['jobs', startAt])]);

    // The lease lets one process take the job; the others find it taken.
    expect(results.filter((r) => r.ran === 'expire_pending_actions')).toHaveLength(1);
    const events = await ctx().store.db.selectFrom('action_events').select(['action_id']).where('event', '=', 'expire').where('action_id', 'in', ids).execute();
    expect(events.map((e) => e.action_id).sort()).toEqual([...ids].sort());
    const job = await ctx().store.db.selectFrom('jobs').selectAll().where('name', '=', 'expire_pending_actions').executeTakeFirstOrThrow();
    expect(job).toMatchObject({ locked_by: null, last_error: null });
    expect(job.run_at).toBeGreaterThan(Date.now());
    expect((await ctx().services.audit.verify()).ok).toBe(true);
  });
});
