import type { AutomationLevel, EvidenceReport } from '@quell/contracts';
import { systemActor } from '../../actor.ts';
import type { InvestigationEntitiesTable, InvestigationsTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { ActionsService } from '../actions/actions.service.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { IndicatorsRepository } from '../indicators/indicators.repository.ts';
import type { SettingsService } from '../settings/settings.service.ts';
import { type FileHashes, evidenceOf, isFile, launcherEntity } from './evidence.ts';
import type { InvestigationsRepository } from './investigations.repository.ts';
import { type Launcher, launchersOf } from './launchers.ts';

/**
 * What every part of the investigations service shares: the engine that
 * acts for it, the log, automation levels, and what several steps read —
 * indicators, the device's latest evidence, the launchers it shows.
 */

export interface InvestigationsServiceDeps {
  store: Store;
  repo: InvestigationsRepository;
  indicators: IndicatorsRepository;
  actions: ActionsService;
  audit: AuditService;
  settings: SettingsService;
  clock: Clock;
  ids: Ids;
  /** Which process this is, for the leases of the steps it runs. */
  owner: string;
}

/** Devices of no group get the cautious level: every remediation waits for an analyst. */
const UNGROUPED_LEVEL: AutomationLevel = 'semi_any_folder';
/** How many times the device is asked for evidence when its answers fail, before going on without it. */
export const EVIDENCE_ATTEMPTS = 3;
/** Which indicator decides when several apply to a file: allow wins over block, block over audit. */
const INDICATOR_PRIORITY = ['allow', 'block_and_remediate', 'block', 'audit'] as const;

export function createInvestigationsCore(deps: InvestigationsServiceDeps) {
  const { repo, indicators, clock, ids } = deps;

  return {
    engine: systemActor('Automated investigation'),

    async automationLevel(db: Db, groupId: string | null): Promise<AutomationLevel> {
      if (groupId === null) return UNGROUPED_LEVEL;
      return (await repo.automationLevel(db, groupId) as AutomationLevel | undefined) ?? UNGROUPED_LEVEL;
    },

    async log(trx: Db, investigationId: string, step: string, startedAt: number, result: string): Promise<void> {
      await repo.addLog(trx, { id: ids.next(), investigation_id: investigationId, step, started_at: startedAt, ended_at: clock.now(), result });
    },

    /** The indicator for any of a file's hashes in a device group's scope: allow wins over block, block over audit. */
    async indicatorFor(trx: Db, hashes: FileHashes, groupId: string | null): Promise<{ action: typeof INDICATOR_PRIORITY[number]; title: string } | null> {
      const known = (['sha256', 'sha1', 'md5'] as const).flatMap((type) => (hashes[type] ? [{ type, value: hashes[type] }] : []));
      const applies = await indicators.activeFor(trx, known, groupId, clock.now(), INDICATOR_PRIORITY);
      for (const action of INDICATOR_PRIORITY) {
        const found = applies.find((row) => row.action === action);
        if (found) return { action, title: found.title };
      }
      return null;
    },

    /** The latest usable evidence report a device sent the investigation (its own device's by default), or null: none came, or none could be read. */
    async latestReport(trx: Db, inv: InvestigationsTable, deviceId = inv.device_id): Promise<EvidenceReport | null> {
      for (const action of await repo.evidenceRequests(trx, inv.id, deviceId, EVIDENCE_ATTEMPTS, 'completed')) {
        const report = evidenceOf(action);
        if (report.ok) return report.value;
      }
      return null;
    },

    /** The launchers of the malicious files on a device, from its evidence report, by their entity (kind and value), each with the file it launches. */
    launchersOn(deviceId: string, report: EvidenceReport, entities: readonly InvestigationEntitiesTable[]): Map<string, { launcher: Launcher; launches: string }> {
      const paths = [...new Set(entities.filter((e) => isFile(e) && e.verdict === 'malicious' && e.device_id === deviceId && e.path !== null).map((e) => e.path!))];
      const found = new Map<string, { launcher: Launcher; launches: string }>();
      for (const [launches, launchers] of launchersOf(report, paths)) {
        for (const launcher of launchers) {
          const { kind, value } = launcherEntity(launcher);
          if (!found.has(`${kind}\u0000${value}`)) found.set(`${kind}\u0000${value}`, { launcher, launches });
        }
      }
      return found;
    },
  };
}
export type InvestigationsCore = ReturnType<typeof createInvestigationsCore>;
