import type { Permission, Token } from '@quell/contracts';
import type { ApiTokensTable } from '../../db/schema.ts';

/** A token as clients see it: never its secret or hash. */
export function presentToken(row: ApiTokensTable): Token {
  return {
    id: row.id,
    name: row.name,
    userId: row.user_id,
    scopes: JSON.parse(row.scopes) as Permission[],
    createdAt: new Date(row.created_at).toISOString(),
    expiresAt: new Date(row.expires_at).toISOString(),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
  };
}
