import type { Store } from '../../db/store.ts';
import type { Clock } from '../../infra.ts';
import { createJobsRepository } from './jobs.repository.ts';

export interface JobDefinition {
  name: string;
  intervalMs: number;
  run(): Promise<unknown>;
}

export interface JobRunner {
  /** One pass: runs every due job this process manages to claim. */
  tick(): Promise<string[]>;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Durable periodic jobs in the `jobs` table. A process claims a due job with
 * a compare-and-set lease, so across any number of processes on one database
 * a job runs in one place at a time; a crashed holder's lease runs out and
 * another process takes the job over. The schedule lives in the database and
 * survives restarts.
 */
export function createJobRunner(deps: { store: Store; clock: Clock; owner: string; jobs: JobDefinition[]; pollMs: number; leaseMs?: number; onError?: (job: string, error: unknown) => void }): JobRunner {
  const { store, clock, owner, jobs, pollMs } = deps;
  const leaseMs = deps.leaseMs ?? 5 * 60_000;
  const repo = createJobsRepository();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> = Promise.resolve();
  let ensured = false;

  async function ensureRows(): Promise<void> {
    if (ensured) return;
    for (const job of jobs) await repo.ensure(store.db, job.name, clock.now());
    ensured = true;
  }

  const claim = (job: JobDefinition): Promise<boolean> => repo.claim(store.db, job.name, owner, clock.now(), leaseMs);

  async function release(job: JobDefinition, error: unknown): Promise<void> {
    const now = clock.now();
    await repo.release(store.db, job.name, owner, { at: now, next: now + job.intervalMs, error: error === null ? null : String(error) });
  }

  async function tick(): Promise<string[]> {
    await ensureRows();
    const ran: string[] = [];
    for (const job of jobs) {
      if (!(await claim(job))) continue;
      let failure: unknown = null;
      try {
        await job.run();
      } catch (error) {
        failure = error;
        deps.onError?.(job.name, error);
      }
      await release(job, failure);
      ran.push(job.name);
    }
    return ran;
  }

  return {
    tick,
    start() {
      const loop = (): void => {
        running = tick().catch((error: unknown) => deps.onError?.('job runner', error)).finally(() => {
          if (timer !== null) timer = setTimeout(loop, pollMs);
        });
      };
      timer = setTimeout(loop, 0);
    },
    async stop() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}
