import { type ExpressionBuilder, sql } from 'kysely';
import type { AgentsTable, Database, DevicesTable, EnrolmentTokensTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';

/** A device as an agent's reports need it: its name for alerts, its group for indicators and state. */
export type AgentDevice = Pick<DevicesTable, 'id' | 'name' | 'group_id'>;

/** The device's agent that is enrolled and not revoked: the only one that may speak for the device, or be told anything. */
const activeAgentOf = (deviceId: string) => (eb: ExpressionBuilder<Database, 'agents'>) => eb.and([eb('device_id', '=', deviceId), eb('revoked_at', 'is', null)]);

/**
 * Enrolment tokens, enrolled agents, and what enrolling and reporting agents
 * write of their devices.
 */
export function createAgentsRepository() {
  const devices = (db: Db) => db.selectFrom('devices').select(['id', 'name', 'group_id']);

  return {
    async insertEnrolmentToken(db: Db, row: EnrolmentTokensTable): Promise<void> {
      await db.insertInto('enrolment_tokens').values(row).execute();
    },
    findEnrolmentToken(db: Db, id: string): Promise<EnrolmentTokensTable | undefined> {
      return db.selectFrom('enrolment_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The newest first. */
    listEnrolmentTokens(db: Db, limit: number): Promise<EnrolmentTokensTable[]> {
      return db.selectFrom('enrolment_tokens').selectAll().orderBy('created_at', 'desc').limit(limit).execute();
    },
    async revokeEnrolmentToken(db: Db, id: string, at: number): Promise<void> {
      await db.updateTable('enrolment_tokens').set({ revoked_at: at }).where('id', '=', id).execute();
    },
    /**
     * Spends one use of the token; false when none was left. Decremented in
     * the database, not compare-and-set on a count read before: agents
     * enrolling at once on PostgreSQL all read the same count, and all but one
     * would be refused while uses remain. Each UPDATE waits for the row lock
     * and rechecks `uses_left > 0`, so the token is never spent beyond its uses.
     */
    async spendEnrolmentToken(db: Db, id: string): Promise<boolean> {
      const spent = await db.updateTable('enrolment_tokens').set((eb) => ({ uses_left: eb('uses_left', '-', 1) })).where('id', '=', id).where('uses_left', '>', 0).executeTakeFirst();
      return Number(spent.numUpdatedRows) === 1;
    },

    findActive(db: Db, deviceId: string): Promise<AgentsTable | undefined> {
      return db.selectFrom('agents').selectAll().where(activeAgentOf(deviceId)).executeTakeFirst();
    },
    async insert(db: Db, row: AgentsTable): Promise<void> {
      await db.insertInto('agents').values(row).execute();
    },
    /** Inserts the agent unless its device has one already; false when another agent holds the device. */
    async insertUnlessTaken(db: Db, row: AgentsTable): Promise<boolean> {
      return await db.insertInto('agents').values(row).onConflict((oc) => oc.column('device_id').doNothing()).returning('device_id').executeTakeFirst() !== undefined;
    },
    /** Moves the active agent's last counted indicator hits report to `seq`; false when `seq` is not past it (counted already) or there is no active agent. */
    async advanceHitsSeq(db: Db, deviceId: string, seq: number): Promise<boolean> {
      const fresh = await db.updateTable('agents').set({ hits_seq: seq }).where(activeAgentOf(deviceId))
        .where((eb) => eb.or([eb('hits_seq', 'is', null), eb('hits_seq', '<', seq)])).executeTakeFirst();
      return Number(fresh.numUpdatedRows) === 1;
    },
    /** Marks the active agent to be told to offboard; false when the device has no active agent. */
    async requestOffboard(db: Db, deviceId: string, at: number, releaseEffects: boolean): Promise<boolean> {
      const result = await db.updateTable('agents').set({ offboard_requested_at: at, offboard_release_effects: releaseEffects ? 1 : 0 })
        .where(activeAgentOf(deviceId)).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    /** Revokes the device's agent, keeping what it reported of its offboarding (JSON). */
    async revoke(db: Db, deviceId: string, at: number, offboardReport: string): Promise<void> {
      await db.updateTable('agents').set({ revoked_at: at, offboard_report: offboardReport }).where('device_id', '=', deviceId).execute();
    },

    findDevice(db: Db, id: string): Promise<AgentDevice | undefined> {
      return devices(db).where('id', '=', id).executeTakeFirst();
    },
    /** As findDevice, for a device that must be there (an enrolled agent's): throws when it is not. */
    getDevice(db: Db, id: string): Promise<AgentDevice> {
      return devices(db).where('id', '=', id).executeTakeFirstOrThrow();
    },
    /** A device Quell learnt of from another engine's alerts and no agent ever enrolled on, named `hostname` in any case. */
    async findDiscovered(db: Db, hostname: string): Promise<string | undefined> {
      return (await db.selectFrom('devices').leftJoin('agents', 'agents.device_id', 'devices.id').select('devices.id')
        .where('devices.discovered_from', 'is not', null).where('agents.device_id', 'is', null)
        .where(sql<string>`lower(devices.name)`, '=', hostname.toLowerCase()).executeTakeFirst())?.id;
    },
    async insertDevice(db: Db, row: DevicesTable): Promise<void> {
      await db.insertInto('devices').values(row).execute();
    },
    async updateDevice(db: Db, id: string, patch: Partial<Pick<DevicesTable, 'platform' | 'last_seen_at'>>): Promise<void> {
      await db.updateTable('devices').set(patch).where('id', '=', id).execute();
    },
    /** Records that these devices were heard from at `at`, 500 at a time. */
    async touchDevices(db: Db, ids: readonly string[], at: number): Promise<void> {
      for (let i = 0; i < ids.length; i += 500) {
        await db.updateTable('devices').set({ last_seen_at: at }).where('id', 'in', ids.slice(i, i + 500)).execute();
      }
    },
  };
}
export type AgentsRepository = ReturnType<typeof createAgentsRepository>;
