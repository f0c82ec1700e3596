import {
  type AlertSeverity, type Evidence, type EvidenceReport, OPEN_ACTION_STATUSES, type Verdict, isStatusIn,
} from '@quell/contracts';
import type { ActionsTable, InvestigationEntitiesTable, InvestigationsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { storedParameters } from '../actions/actions.presenter.ts';
import {
  type AlertFile, SHA256, alertNames, evidenceOf, evidencePaths, fileKey, hashed, isFile, launcherEntity, persistenceNaming, processTree,
} from './evidence.ts';
import { EVIDENCE_ATTEMPTS, type InvestigationsCore, type InvestigationsServiceDeps } from './investigations.core.ts';
import { type StepOutcome, type Steps, withProblem } from './investigation-state.ts';
import { type FileFacts, fileVerdict, inTempFolder } from './verdicts.ts';

/** How long an investigation waits for its device's evidence before going on without it. */
const EVIDENCE_WAIT_MS = 2 * 60_000;
const SEVERITY_RANK: Record<AlertSeverity, number> = { informational: 0, low: 1, medium: 2, high: 3 };
/** At most this many files' verdicts are written out in the log, each with its reason. */
const VERDICTS_LOGGED = 10;

/** Whether an evidence request asked for exactly these files. */
const asksFor = (request: ActionsTable, paths: readonly string[]): boolean => {
  const asked = (storedParameters(request) as { paths?: string[] }).paths ?? [];
  return asked.length === paths.length && asked.every((path, i) => path === paths[i]);
};

/**
 * The steps that gather and judge the evidence: the files the alerts name
 * (collect), what the device's agent reports of them (evidence), a verdict
 * for each (verdicts), and what the other devices the investigation followed
 * its files to report (evidence_elsewhere).
 */
export function createEvidenceSteps(deps: InvestigationsServiceDeps, core: InvestigationsCore): Pick<Steps, 'collect' | 'evidence' | 'verdicts' | 'evidence_elsewhere'> {
  const { repo, actions, clock, ids } = deps;
  const { engine, indicatorFor, latestReport, launchersOn } = core;

  /** The files the investigation's alerts name, each with the alert's severity and any multi-engine detections. */
  async function filesOfAlerts(trx: Db, investigationId: string): Promise<AlertFile[]> {
    const files: AlertFile[] = [];
    for (const alert of await repo.alerts(trx, investigationId)) {
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

  /** Keeps where the device's evidence shows each hash, for how common it is in the fleet. */
  async function recordSightings(trx: Db, deviceId: string, report: EvidenceReport): Promise<void> {
    const now = clock.now();
    const seen = new Map<string, string>();
    for (const f of report.files) if (f.sha256 !== null) seen.set(f.sha256, f.path);
    for (const p of report.processes) if (p.sha256 !== null && !seen.has(p.sha256)) seen.set(p.sha256, p.exe);
    await repo.upsertSightings(trx, [...seen].map(([sha256, path]) => ({ sha256, device_id: deviceId, path: path.slice(0, 4096), first_seen: now, last_seen: now })));
  }

  /** Adds the launchers of the malicious files on a device that are not entities yet; returns how many. */
  async function addLaunchers(trx: Db, inv: InvestigationsTable, deviceId: string, report: EvidenceReport): Promise<number> {
    const entities = await repo.entities(trx, inv.id);
    const present = new Set(entities.filter((e) => e.device_id === deviceId).map((e) => `${e.kind}\u0000${e.value}`));
    let added = 0;
    for (const [key, { launcher, launches }] of launchersOn(deviceId, report, entities)) {
      if (present.has(key)) continue;
      const { kind, value } = launcherEntity(launcher);
      await repo.addEntity(trx, {
        id: ids.next(), investigation_id: inv.id, device_id: deviceId, kind, value, path: launcher.entity.path ?? null,
        sha1: null, md5: null, verdict: 'malicious', reason: `${launcher.what} launches ${launches}, which is malicious`, facts: null, action_id: null,
      });
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
          await repo.updateEntity(trx, entity.id, { sha1: entity.sha1 ?? file.sha1 ?? null, md5: entity.md5 ?? file.md5 ?? null });
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
        await repo.updateEntity(trx, same.id, { sha1: same.sha1 ?? file.sha1 ?? null, md5: same.md5 ?? file.md5 ?? null });
        await repo.deleteEntity(trx, entity.id);
      } else {
        await repo.updateEntity(trx, entity.id, { value: file.sha256, sha1: file.sha1 ?? entity.sha1, md5: file.md5 ?? entity.md5 });
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
      devices: sha256 === null ? null : await repo.deviceCountWith(trx, sha256),
    };
  }

  /** Asks a device's agent for the evidence of these files, for the investigation. */
  const askForEvidence = (trx: Db, inv: InvestigationsTable, deviceId: string, name: string, paths: string[]): Promise<ActionsTable> => actions.createIn(trx, engine, {
    type: 'collect_evidence', deviceId, source: 'automated_investigation', investigationId: inv.id, status: 'queued', entity: { name }, parameters: { paths },
  });

  return {
    /**
     * The files named in the investigation's alerts, one entity per device
     * and file: by SHA-256, or until the device hashes it by the SHA-1, MD5
     * or path the alert gives.
     */
    async collect(trx, inv) {
      const entities = await repo.entities(trx, inv.id);
      let added = 0;
      for (const file of await filesOfAlerts(trx, inv.id)) {
        if (entities.some((e) => isFile(e) && alertNames(file, e))) continue;
        const entity: InvestigationEntitiesTable = {
          id: ids.next(), investigation_id: inv.id, device_id: file.deviceId, kind: 'file', value: fileKey(file), path: file.path,
          sha1: file.sha1, md5: file.md5, verdict: null, reason: null, facts: null, action_id: null,
        };
        await repo.addEntity(trx, entity);
        entities.push(entity);
        added++;
      }
      const alerts = await repo.alertCount(trx, inv.id);
      return { result: `${added} new file${added === 1 ? '' : 's'} from ${alerts} alert${alerts === 1 ? '' : 's'}`, next: 'evidence' };
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
      if (!(await repo.hasAgent(trx, inv.device_id))) return { result: 'no agent on the device: its alerts are the evidence', next: 'verdicts' };
      const entities = (await repo.entities(trx, inv.id)).filter((e) => e.device_id === inv.device_id);
      const paths = evidencePaths(entities.flatMap((e) => (e.path !== null && isFile(e) ? [e.path] : [])));
      const asked = (await repo.evidenceRequests(trx, inv.id, inv.device_id, EVIDENCE_ATTEMPTS * 4)).filter((a) => asksFor(a, paths));
      const ask = async (result: string, patch?: Partial<InvestigationsTable>): Promise<StepOutcome> => {
        await askForEvidence(trx, inv, inv.device_id, inv.device_name, paths);
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
      const here = (await repo.entities(trx, inv.id)).filter((e) => e.device_id === inv.device_id);
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
          await repo.addEntity(trx, {
            id: ids.next(), investigation_id: inv.id, device_id: inv.device_id, kind: 'process', value: process.sha256, path: process.exe, sha1: null, md5: null,
            verdict: null, reason: null, facts: null, action_id: null,
          });
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
        await repo.addEntity(trx, {
          id: ids.next(), investigation_id: inv.id, device_id: inv.device_id, kind: 'process', value: process.sha256, path: process.exe, sha1: null, md5: null,
          verdict: judged.verdict, reason: `pid ${process.pid}: ${judged.reason}`, facts: JSON.stringify(judged.facts), action_id: null,
        });
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
      const entities = await repo.entities(trx, inv.id);
      for (const entity of entities) {
        if (entity.verdict !== null) continue;
        const device = await repo.device(trx, entity.device_id);
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
        await repo.updateEntity(trx, entity.id, { verdict: judged.verdict, reason, facts: JSON.stringify(judged.facts), ...(facts.pid === null ? {} : { kind: 'process' }) });
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
      const entities = await repo.entities(trx, inv.id);
      const threats = entities.filter((e) => e.device_id !== inv.device_id && isFile(e) && (e.verdict === 'malicious' || e.verdict === 'suspicious'));
      const withAgents = await repo.devicesWithAgents(trx, [...new Set(threats.map((e) => e.device_id))]);
      if (withAgents.length === 0) return { result: null, next: 'remediate' };
      const proposed: ActionsTable[] = [];
      const answers: Array<{ deviceId: string; name: string; action: ActionsTable | undefined }> = [];
      for (const { device_id: deviceId, name } of withAgents) {
        const paths = evidencePaths(entities.flatMap((e) => (e.device_id === deviceId && isFile(e) && e.path !== null ? [e.path] : [])));
        const asked = (await repo.evidenceRequests(trx, inv.id, deviceId, EVIDENCE_ATTEMPTS * 4)).find((a) => asksFor(a, paths));
        if (asked === undefined) proposed.push(await askForEvidence(trx, inv, deviceId, name, paths));
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
          await repo.updateEntity(trx, threat.id, { kind: 'process', reason: `pid ${process.pid}: ${threat.reason}` });
          running++;
        }
        const launchers = await addLaunchers(trx, inv, deviceId, report.value);
        lines.push(`${name}: ${running} running, ${launchers} persistence entr${launchers === 1 ? 'y launches' : 'ies launch'} malicious files`);
      }
      return { result: `evidence from other devices: ${lines.join('; ')}`, next: 'remediate' };
    },
  };
}
