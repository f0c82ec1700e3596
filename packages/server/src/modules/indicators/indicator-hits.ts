import { type CreateAlertBody, DOMAIN_NAME, type Evidence, type IndicatorHit, addressOrRange, enforcedName } from '@quell/contracts';
import type { Db } from '../../db/store.ts';
import type { IndicatorHitsTable, IndicatorsTable } from '../../db/schema.ts';
import { coversGroup, createIndicatorsRepository } from './indicators.repository.ts';

const repo = createIndicatorsRepository();

const HOUR_MS = 3_600_000;
/** How far back an agent may date a hit it held while its server was out of reach. */
const OLDEST_HIT_MS = 7 * 24 * HOUR_MS;
/** A count beyond this is the agent's mistake (or lie); it is kept at this. */
const COUNT_MAX = 1_000_000_000;

const HASH_TYPES: Record<number, string> = { 64: 'sha256', 40: 'sha1', 32: 'md5' };

/**
 * The indicator types a hit's value can be of: an address or range, a
 * domain (or a URL's host: traffic to an address a blocked name resolved to
 * names both), or a hash by its length.
 */
function typesOf(hit: IndicatorHit): string[] {
  if (hit.name !== undefined) return DOMAIN_NAME.test(hit.value) ? ['domain', 'url'] : [];
  if (hit.remote !== undefined) return 'problem' in addressOrRange(hit.value) ? [] : ['ip'];
  const hash = /^[0-9a-f]+$/.test(hit.value) ? HASH_TYPES[hit.value.length] : undefined;
  return hash ? [hash] : [];
}

/**
 * The indicator a hit names: of its type and value, of the action the agent
 * applied (block covers block and remediate), and scoped to the device's
 * group — the newest such, as expired ones stay for the record.
 */
async function indicatorOf(trx: Db, hit: IndicatorHit, groupId: string | null): Promise<IndicatorsTable | undefined> {
  const types = typesOf(hit);
  if (types.length === 0) return undefined;
  // A URL indicator is enforced at its host: its value holds the name.
  const rows = await repo.matching(trx, types, hit.value, hit.action === 'block' ? ['block', 'block_and_remediate'] : ['audit']);
  return rows.filter((row) => (row.type === 'url' ? enforcedName(row.type, row.value) === hit.value : true)).find((row) => coversGroup(row, groupId));
}

/** What an alert about a hit shows: the remote end, the file, the process and its user. */
function evidenceOf(hit: IndicatorHit): Evidence[] {
  const evidence: Evidence[] = [];
  if (hit.remote !== undefined && !('problem' in addressOrRange(hit.remote))) {
    evidence.push({ kind: 'ip', address: hit.remote, role: hit.direction === 'inbound' ? 'source' : 'destination' });
  }
  if (hit.name !== undefined) evidence.push({ kind: 'url', url: hit.name });
  if (hit.path !== undefined) evidence.push({ kind: 'file', path: hit.path, ...(hit.sha256 ? { sha256: hit.sha256 } : {}) });
  if (hit.process) evidence.push({ kind: 'process', name: hit.process.name, pid: hit.process.pid, ...(hit.process.commandLine ? { commandLine: hit.process.commandLine } : {}), ...(hit.user ? { user: hit.user } : {}) });
  if (hit.user) evidence.push({ kind: 'user', name: hit.user });
  return evidence;
}

function alertFor(indicator: IndicatorsTable, device: { id: string; name: string }, hit: IndicatorHit, hour: number): CreateAlertBody {
  const blocked = hit.action === 'block';
  const verb = blocked ? 'Blocked' : 'Audited';
  const what = hit.remote !== undefined ? `${verb} ${hit.direction === 'inbound' ? 'traffic from' : 'traffic to'} ${hit.remote}${hit.name !== undefined ? ` (an address of ${hit.name})` : ''}`
    : hit.name !== undefined ? `${verb} DNS query for ${hit.name}`
      : blocked && hit.process !== undefined ? `Blocked execution of ${hit.path ?? hit.value}`
        : `${verb} file ${hit.path ?? hit.value}`;
  return {
    title: `${what} on ${device.name}`.slice(0, 500),
    description: `The ${indicator.action.replace(/_/g, ' ')} indicator "${indicator.title}" (${indicator.type} ${indicator.value}) matched on ${device.name}. Further matches on this device within the hour are counted on the indicator, not raised again.`.slice(0, 10_000),
    severity: 'medium', category: hit.path !== undefined ? 'malware' : 'network', detectionSource: 'indicator',
    externalId: `hit:${indicator.id}:${device.id}:${hour}`, deviceId: device.id, occurredAt: new Date(hit.firstAt).toISOString(),
    evidence: evidenceOf(hit),
  };
}

