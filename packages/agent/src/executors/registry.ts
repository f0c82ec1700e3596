import { type ActionType, CAPABILITY_MATRIX, type Platform } from '@quell/contracts';
import type { Executor } from './executor.ts';
import { isolateDevice, releaseIsolation } from './isolation.linux.ts';
import { quarantineFile, restoreFile } from './quarantine.linux.ts';
import { containUser, releaseUser } from './contain-user.linux.ts';
import { removePersistence, restorePersistence } from './persistence.linux.ts';
import { removeScheduledTask, restoreScheduledTask } from './scheduled-task.linux.ts';
import { removeCodeRestriction, restrictCodeExecution } from './restrict-code.linux.ts';
import { restoreService, stopService } from './service.linux.ts';
import { disableDriver, restoreDriver } from './driver.linux.ts';
import { runAntivirusScan } from './antivirus-scan.linux.ts';
import { collectEvidence } from './evidence.linux.ts';
import { collectInvestigationPackage } from './investigation-package.linux.ts';
import { removeRegistryKey, restoreRegistryKey } from './registry-key.windows.ts';

/**
 * The executors of each platform. `null` means this agent version cannot
 * carry the type out yet: the agent refuses it with that reason instead of
 * pretending. A new action type does not compile until it has a cell here.
 * Containment is not a command to one device: every agent enforces it from
 * the signed containment state (containment.linux.ts).
 */
export const EXECUTORS = {
  linux: {
    isolate_device: isolateDevice,
    release_isolation: releaseIsolation,
    quarantine_file: quarantineFile,
    stop_and_quarantine_file: quarantineFile,
    restore_file: restoreFile,
    contain_device: null,
    release_containment: null,
    contain_user: containUser,
    release_user: releaseUser,
    restrict_code_execution: restrictCodeExecution,
    remove_code_restriction: removeCodeRestriction,
    remove_registry_key: null,
    restore_registry_key: null,
    stop_service: stopService,
    restore_service: restoreService,
    disable_driver: disableDriver,
    restore_driver: restoreDriver,
    remove_scheduled_task: removeScheduledTask,
    restore_scheduled_task: restoreScheduledTask,
    remove_persistence: removePersistence,
    restore_persistence: restorePersistence,
    run_antivirus_scan: runAntivirusScan,
    collect_investigation_package: collectInvestigationPackage,
    collect_evidence: collectEvidence,
  },
  // The Windows agent shares the command channel and journal; only registry keys are implemented so far.
  windows: {
    remove_registry_key: removeRegistryKey,
    restore_registry_key: restoreRegistryKey,
    isolate_device: null,
    release_isolation: null,
    quarantine_file: null,
    stop_and_quarantine_file: null,
    restore_file: null,
    contain_device: null,
    release_containment: null,
    contain_user: null,
    release_user: null,
    restrict_code_execution: null,
    remove_code_restriction: null,
    stop_service: null,
    restore_service: null,
    disable_driver: null,
    restore_driver: null,
    remove_scheduled_task: null,
    restore_scheduled_task: null,
    remove_persistence: null,
    restore_persistence: null,
    run_antivirus_scan: null,
    collect_investigation_package: null,
    collect_evidence: null,
  },
} as const satisfies Partial<Record<Platform, ExecutorTable>>;

/** One executor per type, each receiving its own type's command: a cell cannot hold another type's executor. */
type ExecutorTable = { [T in ActionType]: Executor<T> | null };

/** The executor for a type on this platform, or the reason there is none. */
export function executorFor(platform: Platform, type: ActionType): Executor | string {
  if (CAPABILITY_MATRIX[type][platform] !== 'supported') return `${type} is not supported on ${platform}`;
  const table: ExecutorTable | undefined = (EXECUTORS as Partial<Record<Platform, ExecutorTable>>)[platform];
  // The command was checked against its type's parameter schema (protocol.ts), so the executor of its type receives what it expects.
  return (table?.[type] as Executor | null | undefined) ?? `this agent version cannot carry out ${type} on ${platform} yet`;
}
