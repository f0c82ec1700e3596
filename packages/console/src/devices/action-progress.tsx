import { Button, Link as FluentLink, MessageBar, MessageBarBody, Spinner, Text, makeStyles, tokens } from '@fluentui/react-components';
import type { ActionStatus } from '@quell/contracts';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { EffectNotes } from '../action-center/effect-notes.tsx';
import { useOpenAction } from '../action-center/flyout-host.tsx';
import { StatusBadge } from '../action-center/status-badge.tsx';
import { ACTIONS_KEY, ACTION_KEY } from '../action-center/use-actions.ts';
import { formatDateTime, typeLabel } from '../format.ts';
import { usePermissions } from '../session/session.tsx';

/** Statuses after which nothing more happens to a manual action without a new decision. */
const SETTLED: readonly ActionStatus[] = ['completed', 'failed', 'timed_out', 'rejected', 'expired', 'cancelled', 'undone'];

const useStyles = makeStyles({
  card: { padding: tokens.spacingVerticalM, border: `1px solid ${tokens.colorNeutralStroke2}`, borderRadius: tokens.borderRadiusMedium, backgroundColor: tokens.colorNeutralBackground1, display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalS },
  head: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalM, flexWrap: 'wrap' },
  output: {
    margin: 0, padding: tokens.spacingVerticalS, whiteSpace: 'pre-wrap', wordBreak: 'break-all', maxHeight: '240px', overflowY: 'auto',
    fontFamily: tokens.fontFamilyMonospace, fontSize: tokens.fontSizeBase200, backgroundColor: tokens.colorNeutralBackground3,
  },
  entity: { wordBreak: 'break-all' },
  summary: { display: 'flex', gap: tokens.spacingHorizontalL, flexWrap: 'wrap' },
});

/**
 * One manual action as it moves: polled every second until it settles, then
 * its output or error as plain text (it comes from the endpoint), the package
 * download for a collection, and for containment what the fleet enforced.
 */
export function ActionProgress({ actionId, onDismiss }: { actionId: string; onDismiss: () => void }) {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const permissions = usePermissions();
  const openAction = useOpenAction();
  const detail = useQuery({
    queryKey: [ACTION_KEY, actionId],
    queryFn: () => api.getAction(actionId),
    refetchInterval: (query) => {
      const data = query.state.data;
      if (!data) return 1000;
      // Containment is desired state that agents keep reporting on: keep its summary fresh, more slowly once settled.
      if (data.enforcement) return SETTLED.includes(data.action.status) ? 5000 : 1000;
      return SETTLED.includes(data.action.status) ? false : 1000;
    },
  });
  const status = detail.data?.action.status;
  const settled = status !== undefined && SETTLED.includes(status);
  // When it settles, the device's lists and state catch up too.
  useEffect(() => {
    if (settled) void queryClient.invalidateQueries({ queryKey: [ACTIONS_KEY] });
  }, [settled, queryClient]);

  if (detail.isError) return <MessageBar intent="error"><MessageBarBody>{problemText(detail.error)}</MessageBarBody></MessageBar>;
  if (!detail.data) return <Spinner size="tiny" label="Loading the action…" />;
  const { action, enforcement, waiting } = detail.data;
  const label = `${typeLabel(action.type)}: ${action.entity.name}`;
  return (
    <div className={styles.card} role="status" aria-label={label} data-progress-id={action.id}>
      <div className={styles.head}>
        <Text weight="semibold" className={styles.entity}>{label}</Text>
        <StatusBadge status={action.status} />
        {!settled && <Spinner size="extra-tiny" aria-label="Waiting for the device" />}
        <Text size={200}>requested {formatDateTime(action.requestedAt)} by {action.requestedBy}</Text>
        <Button appearance="subtle" size="small" onClick={() => openAction(action.id)} aria-label={`Details of ${label}`}>Details</Button>
        <Button appearance="subtle" size="small" onClick={onDismiss} aria-label={`Dismiss ${label}`}>Dismiss</Button>
      </div>
      {waiting && !settled && <Text size={200}>{waiting.reason}</Text>}
      <EffectNotes detail={detail.data} />
      {action.result?.output && <pre className={styles.output} aria-label="Result">{action.result.output}</pre>}
      {action.result?.error && <pre className={styles.output} aria-label="Error">{action.result.error}</pre>}
      {action.type === 'collect_investigation_package' && action.status === 'completed' && (
        permissions.has('investigation_packages:read')
          ? <FluentLink href={api.packageUrl(action.id)} download>Download investigation package</FluentLink>
          : <Text size={200}>Your role may not download investigation packages.</Text>
      )}
      {enforcement && (
        <div aria-label="Enforcement">
          <div className={styles.summary}>
            <Text>Enforced by {enforcement.succeeded} {enforcement.succeeded === 1 ? 'agent' : 'agents'}</Text>
            <Text>Failed on {enforcement.failed}</Text>
            <Text>Waiting for {enforcement.waiting} ({enforcement.waitingOnline} online)</Text>
          </div>
          {enforcement.failures.length > 0 && (
            <ul aria-label="Enforcement failures">
              {enforcement.failures.map((f) => <li key={f.deviceId}><span className={styles.entity}>{f.deviceName}</span>: <span className={styles.entity}>{f.reason}</span></li>)}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