/**
 * Counts what an agent reported as matched on its device, per indicator,
 * device and hour, inside the caller's transaction. Returns the alerts the
 * first hit of each indicator on this device in an hour raises; a file that
 * a block quarantined raises none here, as its quarantine already did.
 * Hits that name no indicator in the device's scope are left out and
 * counted in `unmatched`.
 */
export async function recordIndicatorHits(trx: Db, device: { id: string; name: string; group_id: string | null }, hits: readonly IndicatorHit[], now: number): Promise<{ alerts: CreateAlertBody[]; unmatched: number }> {
  // The same indicator may match several times in one report: each is looked up once, and each hour of it written once.
  const indicators = new Map<string, Promise<IndicatorsTable | undefined>>();
  const hours = new Map<string, { indicator: IndicatorsTable; hour: number; first: IndicatorHit; last: IndicatorHit; count: number; firstAt: number; lastAt: number }>();
  let unmatched = 0;
  for (const reported of hits) {
    const lastAt = Math.min(Math.max(reported.lastAt, now - OLDEST_HIT_MS), now);
    const hit: IndicatorHit = { ...reported, lastAt, firstAt: Math.min(Math.max(reported.firstAt, now - OLDEST_HIT_MS), lastAt), count: Math.min(reported.count, COUNT_MAX) };
    const lookup = `${hit.action}\u0000${hit.name !== undefined}\u0000${hit.remote !== undefined}\u0000${hit.value}`;
    if (!indicators.has(lookup)) indicators.set(lookup, indicatorOf(trx, hit, device.group_id));
    const indicator = await indicators.get(lookup)!;
    if (!indicator) {
      unmatched += 1;
      continue;
    }
    const hour = Math.floor(hit.firstAt / HOUR_MS) * HOUR_MS;
    const seen = hours.get(`${indicator.id}\u0000${hour}`);
    if (seen) {
      Object.assign(seen, { last: hit, count: Math.min(seen.count + hit.count, Number.MAX_SAFE_INTEGER), firstAt: Math.min(seen.firstAt, hit.firstAt), lastAt: Math.max(seen.lastAt, hit.lastAt) });
    } else {
      hours.set(`${indicator.id}\u0000${hour}`, { indicator, hour, first: hit, last: hit, count: hit.count, firstAt: hit.firstAt, lastAt: hit.lastAt });
    }
  }
  const alerts: CreateAlertBody[] = [];
  for (const { indicator, hour, first, last, count, firstAt, lastAt } of hours.values()) {
    const key = { indicator_id: indicator.id, device_id: device.id, hour };
    const known = await repo.hitsInHour(trx, key);
    if (known) {
      await repo.updateHits(trx, key, {
        count: Math.min(Number(known.count) + count, Number.MAX_SAFE_INTEGER), first_at: Math.min(Number(known.first_at), firstAt),
        last_at: Math.max(Number(known.last_at), lastAt), last_hit: JSON.stringify(last),
      });
      continue;
    }
    const row: IndicatorHitsTable = { ...key, action: first.action, count, first_at: firstAt, last_at: lastAt, last_hit: JSON.stringify(last) };
    await repo.insertHits(trx, row);
    // A quarantine raised its own alert; agents that do not say so quarantined every blocked file they reported.
    const alreadyAlerted = first.quarantined ?? (first.action === 'block' && first.path !== undefined);
    if (!alreadyAlerted) alerts.push(alertFor(indicator, device, first, hour));
  }
  return { alerts, unmatched };
}
