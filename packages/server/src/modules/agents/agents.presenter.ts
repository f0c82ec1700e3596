import type { EnrolmentToken } from '@quell/contracts';
import type { EnrolmentTokensTable } from '../../db/schema.ts';

/** An enrolment token as clients see it: never its secret, which only its creator saw, once. */
export function presentEnrolmentToken(row: EnrolmentTokensTable): EnrolmentToken {
  return {
    id: row.id,
    name: row.name,
    usesLeft: row.uses_left,
    expiresAt: new Date(row.expires_at).toISOString(),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
  };
}
