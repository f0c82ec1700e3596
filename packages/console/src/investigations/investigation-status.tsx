import { Badge } from '@fluentui/react-components';
import type { InvestigationStatus, Verdict } from '@quell/contracts';

export const INVESTIGATION_STATUS_LABELS: Record<InvestigationStatus, string> = {
  running: 'Running',
  pending_action: 'Pending action',
  remediated: 'Remediated',
  partially_remediated: 'Partially remediated',
  no_threats_found: 'No threats found',
  failed: 'Failed',
  terminated_by_user: 'Terminated by user',
  terminated_by_system: 'Terminated by system',
};

const COLORS: Record<InvestigationStatus, 'brand' | 'warning' | 'success' | 'danger' | 'subtle' | 'informative' | 'severe'> = {
  running: 'brand',
  pending_action: 'warning',
  remediated: 'success',
  partially_remediated: 'severe',
  no_threats_found: 'informative',
  failed: 'danger',
  terminated_by_user: 'subtle',
  terminated_by_system: 'subtle',
};

export function InvestigationStatusBadge({ status }: { status: InvestigationStatus }) {
  return <Badge appearance="tint" color={COLORS[status]}>{INVESTIGATION_STATUS_LABELS[status]}</Badge>;
}

export const VERDICT_LABELS: Record<Verdict, string> = { malicious: 'Malicious', suspicious: 'Suspicious', no_threats_found: 'No threats found' };
const VERDICT_COLORS: Record<Verdict, 'danger' | 'warning' | 'success'> = { malicious: 'danger', suspicious: 'warning', no_threats_found: 'success' };

export function VerdictBadge({ verdict }: { verdict: Verdict | null }) {
  if (verdict === null) return <Badge appearance="outline" color="subtle">Not yet decided</Badge>;
  return <Badge appearance="tint" color={VERDICT_COLORS[verdict]}>{VERDICT_LABELS[verdict]}</Badge>;
}
