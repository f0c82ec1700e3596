import { FLEET_ACTION_TYPES } from '@quell/contracts';
import { type ExpressionBuilder, sql } from 'kysely';
import type { ActionsTable, Database, DeviceGroupsTable, DeviceStateTable, DevicesTable } from '../../db/schema.ts';
import { type Db, groupScope } from '../../db/store.ts';
import { containmentInForce, pendingApproval } from '../../db/predicates.ts';

/** A device that may stand for a host an alert names, with whether an agent holds it now. */
export interface HostCandidate { id: string; name: string; managed: boolean; last_seen_at: number | null }

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
    async updateGroup(db: Db, id: string, patch: Partial<Omit<DeviceGroupsTable, 'id' | 'created_at'>>): Promise<void> {
      await db.updateTable('device_groups').set(patch).where('id', '=', id).execute();
    },
    /** Puts a device in a group; `pinned`: by hand, and the groups' rules leave it there. */
    async setGroup(db: Db, id: string, groupId: string | null, pinned: boolean): Promise<void> {
      await db.updateTable('devices').set({ group_id: groupId, group_pinned: pinned ? 1 : 0 }).where('id', '=', id).execute();
    },
    /** The groups with a rule, the highest-ranked first. */
    ruledGroups(db: Db): Promise<Array<Pick<DeviceGroupsTable, 'id' | 'rule'>>> {
      return db.selectFrom('device_groups').select(['id', 'rule']).where('rule', 'is not', null).orderBy('rank', 'desc').orderBy('name').execute();
    },
    /** The devices no administrator placed by hand: all, or those of these ids. */
    unpinned(db: Db, ids?: readonly string[]): Promise<Array<Pick<DevicesTable, 'id' | 'name' | 'platform' | 'group_id'>>> {
      let q = db.selectFrom('devices').select(['id', 'name', 'platform', 'group_id']).where('group_pinned', '=', 0);
      if (ids) q = q.where('id', 'in', ids);
      return q.execute();
    },

    /** The addresses alerts reported for these devices, the latest first. */
    addresses(db: Db, ids: readonly string[]): Promise<Array<{ device_id: string; address: string }>> {
      return db.selectFrom('device_addresses').select(['device_id', 'address']).where('device_id', 'in', ids).orderBy('seen_at', 'desc').orderBy('address').execute();
    },
    /** How many actions on these devices wait for approval, and how many for delivery to their agent (fleet-wide ones go by the desired state). */
    async waitingActions(db: Db, ids: readonly string[]): Promise<Array<{ device_id: string; status: string; count: number }>> {
      const count = (eb: ExpressionBuilder<Database, 'actions'>) => eb.fn.countAll<number>().as('count');
      // Two counts, each read from an index of its own: one query with OR between them reads every row.
      const pending = await db.selectFrom('actions').select((eb) => ['device_id', sql.lit('pending_approval').as('status'), count(eb)])
        .where('device_id', 'in', ids).where(pendingApproval).groupBy('device_id').execute();
      const queued = await db.selectFrom('actions').select((eb) => ['device_id', sql.lit('queued').as('status'), count(eb)])
        .where('device_id', 'in', ids).where('status', '=', 'queued').where('type', 'not in', FLEET_ACTION_TYPES).groupBy('device_id').execute();
      return [...pending, ...queued];
    },
    /** What is in force on these devices, by entity, and whether the undo of the action that put it there is under way. */
    states(db: Db, ids: readonly string[]): Promise<Array<DeviceStateTable & { releasing: boolean }>> {
      return db.selectFrom('device_state').innerJoin('actions', 'actions.id', 'device_state.action_id').selectAll('device_state')
        .select((eb) => eb('actions.undone_by', 'is not', null).as('releasing'))
        .where('device_state.device_id', 'in', ids).orderBy('device_state.entity').execute()
        // SQLite answers a comparison with 0 or 1.
        .then((rows) => rows.map((row) => ({ ...row, releasing: Boolean(row.releasing) })));
    },
    /** The addresses of these devices under containment (from queued on, until their release is asked for), each with its latest action. */
    containment(db: Db, ids: readonly string[]): Promise<Array<Pick<ActionsTable, 'device_id' | 'entity_name' | 'id'>>> {
      return db.selectFrom('actions').select(['device_id', 'entity_name', 'id'])
        .where('device_id', 'in', ids).where(containmentInForce)
        .orderBy('entity_name').orderBy('requested_at', 'desc').orderBy('id', 'desc').execute();
    },

    /** Devices of these ids, with whether an agent holds them now. */
    async hostCandidates(db: Db, ids: readonly string[]): Promise<HostCandidate[]> {
      if (ids.length === 0) return [];
      const rows = await db.selectFrom('devices')
        .leftJoin('agents', (join) => join.onRef('agents.device_id', '=', 'devices.id').on('agents.revoked_at', 'is', null))
        .select(['devices.id', 'devices.name', 'devices.last_seen_at', 'agents.device_id as agent_device'])
        .where('devices.id', 'in', [...new Set(ids)]).execute();
      return rows.map((r) => ({ id: r.id, name: r.name, last_seen_at: r.last_seen_at, managed: r.agent_device !== null }));
    },
    /** The devices a detection engine's own ids for a host were last seen on, the latest first. */
    async bySourceIds(db: Db, source: string, sourceIds: readonly string[]): Promise<string[]> {
      return (await db.selectFrom('device_source_ids').select('device_id').where('source', '=', source).where('source_id', 'in', sourceIds)
        .orderBy('updated_at', 'desc').execute()).map((r) => r.device_id);
    },
    /** The devices named so, case aside (`names` in lower case). */
    async byLowerName(db: Db, names: readonly string[]): Promise<string[]> {
      return (await db.selectFrom('devices').select('id').where(sql<string>`lower(name)`, 'in', names).execute()).map((r) => r.id);
    },
    /** The device any of these addresses was last seen on by an alert. */
    async lastSeenAt(db: Db, addresses: readonly string[]): Promise<string[]> {
      return (await db.selectFrom('device_addresses').select('device_id').where('address', 'in', addresses).orderBy('seen_at', 'desc').limit(1).execute()).map((r) => r.device_id);
    },
    /** The devices whose agent reports one of these addresses in its facts (JSON; addresses hold only [0-9a-f.:], nothing to escape). */
    async reportingAddress(db: Db, addresses: readonly string[]): Promise<string[]> {
      return (await db.selectFrom('agents').select('device_id').where('revoked_at', 'is', null)
        .where((eb) => eb.or(addresses.map((a) => eb('facts', 'like', `%"${a}"%`)))).execute()).map((r) => r.device_id);
    },
    async recordSourceId(db: Db, source: string, sourceId: string, deviceId: string, now: number): Promise<void> {
      await db.insertInto('device_source_ids').values({ source, source_id: sourceId, device_id: deviceId, updated_at: now })
        .onConflict((oc) => oc.columns(['source', 'source_id']).doUpdateSet({ device_id: deviceId, updated_at: now })).execute();
    },
    async recordAddress(db: Db, deviceId: string, address: string, now: number): Promise<void> {
      await db.insertInto('device_addresses').values({ device_id: deviceId, address, seen_at: now })
        .onConflict((oc) => oc.columns(['device_id', 'address']).doUpdateSet({ seen_at: now })).execute();
    },
    /**
     * Inserts a device discovered from a detection engine, unless one of that
     * name already was (a unique index decides: on PostgreSQL after waiting
     * for a concurrent insert to commit). Returns whether it inserted.
     */
    async insertDiscovered(db: Db, row: DevicesTable): Promise<boolean> {
      return (await db.insertInto('devices').values(row).onConflict((oc) => oc.doNothing()).returning('id').executeTakeFirst()) !== undefined;
    },
    /** The discovered device of this name, case aside. */
    discoveredNamed(db: Db, name: string): Promise<Pick<DevicesTable, 'id' | 'name'>> {
      return db.selectFrom('devices').select(['id', 'name']).where('discovered_from', 'is not', null).where(sql<string>`lower(name)`, '=', name.toLowerCase()).executeTakeFirstOrThrow();
    },
  };
}
export type DevicesRepository = ReturnType<typeof createDevicesRepository>;
