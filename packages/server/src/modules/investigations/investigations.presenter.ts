import type { Investigation, InvestigationStatus, Verdict } from '@quell/contracts';
import { type Actor, inScope } from '../../actor.ts';
import type { ActionsTable, InvestigationLogTable, InvestigationsTable } from '../../db/schema.ts';
import { presentAction } from '../actions/actions.presenter.ts';
import type { EntityOnDevice } from './investigations.repository.ts';
import { expansionOf, problemsOf, waitedUntil } from './investigation-state.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export function presentInvestigation(row: InvestigationsTable, now: number): Investigation {
  return {
    id: row.id, status: row.status as InvestigationStatus, deviceId: row.device_id, deviceName: row.device_name, deviceGroupId: row.group_id,
    startedBy: row.started_by, startedAt: iso(row.started_at), endedAt: row.ended_at === null ? null : iso(row.ended_at),
    waitingSeconds: Math.floor(waitedUntil(row, row.ended_at ?? now) / 1000), updatedAt: iso(row.updated_at),
    problems: problemsOf(row).map((p) => ({ step: p.step, at: iso(p.at), reason: p.reason })),
    conclusion: row.conclusion ?? null,
  };
}

/** What one investigation is read with: its alerts, its entities on their devices, its log, and the actions it proposed or joined. */
export interface InvestigationParts {
  alertIds: string[];
  entities: EntityOnDevice[];
  log: InvestigationLogTable[];
  actions: ActionsTable[];
}

/**
 * One investigation in full, as the actor may see it. Following its files
 * can take an investigation to devices of other groups: a scoped reader sees
 * only theirs, and the log names the others in general words.
 */
export function presentInvestigationDetail(row: InvestigationsTable, parts: InvestigationParts, actor: Actor, now: number) {
  const { entities, actions } = parts;
  const visible = entities.filter((e) => inScope(actor, e.device_group_id));
  const expansion = expansionOf(row);
  const elsewhere = [...entities.map((e) => ({ name: e.device_name, groupId: e.device_group_id })), ...(expansion?.found ?? []).map((f) => ({ name: f.deviceName, groupId: f.groupId }))];
  const ours = new Set(elsewhere.filter((d) => inScope(actor, d.groupId)).map((d) => d.name));
  const hidden = new Map(elsewhere.filter((d) => !inScope(actor, d.groupId) && !ours.has(d.name)).map((d) => [d.name, 'a device in another group']));
  // The log names what it joined or did not propose again on those devices: their paths, actions and investigations are kept from the reader too.
  const visiblePaths = new Set(visible.map((e) => e.path));
  for (const e of entities.filter((e) => !inScope(actor, e.device_group_id))) {
    if (e.path !== null && !visiblePaths.has(e.path)) hidden.set(e.path, 'a file there');
    if (e.action_id !== null) hidden.set(e.action_id, 'an action there');
  }
  for (const a of actions.filter((a) => !inScope(actor, a.group_id))) {
    hidden.set(a.id, 'an action there');
    if (a.investigation_id !== null && a.investigation_id !== row.id) hidden.set(a.investigation_id, 'an investigation there');
  }
  return {
    investigation: presentInvestigation(row, now),
    alertIds: parts.alertIds,
    entities: visible.map((e) => ({
      deviceId: e.device_id, deviceName: e.device_name, kind: e.kind, value: e.value, path: e.path, verdict: e.verdict as Verdict | null, reason: e.reason,
      facts: JSON.parse(e.facts ?? '[]') as string[], actionId: e.action_id,
    })),
    log: parts.log.map((l) => ({ step: l.step, startedAt: iso(l.started_at), endedAt: iso(l.ended_at), result: withoutNames(l.result, hidden) })),
    actions: actions.filter((a) => inScope(actor, a.group_id)).map(presentAction),
    pendingExpansion: pendingExpansionOf(row, actor),
  };
}

/** The devices a large expansion waits to follow, those in the actor's groups. */
function pendingExpansionOf(row: InvestigationsTable, actor: Actor): { devices: Array<{ id: string; name: string }>; askedAt: string } | null {
  const expansion = expansionOf(row);
  if (!expansion || expansion.decision !== null) return null;
  const found = expansion.found.filter((f) => inScope(actor, f.groupId));
  return { devices: [...new Map(found.map((f) => [f.deviceId, { id: f.deviceId, name: f.deviceName }])).values()], askedAt: iso(expansion.askedAt) };
}

/** A log line with what the reader may not see (names of devices in other groups, their files and actions) put in general words, the longest first. */
function withoutNames(text: string, hidden: ReadonlyMap<string, string>): string {
  if (hidden.size === 0) return text;
  return [...hidden].sort(([a], [b]) => b.length - a.length).reduce((line, [name, words]) => line.split(name).join(words), text);
}
