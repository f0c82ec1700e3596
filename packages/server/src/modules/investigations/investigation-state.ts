import { INVESTIGATION_PROBLEMS_MAX } from '@quell/contracts';
import type { InvestigationsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';

/**
 * What an investigation's row holds besides plain columns: the step it is
 * at, the large expansion it may wait on and the problems it met (both kept
 * as JSON), and the time it spent waiting for analysts.
 */

export type StepName = 'collect' | 'evidence' | 'verdicts' | 'expand' | 'expand_decided' | 'evidence_elsewhere' | 'remediate' | 'wait';
export const FIRST_STEP: StepName = 'collect';

/** What a step did: its line in the log (none for an unchanged wait), the next step, and the row's new fields. */
export interface StepOutcome { result: string | null; next: StepName | 'done'; patch?: Partial<InvestigationsTable> }
/** One step: it runs in the transaction that records it, on the row as the step found it. */
export type Step = (trx: Db, inv: InvestigationsTable) => Promise<StepOutcome>;
export type Steps = Record<StepName, Step>;

/** A large expansion waiting for an analyst: the devices it would add, and the decision once made. */
export interface Expansion {
  found: Array<{ deviceId: string; deviceName: string; groupId: string | null; path: string | null; value: string; sha1?: string | null; md5?: string | null; verdict: string; reason: string }>;
  askedAt: number;
  decision: { approved: boolean; by: string } | null;
}
export const expansionOf = (row: Pick<InvestigationsTable, 'pending_expansion'>): Expansion | null => JSON.parse(row.pending_expansion ?? 'null') as Expansion | null;

export interface StoredProblem { step: string; at: number; reason: string }
export const problemsOf = (row: Pick<InvestigationsTable, 'problems'>): StoredProblem[] => JSON.parse(row.problems ?? '[]') as StoredProblem[];

/** The investigation's problems with one more, keeping the newest few; reasons are cut to a readable length. */
export function withProblem(row: Pick<InvestigationsTable, 'problems'>, step: string, at: number, reason: string): string {
  return JSON.stringify([...problemsOf(row), { step, at, reason: reason.slice(0, 1000) }].slice(-INVESTIGATION_PROBLEMS_MAX));
}

/** The row's time waiting for analysts, with the wait under way (if any) closed at `at`. */
export const waitedUntil = (row: Pick<InvestigationsTable, 'waiting_ms' | 'waiting_since'>, at: number): number =>
  row.waiting_ms + (row.waiting_since === null ? 0 : at - row.waiting_since);

/** The fields that end the wait under way (if any) at `now`. */
export const waitingClosed = (row: Pick<InvestigationsTable, 'waiting_ms' | 'waiting_since'>, now: number) => ({ waiting_since: null, waiting_ms: waitedUntil(row, now) });
