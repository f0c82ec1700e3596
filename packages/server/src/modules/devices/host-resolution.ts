import type { IngestedAlert, Platform } from '@quell/contracts';
import type { Db } from '../../db/store.ts';
import type { Ids } from '../../infra.ts';
import { createDevicesRepository, type HostCandidate } from './devices.repository.ts';
import { applyGroupRules } from './group-rules.ts';

const repo = createDevicesRepository();

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

/** Several devices fit one claim (two named alike): the one with an agent, then the one seen last, then the oldest id. */
function best(found: HostCandidate[]): HostCandidate | undefined {
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
  for (const sourceId of host.sourceIds) await repo.recordSourceId(trx, host.source, sourceId, resolved.id, now);
  for (const address of host.addresses) await repo.recordAddress(trx, resolved.id, address, now);
  return resolved;
}

async function find(trx: Db, host: HostClaims): Promise<ResolvedDevice | undefined> {
  if (host.sourceIds.length > 0) {
    const found = best(await repo.hostCandidates(trx, await repo.bySourceIds(trx, host.source, host.sourceIds)));
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
    // Where an alert last saw the address; else the device whose Quell agent reports it.
    const seen = await repo.lastSeenAt(trx, host.addresses);
    const found = best(await repo.hostCandidates(trx, seen.length > 0 ? seen : await repo.reportingAddress(trx, host.addresses)));
    if (found) return { id: found.id, name: found.name, managed: found.managed, created: false, matchedBy: 'address' };
  }
  return undefined;
}

/** The device these host names or FQDNs stand for, case aside: one named exactly so before one sharing only the short name. */
async function byName(trx: Db, names: readonly string[]): Promise<HostCandidate | undefined> {
  const keys = nameKeys(names);
  if (keys.length === 0) return undefined;
  const all = await repo.hostCandidates(trx, await repo.byLowerName(trx, keys));
  const exact = all.filter((d) => names.some((n) => n.toLowerCase() === d.name.toLowerCase()));
  return best(exact) ?? best(all);
}

async function create(trx: Db, ids: Ids, now: number, host: HostClaims): Promise<ResolvedDevice> {
  const name = (host.names[0] ?? host.addresses[0] ?? `${host.source}-${host.sourceIds[0] ?? 'unknown'}`).slice(0, 255);
  const id = ids.next();
  // Concurrent alerts for one new host: every insert but the first does nothing (on PostgreSQL after waiting
  // for the first to commit), and all of them then read the one device.
  const inserted = await repo.insertDiscovered(trx, { id, name, platform: host.platform, group_id: null, created_at: now, last_seen_at: null, group_pinned: 0, discovered_from: host.source });
  if (inserted) {
    await applyGroupRules(trx, [id]);
    return { id, name, managed: false, created: true, matchedBy: 'created' };
  }
  const winner = await repo.discoveredNamed(trx, name);
  return { id: winner.id, name: winner.name, managed: false, created: false, matchedBy: 'host_name' };
}
