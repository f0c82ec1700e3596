import type { UsersTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';

export function createUsersRepository() {
  return {
    async insert(db: Db, row: UsersTable): Promise<void> {
      await db.insertInto('users').values(row).execute();
    },
    async findById(db: Db, id: string): Promise<UsersTable | undefined> {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The user and the device groups they are scoped to, in one query: every authenticated request reads them. */
    async findWithGroups(db: Db, id: string): Promise<{ user: UsersTable; groupIds: string[] } | undefined> {
      const rows = await db.selectFrom('users').leftJoin('user_device_groups', 'user_device_groups.user_id', 'users.id')
        .selectAll('users').select('user_device_groups.group_id').where('users.id', '=', id).orderBy('user_device_groups.group_id').execute();
      if (rows.length === 0) return undefined;
      const { group_id: first, ...user } = rows[0]!;
      return { user, groupIds: first === null ? [] : rows.map((row) => row.group_id!) };
    },
    async findByUsername(db: Db, username: string): Promise<UsersTable | undefined> {
      return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
    },
    async list(db: Db): Promise<UsersTable[]> {
      return db.selectFrom('users').selectAll().orderBy('username').execute();
    },
    async count(db: Db): Promise<number> {
      const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async update(db: Db, id: string, patch: Partial<Pick<UsersTable, 'role' | 'disabled' | 'password_hash'>>): Promise<void> {
      await db.updateTable('users').set(patch).where('id', '=', id).execute();
    },
    async groupIds(db: Db, userId: string): Promise<string[]> {
      const rows = await db.selectFrom('user_device_groups').select('group_id').where('user_id', '=', userId).orderBy('group_id').execute();
      return rows.map((r) => r.group_id);
    },
    async setGroupIds(db: Db, userId: string, groupIds: readonly string[]): Promise<void> {
      await db.deleteFrom('user_device_groups').where('user_id', '=', userId).execute();
      if (groupIds.length > 0) await db.insertInto('user_device_groups').values(groupIds.map((group_id) => ({ user_id: userId, group_id }))).execute();
    },
    async countGroups(db: Db, groupIds: readonly string[]): Promise<number> {
      if (groupIds.length === 0) return 0;
      const row = await db.selectFrom('device_groups').select((eb) => eb.fn.countAll<number>().as('n')).where('id', 'in', groupIds).executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async deleteSessions(db: Db, userId: string): Promise<void> {
      await db.deleteFrom('sessions').where('user_id', '=', userId).execute();
    },
  };
}
export type UsersRepository = ReturnType<typeof createUsersRepository>;
