import { DELIVERABLE_STATUSES, ENFORCED_INDICATOR_TYPES, FLEET_ACTION_TYPES, type StateReportPayload } from '@quell/contracts';
import { type ExpressionBuilder, sql } from 'kysely';
import type { ActionsTable, AgentsTable, Database, IndicatorsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { containmentInForce } from '../../db/predicates.ts';
import { activeAt } from '../indicators/indicators.repository.ts';

/** The state of agents outside any device group; each group has its own row, `group:<id>`. */
const FLEET = 'fleet';
const rowName = (groupId: string | null): string => (groupId === null ? FLEET : `group:${groupId}`);

type AgentWhere = ExpressionBuilder<Database, 'agents' | 'devices'>;
/** An agent that applied a state of this version or later. */
const reached = (version: number) => (eb: AgentWhere) => eb('agents.state_version', '>=', version);
/** An agent that applied it, and reported that it could not enforce all of it, or this action in it. */
const failedHere = (version: number, actionId: string) => (eb: AgentWhere) => eb.and([
  reached(version)(eb),
  eb.or([eb('agents.state_error', 'is not', null), eb('agents.state_failures', 'like', `%"${actionId}"%`)]),
]);

/** The signed desired states, and what goes in them and what agents report of them. */
export function createDesiredStateRepository() {
  return {
    /** Takes the next version: the fleet row's lock comes first, so that on PostgreSQL a concurrent change waits and then reads the rows this one committed. */
    async nextVersion(db: Db, now: number): Promise<number> {
      const { version } = await db.updateTable('desired_state').set((eb) => ({ version: eb('version', '+', 1), updated_at: now }))
        .where('name', '=', FLEET).returning('version').executeTakeFirstOrThrow();
      return version;
    },
    /** Containment actions enforced from queued on, until their release is under way, oldest first. */
    containmentInForce(db: Db): Promise<Array<Pick<ActionsTable, 'id' | 'entity_name' | 'parameters'>>> {
      return db.selectFrom('actions').select(['id', 'entity_name', 'parameters'])
        .where(containmentInForce).orderBy('requested_at').orderBy('id').execute();
    },
    /** The active indicators of the types and actions agents enforce, by value. */
    enforcedIndicators(db: Db, now: number): Promise<Array<Pick<IndicatorsTable, 'type' | 'value' | 'action' | 'device_group_ids'>>> {
      return db.selectFrom('indicators').select(['type', 'value', 'action', 'device_group_ids'])
        .where('type', 'in', ENFORCED_INDICATOR_TYPES).where('action', 'in', ['block', 'block_and_remediate', 'allow', 'audit'])
        .where(activeAt(now)).orderBy('value').execute();
    },
    async groupIds(db: Db): Promise<string[]> {
      return (await db.selectFrom('device_groups').select('id').execute()).map((g) => g.id);
    },
    async save(db: Db, groupId: string | null, version: number, jws: string | null, now: number): Promise<void> {
      await db.insertInto('desired_state').values({ name: rowName(groupId), version, jws, updated_at: now })
        .onConflict((oc) => oc.column('name').doUpdateSet({ version, jws, updated_at: now })).execute();
    },
    /** The signed state for agents of this device group; a group made after the last state has no row yet, and nothing scoped to it: the fleet's state is its state. */
    async read(db: Db, groupId: string | null): Promise<{ version: number; jws: string | null } | undefined> {
      const rows = await db.selectFrom('desired_state').select(['name', 'version', 'jws']).where('name', 'in', [FLEET, rowName(groupId)]).execute();
      return rows.find((r) => r.name === rowName(groupId)) ?? rows.find((r) => r.name === FLEET);
    },
    /** When the fleet's state was last signed, or undefined before the first. */
    async signedAt(db: Db): Promise<number | undefined> {
      return (await db.selectFrom('desired_state').select('updated_at').where('name', '=', FLEET).executeTakeFirst())?.updated_at;
    },

    /** Over enrolled agents: how many applied a state of this version or later, how many of those failed this action, how many are behind, and of those how many online. */
    async enforcementCounts(db: Db, version: number, actionId: string, onlineSince: number): Promise<{ reached: number; failed: number; total: number; waitingOnline: number }> {
      const behind = (eb: AgentWhere) => eb.or([eb('agents.state_version', 'is', null), eb('agents.state_version', '<', version)]);
      const counts = await enrolled(db).select((eb) => [
        eb.fn.count<number>('agents.device_id').filterWhere(reached(version)).as('reached'),
        eb.fn.count<number>('agents.device_id').filterWhere(failedHere(version, actionId)).as('failed'),
        eb.fn.count<number>('agents.device_id').as('total'),
        eb.fn.count<number>('agents.device_id').filterWhere((w) => w.and([behind(w), w('devices.last_seen_at', '>=', onlineSince)])).as('waiting_online'),
      ]).executeTakeFirstOrThrow();
      return { reached: Number(counts.reached), failed: Number(counts.failed), total: Number(counts.total), waitingOnline: Number(counts.waiting_online) };
    },
    /** The enrolled agents that applied this version and failed this action, by device name (50 at most). */
    enforcementFailures(db: Db, version: number, actionId: string): Promise<Array<Pick<AgentsTable, 'device_id' | 'state_error' | 'state_failures'> & { name: string }>> {
      return enrolled(db).select(['agents.device_id', 'devices.name', 'agents.state_error', 'agents.state_failures'])
        .where(failedHere(version, actionId)).orderBy('devices.name').limit(50).execute();
    },

    /** Keeps each agent's last report, in one statement per batch; an older report never overwrites a newer one. */
    async saveReports(db: Db, reports: ReadonlyArray<[deviceId: string, report: StateReportPayload]>): Promise<void> {
      const rows = reports.map(([deviceId, report]) => sql`(${deviceId}, CAST(${report.version} AS BIGINT), ${report.error ?? null}, ${JSON.stringify(report.failures)})`);
      await sql`WITH reported (device_id, version, error, failures) AS (VALUES ${sql.join(rows)})
        UPDATE agents SET state_version = reported.version, state_error = reported.error, state_failures = reported.failures
        FROM reported WHERE agents.device_id = reported.device_id AND (agents.state_version IS NULL OR agents.state_version <= reported.version)`.execute(db);
    },
    /** The containment actions (and releases) delivered through a signed state that have not ended. */
    openFleetActions(db: Db): Promise<Array<Pick<ActionsTable, 'id' | 'status' | 'type' | 'entity_name' | 'state_version'>>> {
      return db.selectFrom('actions').select(['id', 'status', 'type', 'entity_name', 'state_version'])
        .where('status', 'in', DELIVERABLE_STATUSES).where('type', 'in', FLEET_ACTION_TYPES).where('state_version', 'is not', null).execute();
    },
  };
}
export type DesiredStateRepository = ReturnType<typeof createDesiredStateRepository>;

const enrolled = (db: Db) => db.selectFrom('agents').innerJoin('devices', 'devices.id', 'agents.device_id').where('agents.revoked_at', 'is', null);
