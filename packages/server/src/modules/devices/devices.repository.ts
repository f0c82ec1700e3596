import type { DeviceGroupsTable, DeviceStateTable, DevicesTable } from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';

/** A device with its active agent's facts, if it has one, and its offboarding: asked of that agent, or the last one done. */
export interface DeviceRow extends DevicesTable {
  agent_facts: string | null;
  agent_enrolled_at: number | null;
  agent_state_version: number | null;
  agent_state_error: string | null;
  agent_state_failures: string | null;
  offboard_requested_at: number | null;
  offboard_release_effects: number | null;
  offboarded_at: number | null;
  offboarded_report: string | null;
}

function withAgent(db: Db) {
  return db.selectFrom('devices')
    .leftJoin('agents', (join) => join.onRef('agents.device_id', '=', 'devices.id').on('agents.revoked_at', 'is', null))
    .selectAll('devices')
    .select(['agents.facts as agent_facts', 'agents.enrolled_at as agent_enrolled_at', 'agents.offboard_requested_at', 'agents.offboard_release_effects'])
    .select(['agents.state_version as agent_state_version', 'agents.state_error as agent_state_error', 'agents.state_failures as agent_state_failures'])
    .select((eb) => {
      const lastOffboarded = () => eb.selectFrom('agents as done').whereRef('done.device_id', '=', 'devices.id').where('done.offboard_report', 'is not', null)
        .orderBy('done.revoked_at', 'desc').limit(1);
      return [lastOffboarded().select('done.revoked_at').as('offboarded_at'), lastOffboarded().select('done.offboard_report').as('offboarded_report')];
    });
}

export function createDevicesRepository() {
  return {
    async insertDevice(db: Db, row: DevicesTable): Promise<void> {
      await db.insertInto('devices').values(row).execute();
    },
    async findDevice(db: Db, id: string): Promise<DeviceRow | undefined> {
      return withAgent(db).where('devices.id', '=', id).executeTakeFirst();
    },
    async listDevices(db: Db, groupIds: readonly string[] | null): Promise<DeviceRow[]> {
      return withAgent(db).where(groupScope('devices.group_id', groupIds)).orderBy('devices.name').limit(10_000).execute();
    },
    /** Records what an action put in force on its device (one isolation, one restriction, one containment per user): the latest action holds it. */
    async holdState(db: Db, state: DeviceStateTable): Promise<void> {
      await db.insertInto('device_state').values(state)
        .onConflict((oc) => oc.columns(['device_id', 'kind', 'entity']).doUpdateSet({ action_id: state.action_id })).execute();
    },
    /** Forgets what an action put in force, once it is undone. */
    async releaseState(db: Db, actionId: string): Promise<void> {
      await db.deleteFrom('device_state').where('action_id', '=', actionId).execute();
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
