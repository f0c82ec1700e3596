import { Badge } from '@fluentui/react-components';
import { ALERT_STATUS_LABELS, type AlertStatus } from './alert-labels.ts';

const STATUS_COLOURS: Record<AlertStatus, 'warning' | 'brand' | 'success'> = { new: 'warning', in_progress: 'brand', resolved: 'success' };

export function AlertStatusBadge({ status }: { status: AlertStatus }) {
  return <Badge appearance="tint" color={STATUS_COLOURS[status]}>{ALERT_STATUS_LABELS[status]}</Badge>;
}
