import { basename } from 'node:path';
import {
  ACTION_CATALOGUE, type ActionType, type AlertSeverity, type AutomationLevel, type Evidence, type EvidenceReport, FILE_QUARANTINE_TYPES,
  INVESTIGATION_ENDED, INVESTIGATION_PROBLEMS_MAX, type Investigation, type InvestigationStatus, type ListInvestigationsQuery, OPEN_ACTION_STATUSES, type Verdict, isStatusIn,
} from '@quell/contracts';
import { storedEntityKey } from '../actions/entity-key.ts';
import { type Actor, inScope, requirePermission, systemActor } from '../../actor.ts';
import type { ActionsTable, AlertsTable, InvestigationEntitiesTable, InvestigationsTable } from '../../db/schema.ts';
import { type Db, type Store, groupScope } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import { presentAction, storedParameters } from '../actions/actions.presenter.ts';
import type { ActionsService } from '../actions/actions.service.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { SettingsService } from '../settings/settings.service.ts';
import {
  type AlertFile, type FileHashes, SHA256, alertNames, evidenceOf, evidencePaths, fileKey, hashed, isFile, launcherEntity, persistenceNaming, processTree,
} from './evidence.ts';
import { type Launcher, launchersOf } from './launchers.ts';
import { type FileFacts, fileVerdict, inTempFolder, needsApproval } from './verdicts.ts';

/** Devices of no group get the cautious level: every remediation waits for an analyst. */
const UNGROUPED_LEVEL: AutomationLevel = 'semi_any_folder';
/** Finding the same file on this many other devices or more is not followed without an analyst. */
const EXPANSION_LIMIT = 10;
/** How long one step may hold an investigation before another server may take it over. */
const LEASE_MS = 60_000;
/** How long an investigation waits for its device's evidence before going on without it. */
const EVIDENCE_WAIT_MS = 2 * 60_000;
/** How many times the device is asked for evidence when its answers fail, before going on without it. */
const EVIDENCE_ATTEMPTS = 3;
/** How many times a step that cannot run is tried in a row, and how long it waits before each retry. */
const STEP_ATTEMPTS = 3;
const STEP_RETRY_MS = 5_000;
/** How often a waiting investigation looks at its actions again. */
const WAIT_POLL_MS = 1000;
const SEVERITY_RANK: Record<AlertSeverity, number> = { informational: 0, low: 1, medium: 2, high: 3 };
/** At most this many files' verdicts are written out in the log, each with its reason. */
const VERDICTS_LOGGED = 10;
/** At most this many new alerts are named when a rejected proposal is made again. */
const NEWS_MAX_ALERTS = 3;

const iso = (ms: number): string => new Date(ms).toISOString();
/** Whether an evidence request asked for exactly these files. */
const asksFor = (request: ActionsTable, paths: readonly string[]): boolean => {
  const asked = (storedParameters(request) as { paths?: string[] }).paths ?? [];
  return asked.length === paths.length && asked.every((path, i) => path === paths[i]);
};

export function presentInvestigation(row: InvestigationsTable, now: number): Investigation {
  const waiting = row.waiting_ms + (row.waiting_since === null ? 0 : (row.ended_at ?? now) - row.waiting_since);
  return {
    id: row.id, status: row.status as InvestigationStatus, deviceId: row.device_id, deviceName: row.device_name, deviceGroupId: row.group_id,
    startedBy: row.started_by, startedAt: iso(row.started_at), endedAt: row.ended_at === null ? null : iso(row.ended_at),
    waitingSeconds: Math.floor(waiting / 1000), updatedAt: iso(row.updated_at),
    problems: (JSON.parse(row.problems ?? '[]') as StoredProblem[]).map((p) => ({ step: p.step, at: iso(p.at), reason: p.reason })),
    conclusion: row.conclusion ?? null,
  };
}

/** What became of one threat's remediation, for the conclusion: "web-1: /var/tmp/x (stop and quarantine file rejected: not ours)". */
function leftOver(entity: InvestigationEntitiesTable & { device_name: string }, action: ActionsTable | undefined): string {
  const what = `${entity.device_name}: ${entity.path ?? entity.value}`;
  if (!action) return `${what} (nothing proposed)`;
  const label = ACTION_CATALOGUE[action.type as ActionType].label.toLowerCase();
  const why = action.status === 'failed' ? `: ${(JSON.parse(action.result ?? '{}') as { error?: string }).error ?? 'no reason given'}`
    : action.status === 'rejected' && action.decision_comment ? `: ${action.decision_comment}` : '';
  return `${what} (${label} ${action.status.replaceAll('_', ' ')}${why.slice(0, 200)})`;
}

interface StoredProblem { step: string; at: number; reason: string }

/** The investigation's problems with one more, keeping the newest few; reasons are cut to a readable length. */
function withProblem(row: InvestigationsTable, step: string, at: number, reason: string): string {
  const kept = JSON.parse(row.problems ?? '[]') as StoredProblem[];
  return JSON.stringify([...kept, { step, at, reason: reason.slice(0, 1000) }].slice(-INVESTIGATION_PROBLEMS_MAX));
}

/**
 * The steps that may be left behind when they keep failing, and the step
 * the investigation goes on with: without evidence it judges from the
 * alerts; without following the files elsewhere it remediates here. The
 * others are the investigation itself: when they cannot run it has failed.
 */
const STEP_FALLBACK: Partial<Record<StepName, StepName>> = { evidence: 'verdicts', expand: 'remediate', expand_decided: 'remediate', evidence_elsewhere: 'remediate' };

type StepName = 'collect' | 'evidence' | 'verdicts' | 'expand' | 'expand_decided' | 'evidence_elsewhere' | 'remediate' | 'wait';
const FIRST_STEP: StepName = 'collect';

/** A large expansion waiting for an analyst: the devices it would add, and the decision once made. */
interface Expansion {
  found: Array<{ deviceId: string; deviceName: string; groupId: string | null; path: string | null; value: string; sha1?: string | null; md5?: string | null; verdict: string; reason: string }>;
  askedAt: number;
  decision: { approved: boolean; by: string } | null;
}
/** What a step did: its line in the log (none for an unchanged wait), the next step, and the row's new fields. */
interface StepOutcome { result: string | null; next: StepName | 'done'; patch?: Partial<InvestigationsTable> }

/**
 * Automated investigations. An alert starts one on its device, or joins the
 * one running there. Each investigation runs as a sequence of durable steps
 * — collect the evidence, give each file a verdict, look for the same files
 * on other devices, propose remediation, wait for the actions — and each
 * step runs in one transaction together with the record that it ran, by the
 * one server process that holds the investigation's lease: a restart
 * resumes at the step that had not committed, and no step runs twice.
 */
