import type { ContainmentEntry } from '@quell/contracts';
import type { ExpressionBuilder } from 'kysely';
import type { Database } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import type { CommandSigner } from '../agents/command-signer.ts';

const NAME = 'containment';

/** The statuses in which a contain_device action is enforced (until its release is under way). */
const IN_FORCE = ['queued', 'in_progress', 'completed'];

/**
 * Writes the next version of the containment state: every contain_device
 * action in force, signed once for all agents. Called inside the
 * transaction that changed such an action; returns the new version.
 */
export async function writeContainmentState(trx: Db, signer: CommandSigner | undefined, now: number): Promise<number> {
  // The row lock comes first: on PostgreSQL a concurrent change then waits, and reads the actions this one committed.
  const { version } = await trx.updateTable('desired_state').set((eb) => ({ version: eb('version', '+', 1), updated_at: now }))
    .where('name', '=', NAME).returning('version').executeTakeFirstOrThrow();
  const rows = await trx.selectFrom('actions').select(['id', 'entity_name', 'parameters'])
    .where('type', '=', 'contain_device').where('status', 'in', IN_FORCE).where('undone_by', 'is', null)
    .orderBy('requested_at').orderBy('id').execute();
  const containment = rows.map((row): ContainmentEntry => {
    const mac = (JSON.parse(row.parameters) as { mac?: unknown }).mac;
    return { actionId: row.id, address: row.entity_name, ...(typeof mac === 'string' ? { mac } : {}) };
  });
  await trx.updateTable('desired_state').set({ jws: signer ? signer.signState(version, containment, now) : null }).where('name', '=', NAME).execute();
  return version;
}

/** The signed containment state of the latest version, or null when there has never been any. */
export async function readContainmentState(db: Db): Promise<{ version: number; jws: string } | null> {
  const row = await db.selectFrom('desired_state').select(['version', 'jws']).where('name', '=', NAME).executeTakeFirst();
  return row?.jws ? { version: row.version, jws: row.jws } : null;
}

export interface Enforcement {
  succeeded: number;
  failed: number;
  waiting: number;
  waitingOnline: number;
  failures: Array<{ deviceId: string; deviceName: string; reason: string }>;
}

/**
 * Where a containment action (or its release) stands across the fleet, from
 * the state version each enrolled agent last reported: agents at or past the
 * action's version have applied it, unless they reported it failed.
 */
export async function enforcementOf(db: Db, action: { id: string; state_version: number | null }, onlineSince: number): Promise<Enforcement> {
  const version = action.state_version ?? Number.MAX_SAFE_INTEGER;
  const agents = db.selectFrom('agents').innerJoin('devices', 'devices.id', 'agents.device_id').where('agents.revoked_at', 'is', null);
  type Where = ExpressionBuilder<Database, 'agents' | 'devices'>;
  const reached = (eb: Where) => eb('agents.state_version', '>=', version);
  const behind = (eb: Where) => eb.or([eb('agents.state_version', 'is', null), eb('agents.state_version', '<', version)]);
  const failedHere = (eb: Where) => eb.and([
    reached(eb),
    eb.or([eb('agents.state_error', 'is not', null), eb('agents.state_failures', 'like', `%"${action.id}"%`)]),
  ]);
  const counts = await agents.select((eb) => [
    eb.fn.count<number>('agents.device_id').filterWhere(reached).as('reached'),
    eb.fn.count<number>('agents.device_id').filterWhere(failedHere).as('failed'),
    eb.fn.count<number>('agents.device_id').as('total'),
    eb.fn.count<number>('agents.device_id').filterWhere((w) => w.and([behind(w), w('devices.last_seen_at', '>=', onlineSince)])).as('waiting_online'),
  ]).executeTakeFirstOrThrow();
  const failures = Number(counts.failed) === 0 ? [] : await agents.select(['agents.device_id', 'devices.name', 'agents.state_error', 'agents.state_failures'])
    .where(failedHere).orderBy('devices.name').limit(50).execute();
  const reachedCount = Number(counts.reached);
  return {
    succeeded: reachedCount - Number(counts.failed),
    failed: Number(counts.failed),
    waiting: Number(counts.total) - reachedCount,
    waitingOnline: Number(counts.waiting_online),
    failures: failures.map((row) => ({
      deviceId: row.device_id,
      deviceName: row.name,
      reason: row.state_error ?? (JSON.parse(row.state_failures ?? '{}') as Record<string, string>)[action.id] ?? 'unknown',
    })),
  };
}
