import { IN_FORCE_STATUSES } from '@quell/contracts';
import { sql } from 'kysely';

/**
 * Containment actions in force: from queued on, until their release is asked for. Read through the
 * partial index `actions_containment_in_force` (migration 0024), whose terms are written here with
 * literals rather than bound values: SQLite's planner matches a partial index against constants only.
 */
export const containmentInForce = sql<boolean>`actions.type = ${sql.lit('contain_device')} AND actions.undone_by IS NULL AND actions.status IN (${sql.join([...IN_FORCE_STATUSES])})`;