export function createInvestigationsService(deps: { store: Store; actions: ActionsService; audit: AuditService; settings: SettingsService; clock: Clock; ids: Ids; owner: string }) {
  const { store, actions, audit, settings, clock, ids, owner } = deps;
  const engine = systemActor('Automated investigation');

  async function automationLevel(db: Db, groupId: string | null): Promise<AutomationLevel> {
    if (groupId === null) return UNGROUPED_LEVEL;
    const group = await db.selectFrom('device_groups').select('automation_level').where('id', '=', groupId).executeTakeFirst();
    return (group?.automation_level as AutomationLevel | undefined) ?? UNGROUPED_LEVEL;
  }

  async function log(trx: Db, investigationId: string, step: string, startedAt: number, result: string): Promise<void> {
    await trx.insertInto('investigation_log').values({ id: ids.next(), investigation_id: investigationId, step, started_at: startedAt, ended_at: clock.now(), result }).execute();
  }

  /** Opens an investigation on the device (or returns the one running there) and links the alerts to it. */
  async function openFor(trx: Db, device: { id: string; name: string; group_id: string | null }, startedBy: string, alertIds: string[]): Promise<InvestigationsTable> {
    const now = clock.now();
    let row = await trx.selectFrom('investigations').selectAll().where('device_id', '=', device.id).where('step', '<>', 'done').executeTakeFirst();
    if (!row) {
      row = {
        id: ids.next(), device_id: device.id, device_name: device.name, group_id: device.group_id, status: 'running', step: 'collect', started_by: startedBy,
        started_at: now, ended_at: null, updated_at: now, waiting_ms: 0, waiting_since: null, run_after: now, locked_by: null, locked_until: null, pending_expansion: null,
        problems: null, step_attempts: 0, conclusion: null, failed_step: null,
      };
      await trx.insertInto('investigations').values(row).execute();
      await audit.record(trx, startedBy === engine.name ? engine : systemActor(startedBy), { kind: 'investigation.start', targetType: 'investigation', targetId: row.id, after: { deviceId: device.id } });
    } else if (row.step === 'wait') {
      // New evidence for a running investigation: it goes through the steps again (entities already judged stay as they are).
      await trx.updateTable('investigations').set({ step: 'collect', run_after: now, updated_at: now }).where('id', '=', row.id).execute();
    }
    for (const alertId of alertIds) {
      await trx.insertInto('investigation_alerts').values({ investigation_id: row.id, alert_id: alertId }).onConflict((oc) => oc.doNothing()).execute();
    }
    return row;
  }

  /** The files the investigation's alerts name, each with the alert's severity and any multi-engine detections. */
  async function filesOfAlerts(trx: Db, investigationId: string): Promise<AlertFile[]> {
    const alerts = await trx.selectFrom('alerts').innerJoin('investigation_alerts', 'investigation_alerts.alert_id', 'alerts.id')
      .select(['alerts.device_id', 'alerts.severity', 'alerts.evidence']).where('investigation_alerts.investigation_id', '=', investigationId).execute();
    const files: AlertFile[] = [];
    for (const alert of alerts) {
      for (const e of JSON.parse(alert.evidence) as Evidence[]) {
        if (e.kind !== 'file' && e.kind !== 'process') continue;
        const file = {
          deviceId: alert.device_id, severity: alert.severity as AlertSeverity, path: e.path ?? null,
          sha256: e.sha256?.toLowerCase() ?? null, sha1: e.sha1?.toLowerCase() ?? null, md5: e.md5?.toLowerCase() ?? null,
          detections: e.kind === 'file' ? e.detections ?? null : null,
        };
        if (file.sha256 !== null || file.sha1 !== null || file.md5 !== null || file.path !== null) files.push(file);
      }
    }
    return files;
  }

  async function entitiesOf(trx: Db, investigationId: string): Promise<InvestigationEntitiesTable[]> {
    return trx.selectFrom('investigation_entities').selectAll().where('investigation_id', '=', investigationId).orderBy('id').execute();
  }

  /** The indicator for any of a file's hashes in a device group's scope: allow wins over block, block over audit. */
  async function indicatorFor(trx: Db, hashes: FileHashes, groupId: string | null): Promise<{ action: 'allow' | 'audit' | 'block' | 'block_and_remediate'; title: string } | null> {
    const now = clock.now();
    const known = (['sha256', 'sha1', 'md5'] as const).flatMap((type) => (hashes[type] ? [{ type, value: hashes[type] }] : []));
    if (known.length === 0) return null;
    const rows = await trx.selectFrom('indicators').select(['action', 'title', 'device_group_ids'])
      .where((eb) => eb.or(known.map((h) => eb.and([eb('type', '=', h.type), eb('value', '=', h.value)]))))
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])).execute();
    const applies = rows.filter((row) => {
      const groups = JSON.parse(row.device_group_ids) as string[];
      return groups.length === 0 || (groupId !== null && groups.includes(groupId));
    });
    for (const action of ['allow', 'block_and_remediate', 'block', 'audit'] as const) {
      const found = applies.find((row) => row.action === action);
      if (found) return { action, title: found.title };
    }
    return null;
  }

  /** On how many devices a hash was seen: in their alerts or in their evidence. */
  async function devicesWith(trx: Db, sha256: string): Promise<number> {
    const [alerted, sighted] = await Promise.all([
      trx.selectFrom('alert_evidence').innerJoin('alerts', 'alerts.id', 'alert_evidence.alert_id').select('alerts.device_id').distinct()
        .where('alert_evidence.kind', '=', 'sha256').where('alert_evidence.value', '=', sha256).execute(),
      trx.selectFrom('file_sightings').select('device_id').where('sha256', '=', sha256).execute(),
    ]);
    return new Set([...alerted, ...sighted].map((row) => row.device_id)).size;
  }

  /** Keeps where the device's evidence shows each hash, for how common it is in the fleet. */
  async function recordSightings(trx: Db, deviceId: string, report: EvidenceReport): Promise<void> {
    const now = clock.now();
    const seen = new Map<string, string>();
    for (const f of report.files) if (f.sha256 !== null) seen.set(f.sha256, f.path);
    for (const p of report.processes) if (p.sha256 !== null && !seen.has(p.sha256)) seen.set(p.sha256, p.exe);
    const rows = [...seen].map(([sha256, path]) => ({ sha256, device_id: deviceId, path: path.slice(0, 4096), first_seen: now, last_seen: now }));
    for (let i = 0; i < rows.length; i += 100) {
      await trx.insertInto('file_sightings').values(rows.slice(i, i + 100))
        .onConflict((oc) => oc.columns(['sha256', 'device_id']).doUpdateSet((eb) => ({ path: eb.ref('excluded.path'), last_seen: eb.ref('excluded.last_seen') }))).execute();
    }
  }

  /**
   * What is new about an entity since an analyst rejected its remediation
   * on its device: alerts received since that name it (by SHA-256 or path),
   * a verdict that went from suspicious to malicious, a block indicator for
   * its hash added since. Nothing new: it is not proposed again.
   */
  async function newSince(trx: Db, entity: InvestigationEntitiesTable, rejected: ActionsTable): Promise<string[]> {
    const since = rejected.decided_at ?? rejected.updated_at;
    const news: string[] = [];
    const alerts = await trx.selectFrom('alerts').innerJoin('alert_evidence', 'alert_evidence.alert_id', 'alerts.id').select(['alerts.id', 'alerts.title']).distinct()
      .where('alerts.device_id', '=', entity.device_id).where('alerts.received_at', '>', since)
      .where((eb) => eb.or([
        eb.and([eb('alert_evidence.kind', '=', 'sha256'), eb('alert_evidence.value', '=', entity.value)]),
        ...(entity.path === null ? [] : [eb.and([eb('alert_evidence.kind', '=', 'path'), eb('alert_evidence.value', '=', entity.path)])]),
      ])).orderBy('alerts.id').limit(NEWS_MAX_ALERTS).execute();
    for (const alert of alerts) news.push(`alert ${alert.id} ("${alert.title}") names it`);
    if (entity.verdict === 'malicious' && rejected.comment?.startsWith('suspicious')) news.push(`its verdict is now malicious (${entity.reason}); it was suspicious`);
    const blocks = await trx.selectFrom('indicators').select('title').where('type', '=', 'sha256').where('value', '=', entity.value)
      .where('action', 'in', ['block', 'block_and_remediate']).where('created_at', '>', since).orderBy('created_at').execute();
    for (const block of blocks) news.push(`block indicator "${block.title}" added`);
    return news;
  }

  /** Who proposed an action, for the log of an investigation that joins it. */
  const proposer = (action: Pick<ActionsTable, 'investigation_id' | 'requested_by'>): string => (action.investigation_id !== null ? `investigation ${action.investigation_id}` : action.requested_by);

  /** The actions an investigation follows: those linked to its entities, its own or another's that it joined. */
  async function followedActions(trx: Db, entities: readonly InvestigationEntitiesTable[]): Promise<Map<string, ActionsTable>> {
    const linked = [...new Set(entities.flatMap((e) => (e.action_id === null ? [] : [e.action_id])))];
    if (linked.length === 0) return new Map();
    return new Map((await trx.selectFrom('actions').selectAll().where('id', 'in', linked).execute()).map((a) => [a.id, a]));
  }

  /** Adds the devices where the investigation's files were also found, each file judged again against that device's indicators. */
  async function addFound(trx: Db, inv: InvestigationsTable, found: Expansion['found']): Promise<StepOutcome> {
    for (const f of found) {
      // A file judged malicious by its hash alone is malicious everywhere; an allow indicator in the other device's scope still wins.
      const indicator = await indicatorFor(trx, { sha256: SHA256.test(f.value) ? f.value : null, sha1: f.sha1 ?? null, md5: f.md5 ?? null }, f.groupId);
      const judged = indicator?.action === 'allow' ? { verdict: 'no_threats_found', reason: `allowed by indicator "${indicator.title}"` } : { verdict: f.verdict, reason: `the same file as on ${inv.device_name} (${f.reason})` };
      await trx.insertInto('investigation_entities').values({
        id: ids.next(), investigation_id: inv.id, device_id: f.deviceId, kind: 'file', value: f.value, path: f.path, sha1: f.sha1 ?? null, md5: f.md5 ?? null,
        verdict: judged.verdict, reason: judged.reason, facts: JSON.stringify([`the same file as on ${inv.device_name}`]), action_id: null,
      }).execute();
    }
    const names = [...new Set(found.map((f) => f.deviceName))];
    return { result: names.length === 0 ? 'not found on other devices' : `found on ${names.length} other device${names.length === 1 ? '' : 's'}: ${names.join(', ')}`, next: 'evidence_elsewhere' };
  }

  /** The latest usable evidence report a device sent the investigation (its own device's by default), or null: none came, or none could be read. */
  async function latestReport(trx: Db, inv: InvestigationsTable, deviceId = inv.device_id): Promise<EvidenceReport | null> {
    const answered = await trx.selectFrom('actions').selectAll().where('investigation_id', '=', inv.id).where('type', '=', 'collect_evidence').where('device_id', '=', deviceId)
      .where('status', '=', 'completed').orderBy('requested_at', 'desc').orderBy('id', 'desc').limit(EVIDENCE_ATTEMPTS).execute();
    for (const action of answered) {
      const report = evidenceOf(action);
      if (report.ok) return report.value;
    }
    return null;
  }

  /** The launchers of the malicious files on a device, from its evidence report, by their entity (kind and value), each with the file it launches. */
  function launchersOn(deviceId: string, report: EvidenceReport, entities: readonly InvestigationEntitiesTable[]): Map<string, { launcher: Launcher; launches: string }> {
    const paths = [...new Set(entities.filter((e) => isFile(e) && e.verdict === 'malicious' && e.device_id === deviceId && e.path !== null).map((e) => e.path!))];
    const found = new Map<string, { launcher: Launcher; launches: string }>();
    for (const [launches, launchers] of launchersOf(report, paths)) {
      for (const launcher of launchers) {
        const { kind, value } = launcherEntity(launcher);
        if (!found.has(`${kind}\u0000${value}`)) found.set(`${kind}\u0000${value}`, { launcher, launches });
      }
    }
    return found;
  }

  /** Adds the launchers of the malicious files on a device that are not entities yet; returns how many. */
  async function addLaunchers(trx: Db, inv: InvestigationsTable, deviceId: string, report: EvidenceReport): Promise<number> {
    const entities = await entitiesOf(trx, inv.id);
    const present = new Set(entities.filter((e) => e.device_id === deviceId).map((e) => `${e.kind}\u0000${e.value}`));
    let added = 0;
    for (const [key, { launcher, launches }] of launchersOn(deviceId, report, entities)) {
      if (present.has(key)) continue;
      const { kind, value } = launcherEntity(launcher);
      await trx.insertInto('investigation_entities').values({
        id: ids.next(), investigation_id: inv.id, device_id: deviceId, kind, value, path: launcher.entity.path ?? null,
        sha1: null, md5: null, verdict: 'malicious', reason: `${launcher.what} launches ${launches}, which is malicious`, facts: null, action_id: null,
      }).execute();
      added++;
    }
    return added;
  }

  /**
   * Gives the files the alerts know only by SHA-1, MD5 or path their SHA-256,
   * from the device's evidence: when the file at that path still has the
   * hashes the alert gives (one already known by its SHA-256 is merged into
   * that one); and the files known by SHA-256 their SHA-1 and MD5. Returns
   * what it did, in words.
   */
  async function hashOnDevice(trx: Db, entities: readonly InvestigationEntitiesTable[], report: EvidenceReport): Promise<string[]> {
    const done: string[] = [];
    for (const entity of entities.filter((e) => isFile(e) && e.path !== null)) {
      const file = report.files.find((f) => f.path === entity.path);
      if (!file?.sha256) continue;
      if (hashed(entity)) {
        // Its other hashes, for indicators and alerts that know it by those.
        if (file.sha256 === entity.value && (entity.sha1 === null || entity.md5 === null)) {
          await trx.updateTable('investigation_entities').set({ sha1: entity.sha1 ?? file.sha1 ?? null, md5: entity.md5 ?? file.md5 ?? null }).where('id', '=', entity.id).execute();
        }
        continue;
      }
      const differs = entity.sha1 !== null && file.sha1 !== entity.sha1 ? 'SHA-1' : entity.md5 !== null && file.md5 !== entity.md5 ? 'MD5' : null;
      if (differs !== null) {
        done.push(`${entity.path} no longer has the ${differs} the alert gives: judged as the alert knows it`);
        continue;
      }
      const same = entities.find((e) => e.device_id === entity.device_id && e.kind === entity.kind && e.value === file.sha256);
      if (same) {
        await trx.updateTable('investigation_entities').set({ sha1: same.sha1 ?? file.sha1 ?? null, md5: same.md5 ?? file.md5 ?? null }).where('id', '=', same.id).execute();
        await trx.deleteFrom('investigation_entities').where('id', '=', entity.id).execute();
      } else {
        await trx.updateTable('investigation_entities').set({ value: file.sha256, sha1: file.sha1 ?? entity.sha1, md5: file.md5 ?? entity.md5 }).where('id', '=', entity.id).execute();
      }
      done.push(`${entity.path} is SHA-256 ${file.sha256}`);
    }
    return done;
  }

  /** Everything known about a file on a device: from the alerts that name it, its device's evidence (when `report` is that device's), indicators and the fleet. */
  async function factsOf(
    trx: Db, entity: Pick<InvestigationEntitiesTable, 'device_id' | 'value' | 'sha1' | 'md5' | 'path'>, groupId: string | null, alertFiles: readonly AlertFile[], report: EvidenceReport | null,
  ): Promise<FileFacts> {
    const sha256 = SHA256.test(entity.value) ? entity.value : null;
    const severity = alertFiles.reduce<AlertSeverity | null>((top, f) => (top === null || SEVERITY_RANK[f.severity] > SEVERITY_RANK[top] ? f.severity : top), null);
    const detections = alertFiles.reduce<FileFacts['detections']>((top, f) => (f.detections && (top === null || f.detections.positives > top.positives) ? f.detections : top), null);
    const process = report?.processes.find((p) => (entity.path !== null && p.exe === entity.path) || (sha256 !== null && p.sha256 === sha256));
    const file = entity.path === null ? undefined : report?.files.find((f) => f.path === entity.path && f.sha256 !== null && (sha256 === null || f.sha256 === sha256));
    return {
      sha256, path: entity.path, severity, detections,
      indicator: await indicatorFor(trx, { sha256, sha1: entity.sha1, md5: entity.md5 }, groupId),
      owner: file?.owner ?? process?.owner ?? null,
      pid: process?.pid ?? null,
      launchers: report === null || entity.path === null ? null : persistenceNaming(report, entity.path),
      devices: sha256 === null ? null : await devicesWith(trx, sha256),
    };
  }

  const STEPS: Record<StepName, (trx: Db, inv: InvestigationsTable) => Promise<StepOutcome>> = {
    /**
     * The files named in the investigation's alerts, one entity per device
     * and file: by SHA-256, or until the device hashes it by the SHA-1, MD5
     * or path the alert gives.
     */
    async collect(trx, inv) {
      const entities = await entitiesOf(trx, inv.id);
      let added = 0;
      for (const file of await filesOfAlerts(trx, inv.id)) {
        if (entities.some((e) => isFile(e) && alertNames(file, e))) continue;
        const entity: InvestigationEntitiesTable = {
          id: ids.next(), investigation_id: inv.id, device_id: file.deviceId, kind: 'file', value: fileKey(file), path: file.path,
          sha1: file.sha1, md5: file.md5, verdict: null, reason: null, facts: null, action_id: null,
        };
        await trx.insertInto('investigation_entities').values(entity).execute();
        entities.push(entity);
        added++;
      }
      const alerts = await trx.selectFrom('investigation_alerts').select((eb) => eb.fn.countAll<number>().as('n')).where('investigation_id', '=', inv.id).executeTakeFirstOrThrow();
      return { result: `${added} new file${added === 1 ? '' : 's'} from ${Number(alerts.n)} alert${Number(alerts.n) === 1 ? '' : 's'}`, next: 'evidence' };
    },

    /**
     * Asks the device's agent for evidence (a collect_evidence action: running
     * processes, persistence, the current hash of the files the alerts name)
     * and waits for it a while; a device without an agent, or one that does
     * not answer in time, is investigated from its alerts alone. An answer
     * that failed or does not match the evidence schema is a problem on the
     * summary, and the device is asked again, EVIDENCE_ATTEMPTS times in all.
     */
    async evidence(trx, inv) {
      const agent = await trx.selectFrom('agents').select('device_id').where('device_id', '=', inv.device_id).where('revoked_at', 'is', null).executeTakeFirst();
      if (!agent) return { result: 'no agent on the device: its alerts are the evidence', next: 'verdicts' };
      const entities = (await entitiesOf(trx, inv.id)).filter((e) => e.device_id === inv.device_id);
      const paths = evidencePaths(entities.flatMap((e) => (e.path !== null && isFile(e) ? [e.path] : [])));
      const asked = (await trx.selectFrom('actions').selectAll().where('investigation_id', '=', inv.id).where('type', '=', 'collect_evidence')
        .where('device_id', '=', inv.device_id).orderBy('requested_at', 'desc').orderBy('id', 'desc').limit(EVIDENCE_ATTEMPTS * 4).execute())
        .filter((a) => asksFor(a, paths));
      const ask = async (result: string, patch?: Partial<InvestigationsTable>): Promise<StepOutcome> => {
        await actions.createIn(trx, engine, {
          type: 'collect_evidence', deviceId: inv.device_id, source: 'automated_investigation', investigationId: inv.id, status: 'queued',
          entity: { name: inv.device_name }, parameters: { paths },
        });
        return { result, next: 'evidence', ...(patch ? { patch } : {}) };
      };
      const latest = asked[0];
      if (!latest) return ask('asked the agent for evidence');
      if (isStatusIn(OPEN_ACTION_STATUSES, latest.status) && clock.now() - latest.requested_at < EVIDENCE_WAIT_MS) return { result: null, next: 'evidence' };
      if (latest.status !== 'completed' && latest.status !== 'failed') {
        const why = isStatusIn(OPEN_ACTION_STATUSES, latest.status) ? `The device did not answer within ${EVIDENCE_WAIT_MS / 60_000} minutes` : `The request for evidence ended ${latest.status.replace('_', ' ')}`;
        return { result: `no evidence from the device (${latest.status}): its alerts are the evidence`, next: 'verdicts', patch: { problems: withProblem(inv, 'evidence', clock.now(), why) } };
      }
      const answer = evidenceOf(latest);
      if (!answer.ok) {
        // Failed answers in a row, this one included: a good answer earlier (before new alerts) does not count.
        const failures = asked.findIndex((a) => a.status !== 'failed' && evidenceOf(a).ok);
        const attempt = failures === -1 ? asked.length : failures;
        const patch = { problems: withProblem(inv, 'evidence', clock.now(), answer.problem) };
        if (attempt < EVIDENCE_ATTEMPTS) return ask(`the evidence could not be used (attempt ${attempt} of ${EVIDENCE_ATTEMPTS}): ${answer.problem}; asked the agent again`, patch);
        return { result: `no usable evidence after ${attempt} attempts (${answer.problem}): its alerts are the evidence`, next: 'verdicts', patch };
      }
      const report = answer.value;
      await recordSightings(trx, inv.device_id, report);
      const hashedNow = await hashOnDevice(trx, entities, report);
      const missing = report.files.filter((f) => f.sha256 === null).map((f) => f.path);
      const here = (await entitiesOf(trx, inv.id)).filter((e) => e.device_id === inv.device_id);
      const known = new Set(here.map((e) => e.value));
      let found = 0;
      let leftAlone = 0;
      let tree = 0;
      // The same file may run from several paths: each is judged where it runs, a copy launched by persistence too.
      const looked = new Set<string>();
      const relatedTo = processTree(report, here);
      for (const process of report.processes) {
        if (!process.sha256 || known.has(process.sha256) || looked.has(`${process.sha256}\u0000${process.exe}`)) continue;
        looked.add(`${process.sha256}\u0000${process.exe}`);
        // Started by a file the investigation judges, or starting one: judged with it, next to it.
        if (relatedTo(process) !== null) {
          known.add(process.sha256);
          tree++;
          await trx.insertInto('investigation_entities').values({
            id: ids.next(), investigation_id: inv.id, device_id: inv.device_id, kind: 'process', value: process.sha256, path: process.exe, sha1: null, md5: null,
            verdict: null, reason: null, facts: null, action_id: null,
          }).execute();
          continue;
        }
        if (!inTempFolder(process.exe)) continue;
        found++;
        const judged = fileVerdict(await factsOf(trx, { device_id: inv.device_id, value: process.sha256, sha1: null, md5: null, path: process.exe }, inv.group_id, [], report));
        // Connected to nothing the alerts name: remediated only when the evidence alone makes it malicious (persistence, an
        // indicator, a signature), never for running from a temp folder alone — a developer's tool or a build helper does that too.
        if (judged.verdict !== 'malicious') {
          leftAlone++;
          continue;
        }
        known.add(process.sha256);
        await trx.insertInto('investigation_entities').values({
          id: ids.next(), investigation_id: inv.id, device_id: inv.device_id, kind: 'process', value: process.sha256, path: process.exe, sha1: null, md5: null,
          verdict: judged.verdict, reason: `pid ${process.pid}: ${judged.reason}`, facts: JSON.stringify(judged.facts), action_id: null,
        }).execute();
      }
      const result = `evidence from the agent: ${report.processes.length} processes and ${report.persistence.length} persistence entries looked at, ${found} running from temp or download folders`
        + (tree ? `, ${tree} started by or starting the files the alerts name` : '')
        + (leftAlone ? ` (${leftAlone} connected to nothing the alerts name, and not malicious on their own: left alone)` : '')
        + (hashedNow.length ? `; hashed on the device: ${hashedNow.join('; ')}` : '')
        + (missing.length ? `; no longer on the device: ${missing.join(', ')}` : '');
      return { result, next: 'verdicts' };
    },

    /**
     * Judges each file not judged yet by the same rules, whether an alert
     * named it or the agent found it running: on the investigated device the
     * evidence report says whether it runs (then it is a process, stopped
     * before its quarantine) and what persistence launches it. Then, for each
     * malicious file there, the launchers the report shows become entities
     * of their own, to be removed next to the file's quarantine.
     */
    async verdicts(trx, inv) {
      const files = await filesOfAlerts(trx, inv.id);
      const report = await latestReport(trx, inv);
      const counts: Record<Verdict, number> = { malicious: 0, suspicious: 0, no_threats_found: 0 };
      const judgedNow: string[] = [];
      const entities = await entitiesOf(trx, inv.id);
      for (const entity of entities) {
        if (entity.verdict !== null) continue;
        const device = await trx.selectFrom('devices').select('group_id').where('id', '=', entity.device_id).executeTakeFirstOrThrow();
        const naming = files.filter((f) => alertNames(f, entity));
        const here = entity.device_id === inv.device_id ? report : null;
        const facts = await factsOf(trx, entity, device.group_id, naming, here);
        // What no alert names is judged with the threat whose process tree it is in (judged before it: entities are judged in the order found).
        const process = here?.processes.find((p) => p.sha256 === entity.value);
        const related = naming.length > 0 || !here || !process ? null : processTree(here, entities.filter((e) => e.device_id === entity.device_id && (e.verdict === 'malicious' || e.verdict === 'suspicious')))(process);
        if (related) facts.related = { relation: related.relation, pid: related.other.pid, path: related.other.exe, verdict: related.entity.verdict as Verdict };
        const judged = fileVerdict(facts);
        entity.verdict = judged.verdict;
        const reason = facts.pid === null ? judged.reason : `pid ${facts.pid}: ${judged.reason}`;
        await trx.updateTable('investigation_entities').set({ verdict: judged.verdict, reason, facts: JSON.stringify(judged.facts), ...(facts.pid === null ? {} : { kind: 'process' }) })
          .where('id', '=', entity.id).execute();
        counts[judged.verdict]++;
        judgedNow.push(`${entity.path ?? entity.value}: ${judged.verdict.replaceAll('_', ' ')} (${reason})`);
      }
      const launchers = report === null ? 0 : await addLaunchers(trx, inv, inv.device_id, report);
      const shown = judgedNow.slice(0, VERDICTS_LOGGED).join('; ') + (judgedNow.length > VERDICTS_LOGGED ? `; and ${judgedNow.length - VERDICTS_LOGGED} more` : '');
      return {
        result: `${counts.malicious} malicious, ${counts.suspicious} suspicious, ${counts.no_threats_found} with no threats found${launchers ? `; ${launchers} persistence entr${launchers === 1 ? 'y launches' : 'ies launch'} malicious files` : ''}${shown ? `. ${shown}` : ''}`,
        next: 'expand',
      };
    },

    /** The same malicious or suspicious files named in other devices' alerts: those devices join the investigation. */
    async expand(trx, inv) {
      const entities = await entitiesOf(trx, inv.id);
      const present = new Set(entities.map((e) => `${e.device_id}:${e.value}`));
      const threats = entities.filter((e) => isFile(e) && (e.verdict === 'malicious' || e.verdict === 'suspicious'));
      const found: Array<{ source: InvestigationEntitiesTable; deviceId: string; deviceName: string; groupId: string | null; path: string | null }> = [];
      for (const threat of threats) {
        // By every hash known for it: an alert elsewhere may know the same file only by its SHA-1 or MD5.
        const hashes = [{ kind: 'sha256', value: threat.value }, { kind: 'sha1', value: threat.sha1 }, { kind: 'md5', value: threat.md5 }].filter((h): h is { kind: string; value: string } => h.value !== null);
        const elsewhere = await trx.selectFrom('alert_evidence').innerJoin('alerts', 'alerts.id', 'alert_evidence.alert_id')
          .select(['alerts.device_id', 'alerts.device_name', 'alerts.group_id', 'alerts.evidence'])
          .where((eb) => eb.or(hashes.map((h) => eb.and([eb('alert_evidence.kind', '=', h.kind), eb('alert_evidence.value', '=', h.value)]))))
          .where('alerts.device_id', '<>', threat.device_id).execute();
        for (const other of elsewhere) {
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
      if (devices.size >= EXPANSION_LIMIT) {
        const asked: Expansion = { found: found.map((f) => ({ ...f, value: f.source.value, sha1: f.source.sha1, md5: f.source.md5, verdict: f.source.verdict!, reason: f.source.reason! })), askedAt: clock.now(), decision: null };
        return {
          result: `the same files are on ${devices.size} other devices: following them there waits for an analyst's approval${already}`, next: 'expand_decided',
          patch: { pending_expansion: JSON.stringify(asked), status: 'pending_action', waiting_since: inv.waiting_since ?? clock.now() },
        };
      }
      const added = await addFound(trx, inv, found.map((f) => ({ ...f, value: f.source.value, sha1: f.source.sha1, md5: f.source.md5, verdict: f.source.verdict!, reason: f.source.reason! })));
      return { ...added, result: `${added.result}${already}` };
    },

    /** Waits for the analyst's decision on a large expansion (or its expiry), then follows it or not. */
    async expand_decided(trx, inv) {
      const expansion = JSON.parse(inv.pending_expansion ?? 'null') as Expansion | null;
      if (!expansion) return { result: null, next: 'remediate' };
      const { pendingExpiryHours } = await settings.read(trx);
      const expired = expansion.decision === null && clock.now() - expansion.askedAt > pendingExpiryHours * 3_600_000;
      if (expansion.decision === null && !expired) return { result: null, next: 'expand_decided' };
      const closeWaiting = { waiting_since: null, waiting_ms: inv.waiting_ms + (inv.waiting_since === null ? 0 : clock.now() - inv.waiting_since), status: 'running', pending_expansion: null };
      if (expansion.decision?.approved) {
        const added = await addFound(trx, inv, expansion.found);
        return { ...added, result: `expansion approved by ${expansion.decision.by}: ${added.result}`, patch: closeWaiting };
      }
      const why = expired ? 'no decision before the deadline' : `rejected by ${expansion.decision!.by}`;
      return { result: `expansion to ${new Set(expansion.found.map((f) => f.deviceId)).size} devices not followed: ${why}`, next: 'remediate', patch: closeWaiting };
    },

    /**
     * Asks each other device the investigation followed its threats to, and
     * that has an agent, for its evidence (the files named there), and waits
     * for the answers a while. On each device that answered, a threat
     * running there becomes a process (stopped before its quarantine) and
     * the persistence that launches a malicious one there is added, as on the
     * investigated device. A device that does not answer in time, or whose
     * answer cannot be used, gets its quarantines only.
     */
    async evidence_elsewhere(trx, inv) {
      const entities = await entitiesOf(trx, inv.id);
      const threats = entities.filter((e) => e.device_id !== inv.device_id && isFile(e) && (e.verdict === 'malicious' || e.verdict === 'suspicious'));
      const deviceIds = [...new Set(threats.map((e) => e.device_id))];
      const withAgents = deviceIds.length === 0 ? [] : (await trx.selectFrom('agents').innerJoin('devices', 'devices.id', 'agents.device_id').select(['agents.device_id', 'devices.name'])
        .where('agents.device_id', 'in', deviceIds).where('agents.revoked_at', 'is', null).execute());
      if (withAgents.length === 0) return { result: null, next: 'remediate' };
      const proposed: ActionsTable[] = [];
      const answers: Array<{ deviceId: string; name: string; action: ActionsTable | undefined }> = [];
      for (const { device_id: deviceId, name } of withAgents) {
        const paths = evidencePaths(entities.flatMap((e) => (e.device_id === deviceId && isFile(e) && e.path !== null ? [e.path] : [])));
        const asked = (await trx.selectFrom('actions').selectAll().where('investigation_id', '=', inv.id).where('type', '=', 'collect_evidence').where('device_id', '=', deviceId)
          .orderBy('requested_at', 'desc').orderBy('id', 'desc').limit(EVIDENCE_ATTEMPTS * 4).execute()).find((a) => asksFor(a, paths));
        if (asked === undefined) {
          proposed.push(await actions.createIn(trx, engine, {
            type: 'collect_evidence', deviceId, source: 'automated_investigation', investigationId: inv.id, status: 'queued', entity: { name }, parameters: { paths },
          }));
        }
        answers.push({ deviceId, name, action: asked });
      }
      if (proposed.length > 0) return { result: `asked ${proposed.length} other device${proposed.length === 1 ? '' : 's'} for evidence: ${answers.filter((a) => a.action === undefined).map((a) => a.name).join(', ')}`, next: 'evidence_elsewhere' };
      if (answers.some((a) => isStatusIn(OPEN_ACTION_STATUSES, a.action!.status) && clock.now() - a.action!.requested_at < EVIDENCE_WAIT_MS)) return { result: null, next: 'evidence_elsewhere' };
      const lines: string[] = [];
      for (const { deviceId, name, action } of answers) {
        const report = action!.status === 'completed' ? evidenceOf(action!) : null;
        if (report === null || !report.ok) {
          lines.push(`${name}: no usable evidence (${report === null ? action!.status.replaceAll('_', ' ') : report.problem}): its quarantines only`);
          continue;
        }
        await recordSightings(trx, deviceId, report.value);
        let running = 0;
        for (const threat of threats.filter((e) => e.device_id === deviceId && e.kind === 'file')) {
          const process = report.value.processes.find((p) => p.sha256 === threat.value || (threat.path !== null && p.exe === threat.path));
          if (!process) continue;
          await trx.updateTable('investigation_entities').set({ kind: 'process', reason: `pid ${process.pid}: ${threat.reason}` }).where('id', '=', threat.id).execute();
          running++;
        }
        const launchers = await addLaunchers(trx, inv, deviceId, report.value);
        lines.push(`${name}: ${running} running, ${launchers} persistence entr${launchers === 1 ? 'y launches' : 'ies launch'} malicious files`);
      }
      return { result: `evidence from other devices: ${lines.join('; ')}`, next: 'remediate' };
    },

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
      const entities = await entitiesOf(trx, inv.id);
      const followed = await followedActions(trx, entities);
      // Each device's launchers, as its latest evidence shows them.
      const launchers = new Map<string, Map<string, { launcher: Launcher; launches: string }>>();
      for (const deviceId of new Set(entities.filter((e) => !isFile(e)).map((e) => e.device_id))) {
        const report = await latestReport(trx, inv, deviceId);
        launchers.set(deviceId, report === null ? new Map() : launchersOn(deviceId, report, entities));
      }
      const link = (entity: InvestigationEntitiesTable, actionId: string) => trx.updateTable('investigation_entities').set({ action_id: actionId }).where('id', '=', entity.id).execute();
      // Every investigation proposes in one order (device, file, kind): two that propose the same actions at
      // the same time then wait on each other's first one instead of each holding one the other needs (a deadlock).
      const order = (e: InvestigationEntitiesTable) => `${e.device_id}\u0000${e.value}\u0000${e.kind}`;
      for (const entity of [...entities].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))) {
        if (entity.verdict !== 'malicious' && entity.verdict !== 'suspicious') continue;
        // A rejected remediation is looked at again when the investigation runs again: new evidence may have come since.
        const current = entity.action_id === null ? null : followed.get(entity.action_id) ?? null;
        if (entity.action_id !== null && current?.status !== 'rejected') continue;
        const device = await trx.selectFrom('devices').select(['group_id', 'name']).where('id', '=', entity.device_id).executeTakeFirstOrThrow();
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
          const open = openId === undefined ? undefined : await trx.selectFrom('actions').selectAll().where('id', '=', openId).executeTakeFirst();
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
      const entities = await entitiesOf(trx, inv.id);
      const rows = [...(await followedActions(trx, entities)).values()];
      const threats = entities.filter((e) => e.verdict === 'malicious' || e.verdict === 'suspicious').length;
      const pending = rows.some((a) => a.status === 'pending_approval');
      if (rows.some((a) => isStatusIn(OPEN_ACTION_STATUSES, a.status))) {
        const status: InvestigationStatus = pending ? 'pending_action' : 'running';
        const waiting = pending ? { waiting_since: inv.waiting_since ?? now } : { waiting_since: null, waiting_ms: inv.waiting_ms + (inv.waiting_since === null ? 0 : now - inv.waiting_since) };
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
      const closeWaiting = { waiting_since: null, waiting_ms: inv.waiting_ms + (inv.waiting_since === null ? 0 : now - inv.waiting_since) };
      const result = `${status.replaceAll('_', ' ')}: ${done} of ${threats} threat${threats === 1 ? '' : 's'} remediated${expired ? `, ${expired} expired without a decision` : ''}`;
      return { result, next: 'done', patch: { status, ended_at: now, ...closeWaiting, conclusion: await conclusionOf(trx, status, result, entities, rows) } };
    },
  };

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
    const devices = await trx.selectFrom('devices').select(['id', 'name']).where('id', 'in', [...new Set(left.map((e) => e.device_id))]).execute();
    const names = new Map(devices.map((d) => [d.id, d.name]));
    const shown = left.slice(0, 10).map((e) => leftOver({ ...e, device_name: names.get(e.device_id) ?? e.device_id }, byId.get(e.action_id ?? '')));
    return `${summary}. Left: ${shown.join('; ')}${left.length > 10 ? `; and ${left.length - 10} more` : ''}`;
  }

  /** Runs the next step of one investigation, if this process can take its lease. */
  async function runStep(id: string): Promise<boolean> {
    const now = clock.now();
    const claimed = await store.db.updateTable('investigations').set({ locked_by: owner, locked_until: now + LEASE_MS })
      .where('id', '=', id).where('step', '<>', 'done').where('run_after', '<=', now)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)])).executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) return false;
    try {
      await store.transaction(async (trx) => {
        const inv = await trx.selectFrom('investigations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        if (inv.locked_by !== owner || inv.step === 'done') return;
        const started = clock.now();
        const outcome = await STEPS[inv.step as StepName](trx, inv);
        if (outcome.result !== null) await log(trx, inv.id, inv.step, started, outcome.result);
        const next = outcome.next;
        await trx.updateTable('investigations').set({
          ...outcome.patch, step: next, step_attempts: 0, updated_at: clock.now(), locked_by: null, locked_until: null,
          // Staying on a step (waiting for actions or evidence) means looking again a little later.
          run_after: next === inv.step ? clock.now() + WAIT_POLL_MS : clock.now(),
        }).where('id', '=', id).where('locked_by', '=', owner).execute();
      });
    } catch (error) {
      await store.transaction((trx) => stepFailed(trx, id, now, (error as Error).message));
    }
    return true;
  }

  /**
   * A step that could not run (its transaction rolled back) is kept as a
   * problem on the summary and tried again a little later, STEP_ATTEMPTS
   * times in a row; then the investigation goes on without it where it can
   * (STEP_FALLBACK), and has failed where it cannot.
   */
  async function stepFailed(trx: Db, id: string, startedAt: number, message: string): Promise<void> {
    const inv = await trx.selectFrom('investigations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    // Only the holder of the lease writes: after a lease ran out, another server runs the step.
    if (inv.step === 'done' || inv.locked_by !== owner) return;
    const step = inv.step as StepName;
    const now = clock.now();
    const attempt = inv.step_attempts + 1;
    const problems = withProblem(inv, step, now, `could not run: ${message}`);
    const release = { locked_by: null, locked_until: null, updated_at: now, problems };
    if (attempt < STEP_ATTEMPTS) {
      await log(trx, id, step, startedAt, `could not run (attempt ${attempt} of ${STEP_ATTEMPTS}), trying again: ${message}`);
      await trx.updateTable('investigations').set({ ...release, step_attempts: attempt, run_after: now + attempt * STEP_RETRY_MS }).where('id', '=', id).execute();
      return;
    }
    const fallback = STEP_FALLBACK[step];
    if (fallback) {
      await log(trx, id, step, startedAt, `could not run ${attempt} times, going on without it: ${message}`);
      await trx.updateTable('investigations').set({ ...release, step: fallback, step_attempts: 0, run_after: now }).where('id', '=', id).execute();
      return;
    }
    await log(trx, id, 'error', startedAt, `failed: ${message}`);
    await trx.updateTable('investigations').set({
      ...release, status: 'failed', step: 'done', failed_step: step, ended_at: now, step_attempts: attempt, conclusion: `Failed: the ${step} step could not run ${attempt} times: ${message}`.slice(0, 2000),
      waiting_since: null, waiting_ms: inv.waiting_ms + (inv.waiting_since === null ? 0 : now - inv.waiting_since),
    }).where('id', '=', id).execute();
  }

  /** The devices a large expansion waits to follow, those in the actor's groups. */
  function pendingExpansionOf(row: InvestigationsTable, actor: Actor): { devices: Array<{ id: string; name: string }>; askedAt: string } | null {
    const expansion = JSON.parse(row.pending_expansion ?? 'null') as Expansion | null;
    if (!expansion || expansion.decision !== null) return null;
    const found = expansion.found.filter((f) => inScope(actor, f.groupId));
    return { devices: [...new Map(found.map((f) => [f.deviceId, { id: f.deviceId, name: f.deviceName }])).values()], askedAt: iso(expansion.askedAt) };
  }

  async function findVisible(actor: Actor, id: string): Promise<InvestigationsTable> {
    const row = await store.db.selectFrom('investigations').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !inScope(actor, row.group_id)) throw new QuellError('investigation_not_found', `No such investigation: ${id}`);
    return row;
  }

  return {
    /** Called inside the transaction that stores an alert: starts or joins the device's investigation unless its group has no automated response. */
    async onAlert(trx: Db, alert: AlertsTable): Promise<void> {
      if ((await automationLevel(trx, alert.group_id)) === 'none') return;
      await openFor(trx, { id: alert.device_id, name: alert.device_name, group_id: alert.group_id }, engine.name, [alert.id]);
    },

    /** Starts an investigation by hand on a device, over its open alerts of the last 30 days. */
    async start(actor: Actor, deviceId: string): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      const row = await store.transaction(async (trx) => {
        const device = await trx.selectFrom('devices').select(['id', 'name', 'group_id']).where('id', '=', deviceId).executeTakeFirst();
        if (!device || !inScope(actor, device.group_id)) throw new QuellError('device_not_found', `No such device: ${deviceId}`);
        const alerts = await trx.selectFrom('alerts').select('id').where('device_id', '=', deviceId).where('status', '<>', 'resolved')
          .where('received_at', '>=', clock.now() - 30 * 86_400_000).execute();
        return openFor(trx, device, actor.name, alerts.map((a) => a.id));
      });
      return presentInvestigation(row, clock.now());
    },

    /** Runs every due step this process can take; the job calls it. Returns how many steps ran. */
    async runDue(): Promise<number> {
      let ran = 0;
      for (let round = 0; round < 50; round++) {
        const due = await store.db.selectFrom('investigations').select('id').where('step', '<>', 'done').where('run_after', '<=', clock.now())
          .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', clock.now())])).orderBy('run_after').limit(50).execute();
        let progressed = 0;
        for (const { id } of due) if (await runStep(id)) progressed++;
        ran += progressed;
        if (progressed === 0) break;
      }
      return ran;
    },

    async list(actor: Actor, query: ListInvestigationsQuery = {}): Promise<Investigation[]> {
      requirePermission(actor, 'investigations:read');
      const now = clock.now();
      let q = store.db.selectFrom('investigations').selectAll().where(groupScope('group_id', actor.groupIds));
      if (query.alertId !== undefined) q = q.where('id', 'in', store.db.selectFrom('investigation_alerts').select('investigation_id').where('alert_id', '=', query.alertId));
      return (await q.orderBy('started_at', 'desc').limit(500).execute()).map((row) => presentInvestigation(row, now));
    },

    async get(actor: Actor, id: string) {
      requirePermission(actor, 'investigations:read');
      const row = await findVisible(actor, id);
      const [alerts, entities, logRows, actionRows] = await Promise.all([
        store.db.selectFrom('investigation_alerts').select('alert_id').where('investigation_id', '=', id).execute(),
        store.db.selectFrom('investigation_entities').innerJoin('devices', 'devices.id', 'investigation_entities.device_id').selectAll('investigation_entities')
          .select(['devices.name as device_name', 'devices.group_id as device_group_id']).where('investigation_id', '=', id).orderBy('investigation_entities.id').execute(),
        store.db.selectFrom('investigation_log').selectAll().where('investigation_id', '=', id).orderBy('started_at').orderBy('id').execute(),
        // Its own actions and the ones it joined (another investigation or an analyst had proposed the same).
        store.db.selectFrom('actions').selectAll().where((eb) => eb.or([
          eb('investigation_id', '=', id),
          eb('id', 'in', eb.selectFrom('investigation_entities').select('action_id').where('investigation_id', '=', id).where('action_id', 'is not', null)),
        ])).orderBy('requested_at').orderBy('id').execute(),
      ]);
      // Following its files can take an investigation to devices of other groups: a scoped reader sees only theirs.
      const visible = entities.filter((e) => inScope(actor, e.device_group_id));
      const expansion = JSON.parse(row.pending_expansion ?? 'null') as Expansion | null;
      const elsewhere = [...entities.map((e) => ({ name: e.device_name, groupId: e.device_group_id })), ...(expansion?.found ?? []).map((f) => ({ name: f.deviceName, groupId: f.groupId }))];
      const ours = new Set(elsewhere.filter((d) => inScope(actor, d.groupId)).map((d) => d.name));
      const hidden = new Map(elsewhere.filter((d) => !inScope(actor, d.groupId) && !ours.has(d.name)).map((d) => [d.name, 'a device in another group']));
      // The log names what it joined or did not propose again on those devices: their paths, actions and investigations are kept from the reader too.
      const visiblePaths = new Set(visible.map((e) => e.path));
      for (const e of entities.filter((e) => !inScope(actor, e.device_group_id))) {
        if (e.path !== null && !visiblePaths.has(e.path)) hidden.set(e.path, 'a file there');
        if (e.action_id !== null) hidden.set(e.action_id, 'an action there');
      }
      for (const a of actionRows.filter((a) => !inScope(actor, a.group_id))) {
        hidden.set(a.id, 'an action there');
        if (a.investigation_id !== null && a.investigation_id !== id) hidden.set(a.investigation_id, 'an investigation there');
      }
      return {
        investigation: presentInvestigation(row, clock.now()),
        alertIds: alerts.map((a) => a.alert_id),
        entities: visible.map((e) => ({
          deviceId: e.device_id, deviceName: e.device_name, kind: e.kind, value: e.value, path: e.path, verdict: e.verdict as Verdict | null, reason: e.reason,
          facts: JSON.parse(e.facts ?? '[]') as string[], actionId: e.action_id,
        })),
        log: logRows.map((l) => ({ step: l.step, startedAt: iso(l.started_at), endedAt: iso(l.ended_at), result: withoutNames(l.result, hidden) })),
        actions: actionRows.filter((a) => inScope(actor, a.group_id)).map(presentAction),
        pendingExpansion: pendingExpansionOf(row, actor),
      };
    },

    /** An analyst's decision on following the investigation's files to many other devices. */
    async decideExpansion(actor: Actor, id: string, approved: boolean, comment: string | null): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      await findVisible(actor, id);
      const updated = await store.transaction(async (trx) => {
        const row = await trx.selectFrom('investigations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        const expansion = JSON.parse(row.pending_expansion ?? 'null') as Expansion | null;
        if (!expansion || expansion.decision !== null) throw new QuellError('no_pending_expansion', `Investigation ${id} is not waiting for an expansion decision`);
        const decided: Expansion = { ...expansion, decision: { approved, by: actor.name } };
        await trx.updateTable('investigations').set({ pending_expansion: JSON.stringify(decided), run_after: clock.now(), updated_at: clock.now() }).where('id', '=', id).execute();
        await audit.record(trx, actor, { kind: 'investigation.expansion', targetType: 'investigation', targetId: id, after: { approved, devices: new Set(expansion.found.map((f) => f.deviceId)).size, ...(comment ? { comment } : {}) } });
        return { ...row, pending_expansion: JSON.stringify(decided) };
      });
      return presentInvestigation(updated, clock.now());
    },

    /** Ends an investigation by hand: its pending actions are cancelled, and nothing more is proposed. */
    /** Runs a failed investigation again from the step it could not get past (from the start when that is not known). */
    async retry(actor: Actor, id: string, comment: string | null): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      await findVisible(actor, id);
      const resumed = await store.transaction(async (trx) => {
        const now = clock.now();
        const current = await trx.selectFrom('investigations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        if (current.status !== 'failed') throw new QuellError('investigation_not_failed', `Investigation ${id} is ${current.status.replaceAll('_', ' ')}: only a failed investigation can be retried`);
        // A device has one running investigation: its new alerts join it, and it would be this one's twin.
        const running = await trx.selectFrom('investigations').select('id').where('device_id', '=', current.device_id).where('step', '<>', 'done').executeTakeFirst();
        if (running) throw new QuellError('investigation_running', `Investigation ${running.id} already runs on ${current.device_name}: it takes up what this one left`);
        const step = current.failed_step ?? FIRST_STEP;
        const patch: Partial<InvestigationsTable> = {
          status: 'running', step, failed_step: null, step_attempts: 0, run_after: now, ended_at: null, conclusion: null, updated_at: now,
        };
        // Two analysts retrying at once: the second finds it running.
        const updated = await trx.updateTable('investigations').set(patch).where('id', '=', id).where('status', '=', 'failed').executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 0) throw new QuellError('investigation_not_failed', `Investigation ${id} is no longer failed: someone retried it`);
        await log(trx, id, 'retry', now, `retried by ${actor.name} from the ${step} step${comment ? `: ${comment}` : ''}`);
        await audit.record(trx, actor, { kind: 'investigation.retry', targetType: 'investigation', targetId: id, before: { status: 'failed' }, after: { status: 'running', step, ...(comment ? { comment } : {}) } });
        return { ...current, ...patch };
      });
      return presentInvestigation(resumed, clock.now());
    },

    async terminate(actor: Actor, id: string, comment: string | null): Promise<Investigation> {
      requirePermission(actor, 'investigations:manage');
      const row = await findVisible(actor, id);
      if (INVESTIGATION_ENDED.includes(row.status as InvestigationStatus)) throw new QuellError('investigation_ended', `Investigation ${id} has ended: ${row.status}`);
      const pending = await store.db.selectFrom('actions').select('id').where('investigation_id', '=', id).where('status', '=', 'pending_approval').execute();
      if (pending.length > 0) await actions.cancel({ ...actor, groupIds: null }, { ids: pending.map((p) => p.id), comment: comment ?? 'Investigation terminated' });
      const ended = await store.transaction(async (trx) => {
        const now = clock.now();
        const current = await trx.selectFrom('investigations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        if (current.step === 'done') throw new QuellError('investigation_ended', `Investigation ${id} has ended: ${current.status}`);
        const patch: Partial<InvestigationsTable> = {
          status: 'terminated_by_user', step: 'done', ended_at: now, updated_at: now, conclusion: `Terminated by ${actor.name}${comment ? `: ${comment}` : ''}`,
          waiting_since: null, waiting_ms: current.waiting_ms + (current.waiting_since === null ? 0 : now - current.waiting_since),
        };
        await trx.updateTable('investigations').set(patch).where('id', '=', id).execute();
        await log(trx, id, 'terminate', now, `terminated by ${actor.name}${comment ? `: ${comment}` : ''}`);
        await audit.record(trx, actor, { kind: 'investigation.terminate', targetType: 'investigation', targetId: id, before: { status: current.status }, after: { status: 'terminated_by_user', ...(comment ? { comment } : {}) } });
        return { ...current, ...patch };
      });
      return presentInvestigation(ended, clock.now());
    },
  };
}
export type InvestigationsService = ReturnType<typeof createInvestigationsService>;

/** A log line with what the reader may not see (names of devices in other groups, their files and actions) put in general words, the longest first. */
function withoutNames(text: string, hidden: ReadonlyMap<string, string>): string {
  if (hidden.size === 0) return text;
  return [...hidden].sort(([a], [b]) => b.length - a.length).reduce((line, [name, words]) => line.split(name).join(words), text);
}
