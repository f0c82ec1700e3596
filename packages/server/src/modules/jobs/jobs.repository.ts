import type { Db } from '../../db/store.ts';

/** The schedule and leases of periodic jobs: one row per job, shared by every process on the database. */
export function createJobsRepository() {
  return {
    /** Adds the job's row, due now, unless it is there already. */
    async ensure(db: Db, name: string, now: number): Promise<void> {
      await db.insertInto('jobs').values({ name, run_at: now, locked_by: null, locked_until: null, last_run_at: null, last_error: null })
        .onConflict((oc) => oc.column('name').doNothing()).execute();
    },
    /** Takes the job's lease when it is due and nobody holds an unexpired lease: true when this owner has it now. */
    async claim(db: Db, name: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
      const result = await db.updateTable('jobs').set({ locked_by: owner, locked_until: now + leaseMs })
        .where('name', '=', name).where('run_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    /** Gives the lease back (if this owner still holds it), with the next run and how this one ended. */
    async release(db: Db, name: string, owner: string, run: { at: number; next: number; error: string | null }): Promise<void> {
      await db.updateTable('jobs')
        .set({ locked_by: null, locked_until: null, run_at: run.next, last_run_at: run.at, last_error: run.error })
        .where('name', '=', name).where('locked_by', '=', owner).execute();
    },
  };
}
