import type { SessionsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';

/** Sign-in sessions, each stored by the SHA-256 of its id. */
export function createSessionsRepository() {
  return {
    async insert(db: Db, row: SessionsTable): Promise<void> {
      await db.insertInto('sessions').values(row).execute();
    },
    findByHash(db: Db, idHash: string): Promise<SessionsTable | undefined> {
      return db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    },
    async delete(db: Db, idHash: string): Promise<void> {
      await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
    },
    async deleteExpired(db: Db, now: number): Promise<void> {
      await db.deleteFrom('sessions').where('expires_at', '<', now).execute();
    },
  };
}
export type SessionsRepository = ReturnType<typeof createSessionsRepository>;
