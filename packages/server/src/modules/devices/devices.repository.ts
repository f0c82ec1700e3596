import { sql } from 'kysely';
import type { DeviceGroupsTable, DevicesTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';

export function createDevicesRepository() {
  return {
    async insertDevice(db: Db, row: DevicesTable): Promise<void> {
      await db.insertInto('devices').values(row).execute();
    },
    async findDevice(db: Db, id: string): Promise<DevicesTable | undefined> {
      return db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async listDevices(db: Db, groupIds: readonly string[] | null): Promise<DevicesTable[]> {
      let query = db.selectFrom('devices').selectAll();
      if (groupIds !== null) query = groupIds.length === 0 ? query.where(sql<boolean>`1 = 0`) : query.where('group_id', 'in', groupIds);
      return query.orderBy('name').limit(10_000).execute();
    },
    async insertGroup(db: Db, row: DeviceGroupsTable): Promise<void> {
      await db.insertInto('device_groups').values(row).execute();
    },
    async findGroup(db: Db, id: string): Promise<DeviceGroupsTable | undefined> {
      return db.selectFrom('device_groups').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async findGroupByName(db: Db, name: string): Promise<DeviceGroupsTable | undefined> {
      return db.selectFrom('device_groups').selectAll().where('name', '=', name).executeTakeFirst();
    },
    async listGroups(db: Db): Promise<DeviceGroupsTable[]> {
      return db.selectFrom('device_groups').selectAll().orderBy('rank', 'desc').orderBy('name').execute();
    },
  };
}
export type DevicesRepository = ReturnType<typeof createDevicesRepository>;
