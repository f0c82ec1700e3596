import type { Db } from '../../db/store.ts';
import type { InvestigationsCore, InvestigationsServiceDeps } from './investigations.core.ts';
import { type StepName, waitingClosed, withProblem } from './investigation-state.ts';
import { createSteps } from './investigation-steps.ts';

/** How long one step may hold an investigation before another server may take it over. */
const LEASE_MS = 60_000;
/** How many times a step that cannot run is tried in a row, and how long it waits before each retry. */
const STEP_ATTEMPTS = 3;
const STEP_RETRY_MS = 5_000;
/** How often a waiting investigation looks at its actions again. */
const WAIT_POLL_MS = 1000;
/** How many due investigations are read at once, and how many times over they are read in one run. */
const DUE_BATCH = 50;
const DUE_ROUNDS = 50;

/**
 * The steps that may be left behind when they keep failing, and the step
 * the investigation goes on with: without evidence it judges from the
 * alerts; without following the files elsewhere it remediates here. The
 * others are the investigation itself: when they cannot run it has failed.
 */
const STEP_FALLBACK: Partial<Record<StepName, StepName>> = { evidence: 'verdicts', expand: 'remediate', expand_decided: 'remediate', evidence_elsewhere: 'remediate' };

/**
 * Runs the investigations' due steps. Each step runs in one transaction
 * together with the record that it ran, by the one server process that
 * holds the investigation's lease: a restart resumes at the step that had
 * not committed, and no step runs twice.
 */
export function createInvestigationRunner(deps: InvestigationsServiceDeps, core: InvestigationsCore) {
  const { store, repo, clock, owner } = deps;
  const { log } = core;
  const steps = createSteps(deps, core);

  /** Runs the next step of one investigation, if this process can take its lease. */
  async function runStep(id: string): Promise<boolean> {
    const now = clock.now();
    if (!(await repo.claim(store.db, id, owner, now, now + LEASE_MS))) return false;
    try {
      await store.transaction(async (trx) => {
        const inv = await repo.getById(trx, id);
        if (inv.locked_by !== owner || inv.step === 'done') return;
        const started = clock.now();
        const outcome = await steps[inv.step as StepName](trx, inv);
        if (outcome.result !== null) await log(trx, inv.id, inv.step, started, outcome.result);
        const next = outcome.next;
        await repo.updateHeld(trx, id, owner, {
          ...outcome.patch, step: next, step_attempts: 0, updated_at: clock.now(), locked_by: null, locked_until: null,
          // Staying on a step (waiting for actions or evidence) means looking again a little later.
          run_after: next === inv.step ? clock.now() + WAIT_POLL_MS : clock.now(),
        });
      });
    } catch (error) {
      await store.transaction((trx) => stepFailed(trx, id, now, (error as Error).message));
    }
    return true;
  }

  /**
   * A step that could not run (its transaction rolled back) is kept as a
   * problem on the summary and tried again a little later, STEP_ATTEMPTS
   * times in a row; then the investigation goes on without it where it can
   * (STEP_FALLBACK), and has failed where it cannot.
   */
  async function stepFailed(trx: Db, id: string, startedAt: number, message: string): Promise<void> {
    const inv = await repo.getById(trx, id);
    // Only the holder of the lease writes: after a lease ran out, another server runs the step.
    if (inv.step === 'done' || inv.locked_by !== owner) return;
    const step = inv.step as StepName;
    const now = clock.now();
    const attempt = inv.step_attempts + 1;
    const problems = withProblem(inv, step, now, `could not run: ${message}`);
    const release = { locked_by: null, locked_until: null, updated_at: now, problems };
    if (attempt < STEP_ATTEMPTS) {
      await log(trx, id, step, startedAt, `could not run (attempt ${attempt} of ${STEP_ATTEMPTS}), trying again: ${message}`);
      await repo.update(trx, id, { ...release, step_attempts: attempt, run_after: now + attempt * STEP_RETRY_MS });
      return;
    }
    const fallback = STEP_FALLBACK[step];
    if (fallback) {
      await log(trx, id, step, startedAt, `could not run ${attempt} times, going on without it: ${message}`);
      await repo.update(trx, id, { ...release, step: fallback, step_attempts: 0, run_after: now });
      return;
    }
    await log(trx, id, 'error', startedAt, `failed: ${message}`);
    await repo.update(trx, id, {
      ...release, status: 'failed', step: 'done', failed_step: step, ended_at: now, step_attempts: attempt, conclusion: `Failed: the ${step} step could not run ${attempt} times: ${message}`.slice(0, 2000),
      ...waitingClosed(inv, now),
    });
  }

  return {
    /** Runs every due step this process can take; returns how many steps ran. */
    async runDue(): Promise<number> {
      let ran = 0;
      for (let round = 0; round < DUE_ROUNDS; round++) {
        let progressed = 0;
        for (const id of await repo.due(store.db, clock.now(), DUE_BATCH)) if (await runStep(id)) progressed++;
        ran += progressed;
        if (progressed === 0) break;
      }
      return ran;
    },
  };
}
