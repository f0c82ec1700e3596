import { Badge, Text, makeStyles, tokens } from '@fluentui/react-components';
import type { Action, ActionStatus } from '@quell/contracts';
import { formatDuration, statusLabel } from '../format.ts';

const COLORS: Record<ActionStatus, 'brand' | 'danger' | 'important' | 'informative' | 'severe' | 'subtle' | 'success' | 'warning'> = {
  pending_approval: 'warning',
  queued: 'informative',
  in_progress: 'brand',
  completed: 'success',
  failed: 'danger',
  rejected: 'subtle',
  expired: 'subtle',
  cancelled: 'subtle',
  timed_out: 'severe',
  undone: 'informative',
};

const useStyles = makeStyles({
  cell: { display: 'inline-flex', gap: tokens.spacingHorizontalS, alignItems: 'center', whiteSpace: 'nowrap' },
  badge: { whiteSpace: 'nowrap' },
  pastDue: { color: tokens.colorPaletteRedForeground1, fontWeight: tokens.fontWeightSemibold },
});

export function StatusBadge({ status }: { status: ActionStatus }) {
  return <Badge appearance="tint" color={COLORS[status]} className={useStyles().badge}>{statusLabel(status)}</Badge>;
}

/**
 * Status, and for a pending action the time left to decide. A pending action past
 * its deadline that the expiry job has not reached yet says so plainly.
 */
export function StatusWithDeadline({ action, now }: { action: Action; now: number }) {
  const styles = useStyles();
  if (action.status !== 'pending_approval' || !action.expiresAt) return <StatusBadge status={action.status} />;
  const left = Date.parse(action.expiresAt) - now;
  return (
    <span className={styles.cell}>
      <StatusBadge status={action.status} />
      {left > 0
        ? <Text size={200} wrap={false}>Expires in {formatDuration(left)}</Text>
        : <Text size={200} wrap={false} className={styles.pastDue}>Past due by {formatDuration(-left)}</Text>}
    </span>
  );
}
