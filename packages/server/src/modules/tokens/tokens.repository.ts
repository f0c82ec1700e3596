import type { ApiTokensTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';

/** API tokens as stored: their secret only as a SHA-256 hash. */
export function createTokensRepository() {
  return {
    async insert(db: Db, row: ApiTokensTable): Promise<void> {
      await db.insertInto('api_tokens').values(row).execute();
    },
    findById(db: Db, id: string): Promise<ApiTokensTable | undefined> {
      return db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The newest first, at most `limit`. */
    list(db: Db, limit: number): Promise<ApiTokensTable[]> {
      return db.selectFrom('api_tokens').selectAll().orderBy('created_at', 'desc').limit(limit).execute();
    },
    async revoke(db: Db, id: string, at: number): Promise<void> {
      await db.updateTable('api_tokens').set({ revoked_at: at }).where('id', '=', id).execute();
    },
  };
}
export type TokensRepository = ReturnType<typeof createTokensRepository>;
