import type { IngestedAlert, Platform } from '@quell/contracts';
import { sql } from 'kysely';
import type { Db } from '../../db/store.ts';
import type { Ids } from '../../infra.ts';
import { applyGroupRules } from './group-rules.ts';

/** What a document says of the host it is about, from the strongest claim to the weakest. */
export interface HostClaims {
  /** Whose agent ids these are: one namespace per engine. */
  source: 'wazuh' | 'elastic';
  /** The engine's own ids for the host (its agent's id). */
  sourceIds: string[];
  /** Host names and FQDNs, as given. */
  names: string[];
  /** The host's own addresses. */
  addresses: string[];
  /** What the document suggests the host runs, for a device Quell has to create. */
  platform: Platform;
}

export type ResolvedDevice = IngestedAlert['device'];

interface Candidate { id: string; name: string; managed: boolean; last_seen_at: number | null }

/** Devices with whether an agent holds them now, one query for a set of ids. */
async function candidates(trx: Db, ids: readonly string[]): Promise<Candidate[]> {
  if (ids.length === 0) return [];
  const rows = await trx.selectFrom('devices')
    .leftJoin('agents', (join) => join.onRef('agents.device_id', '=', 'devices.id').on('agents.revoked_at', 'is', null))
    .select(['devices.id', 'devices.name', 'devices.last_seen_at', 'agents.device_id as agent_device'])
    .where('devices.id', 'in', [...new Set(ids)]).execute();
  return rows.map((r) => ({ id: r.id, name: r.name, last_seen_at: r.last_seen_at, managed: r.agent_device !== null }));
}

/** Several devices fit one claim (two named alike): the one with an agent, then the one seen last, then the oldest id. */
function best(found: Candidate[]): Candidate | undefined {
  return [...found].sort((a, b) => Number(b.managed) - Number(a.managed) || (b.last_seen_at ?? 0) - (a.last_seen_at ?? 0) || a.id.localeCompare(b.id))[0];
}

/** Host names as claimed, lower case, and the short name of each FQDN (web-01.corp.example → web-01). */
function nameKeys(names: readonly string[]): string[] {
  const keys = names.map((n) => n.toLowerCase());
  return [...new Set([...keys, ...keys.filter((n) => !/^[\d.:]+$/.test(n) && n.includes('.')).map((n) => n.split('.')[0]!).filter(Boolean)])];
}

/**
 * Finds the device a detection engine's alert is about, strongest claim
 * first: the engine's own agent id (kept across renames), then the host
 * name or FQDN without regard to case, then the last address seen for it
 * (from earlier alerts or its Quell agent). A host Quell does not know
 * becomes an unmanaged device discovered from that engine — one per host
 * name, however many alerts for it arrive at once (a unique index decides).
 * Whatever matched, the engine's id and the host's addresses are recorded
 * so that the next alert finds the device by the strongest claim.
 */
export async function resolveHost(trx: Db, ids: Ids, now: number, host: HostClaims): Promise<ResolvedDevice> {
  const resolved = await find(trx, host) ?? await create(trx, ids, now, host);
  for (const sourceId of host.sourceIds) {
    await trx.insertInto('device_source_ids').values({ source: host.source, source_id: sourceId, device_id: resolved.id, updated_at: now })
      .onConflict((oc) => oc.columns(['source', 'source_id']).doUpdateSet({ device_id: resolved.id, updated_at: now })).execute();
  }
  for (const address of host.addresses) {
    await trx.insertInto('device_addresses').values({ device_id: resolved.id, address, seen_at: now })
      .onConflict((oc) => oc.columns(['device_id', 'address']).doUpdateSet({ seen_at: now })).execute();
  }
  return resolved;
}

async function find(trx: Db, host: HostClaims): Promise<ResolvedDevice | undefined> {
  if (host.sourceIds.length > 0) {
    const bySource = await trx.selectFrom('device_source_ids').select('device_id').where('source', '=', host.source).where('source_id', 'in', host.sourceIds)
      .orderBy('updated_at', 'desc').execute();
    const found = best(await candidates(trx, bySource.map((r) => r.device_id)));
    if (found?.managed) return { id: found.id, name: found.name, managed: true, created: false, matchedBy: 'source_agent_id' };
    // A host first known from alerts that has since enrolled a Quell agent under its name: alerts go to the managed
    // device from now on (the engine's id is moved to it below); the earlier ones stay where they were.
    const enrolled = found ? await byName(trx, [found.name]) : undefined;
    if (enrolled?.managed) return { id: enrolled.id, name: enrolled.name, managed: true, created: false, matchedBy: 'host_name' };
    if (found) return { id: found.id, name: found.name, managed: false, created: false, matchedBy: 'source_agent_id' };
  }
  const named = await byName(trx, host.names);
  if (named) return { id: named.id, name: named.name, managed: named.managed, created: false, matchedBy: 'host_name' };
  if (host.addresses.length > 0) {
    const seen = await trx.selectFrom('device_addresses').select('device_id').where('address', 'in', host.addresses).orderBy('seen_at', 'desc').limit(1).execute();
    // A Quell agent reports its addresses in its facts (JSON); addresses hold only [0-9a-f.:], nothing to escape.
    const agents = seen.length > 0 ? [] : await trx.selectFrom('agents').select('device_id').where('revoked_at', 'is', null)
      .where((eb) => eb.or(host.addresses.map((a) => eb('facts', 'like', `%"${a}"%`)))).execute();
    const found = best(await candidates(trx, [...seen, ...agents].map((r) => r.device_id)));
    if (found) return { id: found.id, name: found.name, managed: found.managed, created: false, matchedBy: 'address' };
  }
  return undefined;
}

/** The device these host names or FQDNs stand for, case aside: one named exactly so before one sharing only the short name. */
async function byName(trx: Db, names: readonly string[]): Promise<Candidate | undefined> {
  const keys = nameKeys(names);
  if (keys.length === 0) return undefined;
  const rows = await trx.selectFrom('devices').select('id').where(sql<string>`lower(name)`, 'in', keys).execute();
  const all = await candidates(trx, rows.map((r) => r.id));
  const exact = all.filter((d) => names.some((n) => n.toLowerCase() === d.name.toLowerCase()));
  return best(exact) ?? best(all);
}

async function create(trx: Db, ids: Ids, now: number, host: HostClaims): Promise<ResolvedDevice> {
  const name = (host.names[0] ?? host.addresses[0] ?? `${host.source}-${host.sourceIds[0] ?? 'unknown'}`).slice(0, 255);
  const id = ids.next();
  // Concurrent alerts for one new host: every insert but the first does nothing (on PostgreSQL after waiting
  // for the first to commit), and all of them then read the one device.
  const inserted = await trx.insertInto('devices')
    .values({ id, name, platform: host.platform, group_id: null, created_at: now, last_seen_at: null, group_pinned: 0, discovered_from: host.source })
    .onConflict((oc) => oc.doNothing()).returning('id').executeTakeFirst();
  if (inserted !== undefined) {
    await applyGroupRules(trx, [id]);
    return { id, name, managed: false, created: true, matchedBy: 'created' };
  }
  const winner = await trx.selectFrom('devices').select(['id', 'name']).where('discovered_from', 'is not', null).where(sql<string>`lower(name)`, '=', name.toLowerCase()).executeTakeFirstOrThrow();
  return { id: winner.id, name: winner.name, managed: false, created: false, matchedBy: 'host_name' };
}
