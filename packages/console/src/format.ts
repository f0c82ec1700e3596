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

const thisYear = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const otherYear = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
/** "1 Dec, 17:20" this year, "3 Nov 2025" before: short enough for a table cell; the full time goes in its title. */
export function formatCompactDateTime(iso: string | null, now = Date.now()): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return (date.getFullYear() === new Date(now).getFullYear() ? thisYear : otherYear).format(date);
}

/**
 * The part of an id that tells it from its neighbours: ids are time-ordered
 * (UUIDv7), so rows made together share their first characters and differ in
 * the last. Short ids (`INV-1001`) stay whole.
 */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const shortId = (id: string): string => (id.length > 13 ? `…${id.slice(-8)}` : id);

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
