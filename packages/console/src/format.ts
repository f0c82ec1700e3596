import { ACTION_CATALOGUE, type ActionSource, type ActionStatus, type ActionType, type EntityType } from '@quell/contracts';

export const STATUS_LABELS: Record<ActionStatus, string> = {
  pending_approval: 'Pending approval',
  queued: 'Queued',
  in_progress: 'In progress',
  completed: 'Completed',
  failed: 'Failed',
  rejected: 'Rejected',
  // An expiry is the system's rejection: it keeps its own status, and says what it counts as.
  expired: 'Expired (rejected)',
  cancelled: 'Cancelled',
  timed_out: 'Timed out',
  undone: 'Undone',
};

export const SOURCE_LABELS: Record<ActionSource, string> = {
  automated_investigation: 'Automated investigation',
  antivirus: 'Antivirus',
  manual: 'Manual',
  api: 'API',
  advanced_hunting: 'Advanced hunting',
  incident: 'Incident',
};

export const ENTITY_TYPE_LABELS: Record<EntityType, string> = {
  device: 'Device',
  user: 'User',
  file: 'File',
  process: 'Process',
  service: 'Service',
  driver: 'Driver',
  scheduled_task: 'Scheduled task',
  registry_key: 'Registry key',
  ip: 'IP address',
  url: 'URL',
};

export const statusLabel = (status: ActionStatus): string => STATUS_LABELS[status];
export const typeLabel = (type: ActionType): string => ACTION_CATALOGUE[type].label;

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const formatDateTime = (iso: string | null): string => (iso ? dateTime.format(new Date(iso)) : '—');

/** "6d 23h", "3h 12m", "45s": a duration short enough for a table cell. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}
