import { type ContainmentEntry, DOMAIN_NAME, IN_FORCE_STATUSES } from '@quell/contracts';
import type { ExpressionBuilder } from 'kysely';
import type { Database } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import type { CommandSigner } from '../../command-signer.ts';

/** The state of agents outside any device group; each group has its own row, `group:<id>`. */
const FLEET = 'fleet';
const rowName = (groupId: string | null): string => (groupId === null ? FLEET : `group:${groupId}`);

/** The indicator types agents enforce: files by hash, traffic by address, DNS by domain and by a URL's host. */
export const ENFORCED_TYPES: Array<'sha256' | 'sha1' | 'md5' | 'ip' | 'domain' | 'url'> = ['sha256', 'sha1', 'md5', 'ip', 'domain', 'url'];

/** The name a domain or URL indicator is enforced at: the domain, or the URL's host when that is a domain name (not an address). */
export function enforcedName(type: string, value: string): string | null {
  if (type === 'domain') return value;
  if (type !== 'url') return null;
  try {
    const host = new URL(value).hostname;
    return DOMAIN_NAME.test(host) ? host : null;
  } catch {
    return null;
  }
}

/** The indicator actions an agent enforces as blocks. */
const BLOCKING = ['block', 'block_and_remediate'];


/**
 * Writes the next version of the desired state every agent enforces: the
 * containment list (the same for all) and the block, allow and audit indicators by file
 * hash and address (those of no group, plus each group's own), signed once per device group.
 * Called inside the transaction that changed a containment action or an
 * indicator; returns the new version.
 */
export async function writeDesiredState(trx: Db, signer: CommandSigner | undefined, now: number): Promise<number> {
  // The row lock comes first: on PostgreSQL a concurrent change then waits, and reads the rows this one committed.
  const { version } = await trx.updateTable('desired_state').set((eb) => ({ version: eb('version', '+', 1), updated_at: now }))
    .where('name', '=', FLEET).returning('version').executeTakeFirstOrThrow();
  const contained = await trx.selectFrom('actions').select(['id', 'entity_name', 'parameters'])
    // Enforced from queued on, until its release is under way.
    .where('type', '=', 'contain_device').where('status', 'in', IN_FORCE_STATUSES).where('undone_by', 'is', null)
    .orderBy('requested_at').orderBy('id').execute();
  const containment = contained.map((row): ContainmentEntry => {
    const mac = (JSON.parse(row.parameters) as { mac?: unknown }).mac;
    return { actionId: row.id, address: row.entity_name, ...(typeof mac === 'string' ? { mac } : {}) };
  });
  const indicators = (await trx.selectFrom('indicators').select(['type', 'value', 'action', 'device_group_ids'])
    .where('type', 'in', ENFORCED_TYPES).where('action', 'in', ['block', 'block_and_remediate', 'allow', 'audit'])
    .where((eb: ExpressionBuilder<Database, 'indicators'>) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('value').execute()).map((row) => ({ type: row.type, value: row.value, action: row.action, groups: JSON.parse(row.device_group_ids) as string[] }));
  const groups = (await trx.selectFrom('device_groups').select('id').execute()).map((g) => g.id);
  for (const groupId of [null, ...groups]) {
    const inScope = indicators.filter((i) => i.groups.length === 0 || (groupId !== null && i.groups.includes(groupId)));
    const values = (types: readonly string[], actions: readonly string[]): string[] =>
      [...new Set(inScope.filter((i) => types.includes(i.type) && actions.includes(i.action)).map((i) => i.value))];
    const blocked = (type: string): string[] => values([type], BLOCKING);
    const antivirus = {
      blockSha256: blocked('sha256'), blockSha1: blocked('sha1'), blockMd5: blocked('md5'),
      remediate: values(['sha256', 'sha1', 'md5'], ['block_and_remediate']), audit: values(['sha256', 'sha1', 'md5'], ['audit']),
    };
    // An allowed address inside a blocked range stays reachable: the agent lets it through before any block.
    const network = { blockAddresses: blocked('ip'), allowAddresses: values(['ip'], ['allow']), auditAddresses: values(['ip'], ['audit']) };
    const names = (actions: readonly string[]): string[] => [...new Set(inScope.filter((i) => actions.includes(i.action)).flatMap((i) => enforcedName(i.type, i.value) ?? []))].sort();
    const dns = { block: names(BLOCKING), audit: names(['audit']), allow: names(['allow']) };
    const jws = signer ? signer.signState({ version, containment, antivirus, network, dns }, now) : null;
    await trx.insertInto('desired_state').values({ name: rowName(groupId), version, jws, updated_at: now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ version, jws, updated_at: now })).execute();
  }
  return version;
}

/** The signed desired state for agents of this device group (or of none), or null when there has never been any. */
export async function readDesiredState(db: Db, groupId: string | null): Promise<{ version: number; jws: string } | null> {
  const rows = await db.selectFrom('desired_state').select(['name', 'version', 'jws']).where('name', 'in', [FLEET, rowName(groupId)]).execute();
  // A group made after the last state has no row yet: nothing is scoped to it, so the fleet's state is its state.
  const row = rows.find((r) => r.name === rowName(groupId)) ?? rows.find((r) => r.name === FLEET);
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
