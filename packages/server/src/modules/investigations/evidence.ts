import { ACTION_OUTPUT_MAX_CHARS, type AlertSeverity, EVIDENCE_MAX_PATHS, EVIDENCE_MAX_PATHS_CHARS, type EvidenceReport, EvidenceReportSchema, entityKey } from '@quell/contracts';
import { type Checked, parseJsonAs } from '@quell/contracts/checks';
import type { ActionsTable, InvestigationEntitiesTable } from '../../db/schema.ts';
import { LAUNCHER_KINDS, type Launcher, names } from './launchers.ts';

/*
 * What the alerts and a device's evidence say about the files an
 * investigation judges: how a file is keyed until its device hashes it,
 * which alerts name it, which processes and persistence entries are
 * connected to it.
 */

/** What a device answered to an evidence request: its report, or why it is none (the action failed, or the answer does not match the schema). */
export function evidenceOf(action: ActionsTable): Checked<EvidenceReport> {
  const result = JSON.parse(action.result ?? '{}') as { output?: string; error?: string };
  if (action.status === 'failed') return { ok: false, problem: result.error ?? 'the agent reported a failure without a reason' };
  const report = parseJsonAs(EvidenceReportSchema, result.output ?? '', ACTION_OUTPUT_MAX_CHARS);
  return report.ok ? report : { ok: false, problem: `The agent's answer is not a valid evidence report: ${report.problem}` };
}

/** Entities that are files: judged by the verdict rules, quarantined; the others are what launches them. */
const FILE_KINDS = ['file', 'process'];
export const isFile = (entity: InvestigationEntitiesTable): boolean => FILE_KINDS.includes(entity.kind);

/** A file or process an alert names, by whatever it knows of it. */
export interface AlertFile {
  deviceId: string; severity: AlertSeverity; path: string | null;
  sha256: string | null; sha1: string | null; md5: string | null;
  detections: { engine: string; positives: number; total: number } | null;
}
export type FileHashes = { sha256: string | null; sha1: string | null; md5: string | null };

export const SHA256 = /^[0-9a-f]{64}$/;
/** Whether a file entity is known by its SHA-256 yet (until its device hashes it, one known only by SHA-1, MD5 or path is not). */
export const hashed = (entity: InvestigationEntitiesTable): boolean => SHA256.test(entity.value);
/** A file entity's value: its SHA-256, or until the device hashes it what the alert knows it by. */
export const fileKey = (file: FileHashes & { path: string | null }): string =>
  file.sha256 ?? (file.sha1 !== null ? `sha1:${file.sha1}` : file.md5 !== null ? `md5:${file.md5}` : `path:${file.path}`);

/** Whether an alert names this entity: on its device, by any hash they share, or by path when the alert gives no hash. */
export function alertNames(file: AlertFile, entity: InvestigationEntitiesTable): boolean {
  if (file.deviceId !== entity.device_id) return false;
  if (file.sha256 !== null || file.sha1 !== null || file.md5 !== null) {
    return entity.value === fileKey(file) || file.sha256 === entity.value || (file.sha1 !== null && file.sha1 === entity.sha1) || (file.md5 !== null && file.md5 === entity.md5);
  }
  return file.path === entity.path;
}

type ReportedProcess = EvidenceReport['processes'][number];
type Relation = { relation: 'child' | 'parent'; other: ReportedProcess; entity: InvestigationEntitiesTable };

/**
 * How running processes are connected to the investigation's files on their
 * device, by the process tree in the report: started by one of them
 * (`child`), or the one that started one of them (`parent`); null when
 * neither. The processes of those files are found once, not per question.
 */
export function processTree(report: EvidenceReport, entities: readonly InvestigationEntitiesTable[]): (process: ReportedProcess) => Relation | null {
  const files = entities.filter(isFile);
  const running = report.processes.flatMap((other) => {
    const entity = files.find((e) => (e.path !== null && other.exe === e.path) || other.sha256 === e.value);
    return entity ? [{ other, entity }] : [];
  });
  const byPid = new Map(running.map((r) => [r.other.pid, r]));
  return (process) => {
    for (const pid of process.ancestors ?? []) {
      const found = byPid.get(pid);
      if (found && found.entity.value !== process.sha256) return { relation: 'child', ...found };
    }
    const started = running.find((r) => r.entity.value !== process.sha256 && r.other.ancestors?.includes(process.pid));
    return started ? { relation: 'parent', ...started } : null;
  };
}

/** The persistence entries of a report that run the executable at `path`, named for a verdict's reason ("cron /etc/crontab"). */
export function persistenceNaming(report: EvidenceReport, path: string): string[] {
  return [...new Set(report.persistence.filter((p) => p.kind !== 'kernel_module' && names(p.text, path)).map((p) => `${p.kind} ${p.source}`))];
}

/** A launcher's entity: its kind says what it is (LAUNCHER_KINDS), its value is its removal's entity key. */
export const launcherEntity = (launcher: Launcher): { kind: string; value: string } => ({
  kind: LAUNCHER_KINDS[launcher.type], value: entityKey(launcher.type, launcher.entity, launcher.parameters)!,
});

/**
 * The files an evidence request names, sorted: an agent answers
 * for at most EVIDENCE_MAX_PATHS of them, EVIDENCE_MAX_PATHS_CHARS long in
 * all; the others are judged from their alerts alone.
 */
export function evidencePaths(paths: string[]): string[] {
  const chosen: string[] = [];
  let length = 0;
  for (const path of [...new Set(paths)].sort()) {
    if (chosen.length === EVIDENCE_MAX_PATHS || length + path.length + 1 > EVIDENCE_MAX_PATHS_CHARS) break;
    chosen.push(path);
    length += path.length + 1;
  }
  return chosen;
}
