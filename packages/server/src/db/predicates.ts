import { IN_FORCE_STATUSES } from '@quell/contracts';
import { sql } from 'kysely';

/**
 * Actions waiting for approval, read through the partial index `actions_pending_by_type`
 * (migration 0026). Written with a literal rather than a bound value: SQLite's planner matches a
 * partial index against constants only.
 */
export const pendingApproval = sql<boolean>`actions.status = ${sql.lit('pending_approval')}`;

/**
 * Containment actions in force: from queued on, until their release is asked for. Read through the
 * partial index `actions_containment_in_force` (migration 0024), whose terms are written here with
 * literals for the same reason.
 */
export const containmentInForce = sql<boolean>`actions.type = ${sql.lit('contain_device')} AND actions.undone_by IS NULL AND actions.status IN (${sql.join([...IN_FORCE_STATUSES])})`;
