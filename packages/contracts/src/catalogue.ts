/**
 * The action catalogue: every remediation type Quell knows, what it targets,
 * how it is undone and who may undo it. Server, agent, CLI and console read
 * these tables; nobody re-types an action type string.
 */
import type { ActionStatus } from './lifecycle.ts';
import type { Role } from './roles.ts';

export const PLATFORMS = ['linux', 'windows', 'macos'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const ENTITY_TYPES = [
  'device', 'user', 'file', 'process', 'service', 'driver', 'scheduled_task', 'registry_key', 'ip', 'url',
] as const;
export type EntityType = (typeof ENTITY_TYPES)[number];

export const ACTION_SOURCES = [
  'automated_investigation', 'antivirus', 'manual', 'api', 'advanced_hunting', 'incident',
] as const;
export type ActionSource = (typeof ACTION_SOURCES)[number];

export const ACTION_TYPES = [
  'isolate_device', 'release_isolation',
  'contain_device', 'release_containment',
  'contain_user', 'release_user',
  'restrict_code_execution', 'remove_code_restriction',
  'quarantine_file', 'stop_and_quarantine_file', 'restore_file',
  'remove_registry_key', 'restore_registry_key',
  'stop_service', 'restore_service',
  'disable_driver', 'restore_driver',
  'remove_scheduled_task', 'restore_scheduled_task',
  'remove_persistence', 'restore_persistence',
  'run_antivirus_scan', 'collect_investigation_package', 'collect_evidence',
] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

export interface ActionDefinition {
  label: string;
  entityType: EntityType;
  /** The action type that reverses this one, or null when it cannot be undone. */
  undoType: ActionType | null;
  /** The lowest role allowed to undo it (meaningless when undoType is null). */
  undoRole: Role | null;
  /** True for the types that exist only as the undo of another type. */
  isUndo: boolean;
  /** The effect, in words, that stays in force on its device until undone, kept true by its agent; null for one-off actions and undos. */
  lasting: string | null;
  /** What the device is said to be in while the action is in force (the devices API's `state`), or null. */
  deviceState: 'isolation' | 'code_restriction' | 'contained_user' | null;
}

/** `satisfies Record<ActionType, …>`: a new action type does not compile until it is described here. */
export const ACTION_CATALOGUE = {
  isolate_device: { label: 'Isolate device', entityType: 'device', undoType: 'release_isolation', undoRole: 'security_operator', isUndo: false, lasting: 'isolation', deviceState: 'isolation' },
  release_isolation: { label: 'Release from isolation', entityType: 'device', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  contain_device: { label: 'Contain device', entityType: 'ip', undoType: 'release_containment', undoRole: 'security_operator', isUndo: false, lasting: null, deviceState: null },
  release_containment: { label: 'Release containment', entityType: 'ip', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  contain_user: { label: 'Contain user', entityType: 'user', undoType: 'release_user', undoRole: 'global_admin', isUndo: false, lasting: 'containment of the user', deviceState: 'contained_user' },
  release_user: { label: 'Release user', entityType: 'user', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  restrict_code_execution: { label: 'Restrict code execution', entityType: 'device', undoType: 'remove_code_restriction', undoRole: 'security_operator', isUndo: false, lasting: 'code restriction', deviceState: 'code_restriction' },
  remove_code_restriction: { label: 'Remove code execution restriction', entityType: 'device', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  quarantine_file: { label: 'Quarantine file', entityType: 'file', undoType: 'restore_file', undoRole: 'security_admin', isUndo: false, lasting: 'removal of the file', deviceState: null },
  stop_and_quarantine_file: { label: 'Stop and quarantine file', entityType: 'file', undoType: 'restore_file', undoRole: 'security_admin', isUndo: false, lasting: 'removal of the file', deviceState: null },
  restore_file: { label: 'Restore file', entityType: 'file', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  remove_registry_key: { label: 'Remove registry key', entityType: 'registry_key', undoType: 'restore_registry_key', undoRole: 'security_operator', isUndo: false, lasting: null, deviceState: null },
  restore_registry_key: { label: 'Restore registry key', entityType: 'registry_key', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  stop_service: { label: 'Stop service', entityType: 'service', undoType: 'restore_service', undoRole: 'security_operator', isUndo: false, lasting: 'stopped service', deviceState: null },
  restore_service: { label: 'Restore service', entityType: 'service', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  disable_driver: { label: 'Disable driver', entityType: 'driver', undoType: 'restore_driver', undoRole: 'security_operator', isUndo: false, lasting: null, deviceState: null },
  restore_driver: { label: 'Restore driver', entityType: 'driver', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  remove_scheduled_task: { label: 'Remove scheduled task', entityType: 'scheduled_task', undoType: 'restore_scheduled_task', undoRole: 'security_operator', isUndo: false, lasting: 'removal of the task', deviceState: null },
  restore_scheduled_task: { label: 'Restore scheduled task', entityType: 'scheduled_task', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  remove_persistence: { label: 'Remove persistence', entityType: 'file', undoType: 'restore_persistence', undoRole: 'security_operator', isUndo: false, lasting: 'removal of the persistence', deviceState: null },
  restore_persistence: { label: 'Restore persistence', entityType: 'file', undoType: null, undoRole: null, isUndo: true, lasting: null, deviceState: null },
  run_antivirus_scan: { label: 'Run antivirus scan', entityType: 'device', undoType: null, undoRole: null, isUndo: false, lasting: null, deviceState: null },
  collect_investigation_package: { label: 'Collect investigation package', entityType: 'device', undoType: null, undoRole: null, isUndo: false, lasting: null, deviceState: null },
  collect_evidence: { label: 'Collect evidence', entityType: 'device', undoType: null, undoRole: null, isUndo: false, lasting: null, deviceState: null },
} as const satisfies Record<ActionType, ActionDefinition>;

export type Support = 'supported' | 'unsupported';

const ALL: Record<Platform, Support> = { linux: 'supported', windows: 'supported', macos: 'supported' };
const WINDOWS_ONLY: Record<Platform, Support> = { linux: 'unsupported', windows: 'supported', macos: 'unsupported' };
const NOT_MAC: Record<Platform, Support> = { linux: 'supported', windows: 'supported', macos: 'unsupported' };
const LINUX_ONLY: Record<Platform, Support> = { linux: 'supported', windows: 'unsupported', macos: 'unsupported' };

/** Which action types each platform's agent can carry out. */
export const CAPABILITY_MATRIX = {
  isolate_device: ALL,
  release_isolation: ALL,
  contain_device: ALL,
  release_containment: ALL,
  contain_user: ALL,
  release_user: ALL,
  restrict_code_execution: NOT_MAC,
  remove_code_restriction: NOT_MAC,
  quarantine_file: ALL,
  stop_and_quarantine_file: ALL,
  restore_file: ALL,
  remove_registry_key: WINDOWS_ONLY,
  restore_registry_key: WINDOWS_ONLY,
  stop_service: ALL,
  restore_service: ALL,
  disable_driver: NOT_MAC,
  restore_driver: NOT_MAC,
  remove_scheduled_task: ALL,
  restore_scheduled_task: ALL,
  remove_persistence: LINUX_ONLY,
  restore_persistence: LINUX_ONLY,
  run_antivirus_scan: ALL,
  collect_investigation_package: ALL,
  collect_evidence: NOT_MAC,
} as const satisfies Record<ActionType, Record<Platform, Support>>;

/** Action types whose completed instances can be undone across devices by SHA-256. */
export const FILE_QUARANTINE_TYPES: readonly ActionType[] = ['quarantine_file', 'stop_and_quarantine_file'];

/**
 * Types carried out by every managed agent rather than the target device's
 * own: containment of an (unmanaged) device is desired state that each agent
 * enforces, including agents that enrol later, until it is released.
 */
export const FLEET_ACTION_TYPES: readonly ActionType[] = ['contain_device', 'release_containment'];

/** The statuses of an action that is still to be carried out: at most one per device, type and entity (entityKey). */
export const OPEN_ACTION_STATUSES = ['pending_approval', 'queued', 'in_progress'] as const satisfies readonly ActionStatus[];

/** The statuses of an action its agent is to carry out or is carrying out: its signed command may still be delivered. */
export const DELIVERABLE_STATUSES = ['queued', 'in_progress'] as const satisfies readonly ActionStatus[];

/**
 * The statuses of an action decided and not failed: its effect is in force
 * or about to be (containment is enforced from queued on), and an undo of
 * it can come.
 */
export const IN_FORCE_STATUSES = ['queued', 'in_progress', 'completed'] as const satisfies readonly ActionStatus[];

/** Whether `status` is one of `statuses` (a status read from a row is any string). */
export const isStatusIn = (statuses: readonly ActionStatus[], status: string): boolean => (statuses as readonly string[]).includes(status);

/**
 * What makes two actions of one type on one device the same action: the
 * file by its SHA-256 (its path when it has none), the device itself for
 * isolation and code restriction, and the entity's path and name for users,
 * services, drivers, tasks, persistence, registry keys and addresses, with
 * the line for a task or persistence removed by line (two lines of one file
 * are two actions). A second open action with the same key is a duplicate;
 * the server keeps one (a partial unique index over open statuses, on the
 * key or, when it is long, its digest). Null for types that are not
 * remediations of an entity and may repeat: undos (each is linked to its
 * original), scans, investigation packages and evidence requests. Keep it
 * the same as the backfill in the server's 0018 migration.
 */
export function entityKey(type: ActionType, entity: { name: string; path?: string | null; sha256?: string | null }, parameters: object = {}): string | null {
  const def = ACTION_CATALOGUE[type];
  if (def.isUndo || !DEDUPLICATED_TYPES.includes(type)) return null;
  const named = entity.path ? `path:${entity.path}|name:${entity.name}` : `name:${entity.name}`;
  if (BY_LINE_TYPES.includes(type)) return 'line' in parameters && typeof parameters.line === 'string' ? `${named}|line:${parameters.line}` : named;
  switch (def.entityType) {
    case 'file': return entity.sha256 ? `sha256:${entity.sha256.toLowerCase()}` : entity.path ? `path:${entity.path}` : null;
    case 'device': return 'device';
    default: return named;
  }
}
const DEDUPLICATED_TYPES: readonly ActionType[] = [
  'isolate_device', 'contain_device', 'contain_user', 'restrict_code_execution', 'quarantine_file', 'stop_and_quarantine_file',
  'remove_registry_key', 'stop_service', 'disable_driver', 'remove_scheduled_task', 'remove_persistence',
];
/** Types that act on one line of a file when `parameters.line` is given. */
const BY_LINE_TYPES: readonly ActionType[] = ['remove_scheduled_task', 'remove_persistence'];

export function isUndoable(type: ActionType): boolean {
  return ACTION_CATALOGUE[type].undoType !== null;
}

/** Isolation waits this long for an offline device; other types use the deliveryWindowHours setting. */
export const ISOLATION_DELIVERY_WINDOW_HOURS = 72;
