import type { Evidence } from '@quell/contracts';
import type { InvestigationEntitiesTable, InvestigationsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { SHA256, isFile } from './evidence.ts';
import type { InvestigationsCore, InvestigationsServiceDeps } from './investigations.core.ts';
import { type Expansion, type StepOutcome, type Steps, expansionOf, waitingClosed } from './investigation-state.ts';

/** Finding the same file on this many other devices or more is not followed without an analyst. */
const EXPANSION_LIMIT = 10;

/**
 * The steps that follow the investigation's threats to the other devices
 * whose alerts name the same files: at once when they are few (expand), after
 * an analyst's approval when they are many (expand_decided).
 */
export function createExpansionSteps(deps: InvestigationsServiceDeps, core: InvestigationsCore): Pick<Steps, 'expand' | 'expand_decided'> {
  const { repo, actions, settings, clock, ids } = deps;
  const { indicatorFor } = core;

  /** Adds the devices where the investigation's files were also found, each file judged again against that device's indicators. */
  async function addFound(trx: Db, inv: InvestigationsTable, found: Expansion['found']): Promise<StepOutcome> {
    for (const f of found) {
      // A file judged malicious by its hash alone is malicious everywhere; an allow indicator in the other device's scope still wins.
      const indicator = await indicatorFor(trx, { sha256: SHA256.test(f.value) ? f.value : null, sha1: f.sha1 ?? null, md5: f.md5 ?? null }, f.groupId);
      const judged = indicator?.action === 'allow' ? { verdict: 'no_threats_found', reason: `allowed by indicator "${indicator.title}"` } : { verdict: f.verdict, reason: `the same file as on ${inv.device_name} (${f.reason})` };
      await repo.addEntity(trx, {
        id: ids.next(), investigation_id: inv.id, device_id: f.deviceId, kind: 'file', value: f.value, path: f.path, sha1: f.sha1 ?? null, md5: f.md5 ?? null,
        verdict: judged.verdict, reason: judged.reason, facts: JSON.stringify([`the same file as on ${inv.device_name}`]), action_id: null,
      });
    }
    const names = [...new Set(found.map((f) => f.deviceName))];
    return { result: names.length === 0 ? 'not found on other devices' : `found on ${names.length} other device${names.length === 1 ? '' : 's'}: ${names.join(', ')}`, next: 'evidence_elsewhere' };
  }

  return {
    /** The same malicious or suspicious files named in other devices' alerts: those devices join the investigation. */
    async expand(trx, inv) {
      const entities = await repo.entities(trx, inv.id);
      const present = new Set(entities.map((e) => `${e.device_id}:${e.value}`));
      const threats = entities.filter((e) => isFile(e) && (e.verdict === 'malicious' || e.verdict === 'suspicious'));
      const found: Array<{ source: InvestigationEntitiesTable; deviceId: string; deviceName: string; groupId: string | null; path: string | null }> = [];
      for (const threat of threats) {
        // By every hash known for it: an alert elsewhere may know the same file only by its SHA-1 or MD5.
        const hashes = [{ kind: 'sha256', value: threat.value }, { kind: 'sha1', value: threat.sha1 }, { kind: 'md5', value: threat.md5 }].filter((h): h is { kind: string; value: string } => h.value !== null);
        for (const other of await repo.alertsWithHashesElsewhere(trx, hashes, threat.device_id)) {
          const key = `${other.device_id}:${threat.value}`;
          if (present.has(key)) continue;
          present.add(key);
          const named = (JSON.parse(other.evidence) as Evidence[]).find((e) => e.kind === 'file'
            && (e.sha256?.toLowerCase() === threat.value || (e.sha1 !== undefined && e.sha1.toLowerCase() === threat.sha1) || (e.md5 !== undefined && e.md5.toLowerCase() === threat.md5)));
          found.push({ source: threat, deviceId: other.device_id, deviceName: other.device_name, groupId: other.group_id, path: named?.kind === 'file' ? named.path : null });
        }
      }
      // Where the file is quarantined now (completed, not undone) there is nothing left to remediate.
      const skipped: string[] = [];
      for (const value of new Set(found.map((f) => f.source.value))) {
        const quarantined = await actions.quarantinedOnIn(trx, value, [...new Set(found.filter((f) => f.source.value === value).map((f) => f.deviceId))]);
        for (let i = found.length - 1; i >= 0; i--) {
          const f = found[i]!;
          if (f.source.value !== value || !quarantined.has(f.deviceId)) continue;
          skipped.unshift(f.deviceName);
          found.splice(i, 1);
        }
      }
      const already = skipped.length === 0 ? '' : `; already quarantined on ${[...new Set(skipped)].join(', ')}`;
      const devices = new Set(found.map((f) => f.deviceId));
      const judged: Expansion['found'] = found.map((f) => ({ ...f, value: f.source.value, sha1: f.source.sha1, md5: f.source.md5, verdict: f.source.verdict!, reason: f.source.reason! }));
      if (devices.size >= EXPANSION_LIMIT) {
        const asked: Expansion = { found: judged, askedAt: clock.now(), decision: null };
        return {
          result: `the same files are on ${devices.size} other devices: following them there waits for an analyst's approval${already}`, next: 'expand_decided',
          patch: { pending_expansion: JSON.stringify(asked), status: 'pending_action', waiting_since: inv.waiting_since ?? clock.now() },
        };
      }
      const added = await addFound(trx, inv, judged);
      return { ...added, result: `${added.result}${already}` };
    },

    /** Waits for the analyst's decision on a large expansion (or its expiry), then follows it or not. */
    async expand_decided(trx, inv) {
      const expansion = expansionOf(inv);
      if (!expansion) return { result: null, next: 'remediate' };
      const { pendingExpiryHours } = await settings.read(trx);
      const expired = expansion.decision === null && clock.now() - expansion.askedAt > pendingExpiryHours * 3_600_000;
      if (expansion.decision === null && !expired) return { result: null, next: 'expand_decided' };
      const closeWaiting = { ...waitingClosed(inv, clock.now()), status: 'running', pending_expansion: null };
      if (expansion.decision?.approved) {
        const added = await addFound(trx, inv, expansion.found);
        return { ...added, result: `expansion approved by ${expansion.decision.by}: ${added.result}`, patch: closeWaiting };
      }
      const why = expired ? 'no decision before the deadline' : `rejected by ${expansion.decision!.by}`;
      return { result: `expansion to ${new Set(expansion.found.map((f) => f.deviceId)).size} devices not followed: ${why}`, next: 'remediate', patch: closeWaiting };
    },
  };
}
