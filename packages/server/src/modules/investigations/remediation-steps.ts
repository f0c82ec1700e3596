import { basename } from 'node:path';
import {
  ACTION_CATALOGUE, type ActionType, FILE_QUARANTINE_TYPES, type InvestigationStatus, OPEN_ACTION_STATUSES, isStatusIn,
} from '@quell/contracts';
import type { ActionsTable, InvestigationEntitiesTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import { storedEntityKey } from '../actions/entity-key.ts';
import { hashed, isFile } from './evidence.ts';
import type { InvestigationsCore, InvestigationsServiceDeps } from './investigations.core.ts';
import { type Steps, waitingClosed } from './investigation-state.ts';
import type { Launcher } from './launchers.ts';
import { needsApproval } from './verdicts.ts';

/** At most this many new alerts are named when a rejected proposal is made again. */
const NEWS_MAX_ALERTS = 3;
/** At most this many threats left over are named in the conclusion. */
const LEFT_OVER_SHOWN = 10;

/** Who proposed an action, for the log of an investigation that joins it. */
const proposer = (action: Pick<ActionsTable, 'investigation_id' | 'requested_by'>): string => (action.investigation_id !== null ? `investigation ${action.investigation_id}` : action.requested_by);

/** What became of one threat's remediation, for the conclusion: "web-1: /var/tmp/x (stop and quarantine file rejected: not ours)". */
function leftOver(entity: InvestigationEntitiesTable & { device_name: string }, action: ActionsTable | undefined): string {
  const what = `${entity.device_name}: ${entity.path ?? entity.value}`;
  if (!action) return `${what} (nothing proposed)`;
  const label = ACTION_CATALOGUE[action.type as ActionType].label.toLowerCase();
  const why = action.status === 'failed' ? `: ${(JSON.parse(action.result ?? '{}') as { error?: string }).error ?? 'no reason given'}`
    : action.status === 'rejected' && action.decision_comment ? `: ${action.decision_comment}` : '';
  return `${what} (${label} ${action.status.replaceAll('_', ' ')}${why.slice(0, 200)})`;
}

/**
 * The steps that act on the threats: propose their remediation (remediate),
 * then follow those actions until each has ended and say how the
 * investigation ended (wait).
 */
export function createRemediationSteps(deps: InvestigationsServiceDeps, core: InvestigationsCore): Pick<Steps, 'remediate' | 'wait'> {
  const { repo, indicators, actions, clock } = deps;
  const { engine, automationLevel, latestReport, launchersOn } = core;

  /**
   * What is new about an entity since an analyst rejected its remediation
   * on its device: alerts received since that name it (by SHA-256 or path),
   * a verdict that went from suspicious to malicious, a block indicator for
   * its hash added since. Nothing new: it is not proposed again.
   */
  async function newSince(trx: Db, entity: InvestigationEntitiesTable, rejected: ActionsTable): Promise<string[]> {
    const since = rejected.decided_at ?? rejected.updated_at;
    const news: string[] = [];
    for (const alert of await repo.alertsNamingSince(trx, entity, since, NEWS_MAX_ALERTS)) news.push(`alert ${alert.id} ("${alert.title}") names it`);
    if (entity.verdict === 'malicious' && rejected.comment?.startsWith('suspicious')) news.push(`its verdict is now malicious (${entity.reason}); it was suspicious`);
    for (const block of await indicators.blocksAddedSince(trx, entity.value, since)) news.push(`block indicator "${block.title}" added`);
    return news;
  }

  /** The actions an investigation follows: those linked to its entities, its own or another's that it joined. */
  async function followedActions(trx: Db, entities: readonly InvestigationEntitiesTable[]): Promise<Map<string, ActionsTable>> {
    const linked = [...new Set(entities.flatMap((e) => (e.action_id === null ? [] : [e.action_id])))];
    return new Map((await repo.actionsByIds(trx, linked)).map((a) => [a.id, a]));
  }

  /** Why the investigation ended, for its summary: what is left and why, or what was looked at when nothing was found. */
  async function conclusionOf(trx: Db, status: InvestigationStatus, result: string, entities: readonly InvestigationEntitiesTable[], rows: readonly ActionsTable[]): Promise<string> {
    if (status === 'no_threats_found') {
      const counts = new Map<string, number>();
      for (const { kind } of entities) counts.set(kind, (counts.get(kind) ?? 0) + 1);
      const looked = [...counts].map(([kind, n]) => `${n} ${kind.replaceAll('_', ' ')}${n === 1 ? '' : 's'}`);
      return `No threats found: ${looked.length ? `${looked.join(', ')} looked at, none malicious or suspicious` : 'the alerts named nothing to judge, and the device reported nothing suspicious'}`;
    }
    const byId = new Map(rows.map((a) => [a.id, a]));
    const left = entities.filter((e) => (e.verdict === 'malicious' || e.verdict === 'suspicious') && !['completed', 'undone'].includes(byId.get(e.action_id ?? '')?.status ?? ''));
    const summary = `${result.charAt(0).toUpperCase()}${result.slice(1)}`;
    if (left.length === 0) return summary;
    const names = new Map((await repo.devices(trx, [...new Set(left.map((e) => e.device_id))])).map((d) => [d.id, d.name]));
    const shown = left.slice(0, LEFT_OVER_SHOWN).map((e) => leftOver({ ...e, device_name: names.get(e.device_id) ?? e.device_id }, byId.get(e.action_id ?? '')));
    return `${summary}. Left: ${shown.join('; ')}${left.length > LEFT_OVER_SHOWN ? `; and ${left.length - LEFT_OVER_SHOWN} more` : ''}`;
  }

  return {
    /**
     * Proposes a quarantine for each malicious or suspicious file: queued or
     * pending approval as the device group's automation level says. The same
     * remediation already open on that device (another investigation's, an
     * analyst's) is joined, not proposed twice, and followed as this
     * investigation's own. A remediation an analyst rejected there is not
     * proposed again unless something is new since, and then says what.
     */
    async remediate(trx, inv) {
      const proposed: ActionsTable[] = [];
      const notes: string[] = [];
      let joined = 0;
      const entities = await repo.entities(trx, inv.id);
      const followed = await followedActions(trx, entities);
      // Each device's launchers, as its latest evidence shows them.
      const launchers = new Map<string, Map<string, { launcher: Launcher; launches: string }>>();
      for (const deviceId of new Set(entities.filter((e) => !isFile(e)).map((e) => e.device_id))) {
        const report = await latestReport(trx, inv, deviceId);
        launchers.set(deviceId, report === null ? new Map() : launchersOn(deviceId, report, entities));
      }
      const link = (entity: InvestigationEntitiesTable, actionId: string) => repo.updateEntity(trx, entity.id, { action_id: actionId });
      // Every investigation proposes in one order (device, file, kind): two that propose the same actions at
      // the same time then wait on each other's first one instead of each holding one the other needs (a deadlock).
      const order = (e: InvestigationEntitiesTable) => `${e.device_id}\u0000${e.value}\u0000${e.kind}`;
      for (const entity of [...entities].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))) {
        if (entity.verdict !== 'malicious' && entity.verdict !== 'suspicious') continue;
        // A rejected remediation is looked at again when the investigation runs again: new evidence may have come since.
        const current = entity.action_id === null ? null : followed.get(entity.action_id) ?? null;
        if (entity.action_id !== null && current?.status !== 'rejected') continue;
        const device = await repo.device(trx, entity.device_id);
        const level = await automationLevel(trx, device.group_id);
        if (level === 'none') {
          notes.push(`${device.name}: its device group has no automated response`);
          continue;
        }
        let type: ActionType;
        let target: { name: string; path?: string; sha256?: string };
        let parameters: Record<string, string | boolean> = {};
        let path: string;
        // Quarantining a file and stopping-and-quarantining it are one remediation to the analyst who rejected either.
        let sameRemediation: readonly ActionType[] = FILE_QUARANTINE_TYPES;
        if (isFile(entity) && !hashed(entity)) {
          notes.push(`${device.name}: ${entity.path ?? entity.value} not proposed: the device has not hashed it, and a quarantine needs its SHA-256`);
          continue;
        }
        if (isFile(entity)) {
          path = entity.path ?? entity.value;
          // A running process is ended before its executable is quarantined.
          type = entity.kind === 'process' ? 'stop_and_quarantine_file' : 'quarantine_file';
          target = { name: basename(path), path, sha256: entity.value };
        } else {
          // A launcher is removed as the device's latest evidence shows it; gone from it, there is nothing to propose.
          const found = launchers.get(entity.device_id)?.get(`${entity.kind}\u0000${entity.value}`);
          if (found === undefined) {
            notes.push(`${device.name}: ${entity.value} not proposed: the device's latest evidence no longer shows it launching a malicious file`);
            continue;
          }
          ({ type, entity: target, parameters } = found.launcher);
          path = found.launcher.what;
          sameRemediation = [type];
        }
        let comment = `${entity.verdict}: ${entity.reason}`;
        let renewedBy: string | null = null;
        const key = storedEntityKey(type, target, parameters);
        const last = key === null ? undefined : await actions.lastClosedIn(trx, entity.device_id, sameRemediation, key);
        if (current !== null && last !== undefined && last.status !== 'rejected') {
          // Proposed again elsewhere since, and that ended: follow what was last done.
          if (last.id !== current.id) await link(entity, last.id);
          continue;
        }
        if (last?.status === 'rejected') {
          const news = await newSince(trx, entity, last);
          if (news.length === 0) {
            if (entity.action_id !== last.id) {
              await link(entity, last.id);
              notes.push(`${device.name}: ${type} of ${path} not proposed again: ${last.decided_by ?? 'an analyst'} rejected it as action ${last.id} (proposed by ${proposer(last)}) and nothing is new since`);
            }
            continue;
          }
          renewedBy = news.join('; ');
          comment += `; proposed again after ${last.decided_by ?? 'an analyst'} rejected action ${last.id}, new since: ${renewedBy}`;
        }
        try {
          const action = await actions.createIn(trx, engine, {
            type, deviceId: entity.device_id, source: 'automated_investigation', investigationId: inv.id,
            status: needsApproval(level, entity.verdict, entity.path) ? 'pending_approval' : 'queued', entity: target, parameters, comment,
          });
          await link(entity, action.id);
          proposed.push(action);
          if (renewedBy !== null) notes.push(`${device.name}: ${type} of ${path} proposed again as action ${action.id}: ${renewedBy}`);
        } catch (error) {
          if (!(error instanceof QuellError)) throw error;
          const openId = error.code === 'action_already_open' ? error.actions?.[0]?.id : undefined;
          const [open] = openId === undefined ? [] : await repo.actionsByIds(trx, [openId]);
          if (open) {
            // The same remediation is open already: this investigation follows that one.
            await link(entity, open.id);
            joined++;
            notes.push(`${device.name}: ${type} of ${path} already proposed by ${proposer(open)} as action ${open.id}`);
            continue;
          }
          notes.push(`${device.name}: ${error.message}`);
        }
      }
      const pending = proposed.filter((a) => a.status === 'pending_approval').length;
      const result = `${proposed.length} action${proposed.length === 1 ? '' : 's'} proposed (${proposed.length - pending} automatic, ${pending} pending approval)`
        + `${joined ? `, ${joined} already proposed` : ''}${notes.length ? `; ${notes.join('; ')}` : ''}`;
      return { result, next: 'wait' };
    },

    /** Follows the investigation's actions until each has ended, then says how it ended. */
    async wait(trx, inv) {
      const now = clock.now();
      // The remediations its entities are linked to: its own, and those of others it joined instead of proposing them twice.
      const entities = await repo.entities(trx, inv.id);
      const rows = [...(await followedActions(trx, entities)).values()];
      const threats = entities.filter((e) => e.verdict === 'malicious' || e.verdict === 'suspicious').length;
      const pending = rows.some((a) => a.status === 'pending_approval');
      if (rows.some((a) => isStatusIn(OPEN_ACTION_STATUSES, a.status))) {
        const status: InvestigationStatus = pending ? 'pending_action' : 'running';
        const waiting = pending ? { waiting_since: inv.waiting_since ?? now } : waitingClosed(inv, now);
        const changed = status !== inv.status;
        return { result: changed ? (pending ? 'waiting for analysts to decide pending actions' : 'actions approved; waiting for them to be carried out') : null, next: 'wait', patch: { status, ...waiting } };
      }
      const done = rows.filter((a) => a.status === 'completed' || a.status === 'undone').length;
      const expired = rows.filter((a) => a.status === 'expired').length;
      const status: InvestigationStatus = threats === 0 ? 'no_threats_found'
        : done === rows.length && rows.length === threats ? 'remediated'
          : done > 0 ? 'partially_remediated'
            : expired > 0 && expired === rows.length ? 'terminated_by_system'
              : 'partially_remediated';
      const result = `${status.replaceAll('_', ' ')}: ${done} of ${threats} threat${threats === 1 ? '' : 's'} remediated${expired ? `, ${expired} expired without a decision` : ''}`;
      return { result, next: 'done', patch: { status, ended_at: now, ...waitingClosed(inv, now), conclusion: await conclusionOf(trx, status, result, entities, rows) } };
    },
  };
}
