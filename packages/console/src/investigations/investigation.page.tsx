import { Button, MessageBar, MessageBarActions, MessageBarBody, Subtitle1, Tab, TabList, Text, Title2, makeStyles, tokens } from '@fluentui/react-components';
import { INVESTIGATION_ENDED } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ActionsView } from '../action-center/actions-view.tsx';
import { useNow } from '../action-center/use-actions.ts';
import { type InvestigationDetail, api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { CommentDialog } from '../comment-dialog.tsx';
import { formatDateTime, formatDuration } from '../format.ts';
import { PageLoading } from '../layout.tsx';
import { Link } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { InvestigationStatusBadge } from './investigation-status.tsx';
import { AlertsTab, EvidenceTab, LogTab, PendingTab } from './investigation-tabs.tsx';

const useStyles = makeStyles({
  head: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalL, flexWrap: 'wrap' },
  facts: { display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalL, rowGap: tokens.spacingVerticalXS, margin: `${tokens.spacingVerticalM} 0` },
  term: { color: tokens.colorNeutralForeground2 },
  value: { margin: 0, wordBreak: 'break-all' },
  section: { display: 'block', marginTop: tokens.spacingVerticalXL },
  panel: { marginTop: tokens.spacingVerticalM },
  text: { wordBreak: 'break-all' },
  id: { wordBreak: 'break-all' },
  problems: { margin: 0, paddingLeft: tokens.spacingHorizontalL },
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TABS = { alerts: 'Alerts', evidence: 'Devices and evidence', log: 'Log', pending: 'Pending actions', actions: 'All actions' } as const;
type TabId = keyof typeof TABS;

/** An investigation of Quell's engine; any other id (an external "INV-1001") gets a plain word and the actions that carry it. */
export default function InvestigationPage({ params }: { params: Record<string, string> }) {
  const id = params.id!;
  if (!UUID.test(id)) return <ExternalInvestigation id={id} />;
  return <QuellInvestigation id={id} />;
}

function ExternalInvestigation({ id }: { id: string }) {
  const styles = useStyles();
  return (
    <>
      <Title2 as="h1">Investigation <span className={styles.id}>{id}</span></Title2>
      <MessageBar intent="info">
        <MessageBarBody>{id} is not an investigation of Quell: another tool or the proposer named it. These are the actions that carry its id.</MessageBarBody>
      </MessageBar>
      <Subtitle1 as="h2" className={styles.section}>Pending actions</Subtitle1>
      <ActionsView view="pending" filters={{ investigationId: id }} label="Pending actions of this investigation" />
      <Subtitle1 as="h2" className={styles.section}>Action history</Subtitle1>
      <ActionsView view="history" filters={{ investigationId: id }} label="Action history of this investigation" />
    </>
  );
}

function QuellInvestigation({ id }: { id: string }) {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const permissions = usePermissions();
  const now = useNow(1_000);
  const [tab, setTab] = useState<TabId>('evidence');
  const [terminating, setTerminating] = useState(false);
  const [retrying, setRetrying] = useState(false);
  const detail = useQuery({
    queryKey: ['investigation', id],
    queryFn: () => api.getInvestigation(id),
    refetchInterval: (query) => (query.state.data && INVESTIGATION_ENDED.includes(query.state.data.investigation.status) ? false : 3000),
  });
  const terminate = useMutation({
    mutationFn: (comment: string) => api.terminateInvestigation(id, comment),
    onSuccess: () => setTerminating(false),
    onSettled: () => Promise.all([queryClient.invalidateQueries({ queryKey: ['investigation', id] }), queryClient.invalidateQueries({ queryKey: ['actions'] })]),
  });
  const retry = useMutation({
    mutationFn: (comment: string) => api.retryInvestigation(id, comment),
    onSuccess: () => setRetrying(false),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['investigation', id] }),
  });
  if (detail.isPending) return <PageLoading />;
  if (detail.isError) return <MessageBar intent="error"><MessageBarBody>{problemText(detail.error)}</MessageBarBody></MessageBar>;
  const { investigation: inv, actions } = detail.data;
  const ended = INVESTIGATION_ENDED.includes(inv.status);
  const waitingMs = inv.waitingSeconds * 1000;
  // The server counts the waiting time at its own clock: the duration is never shown shorter than it.
  const durationMs = Math.max(waitingMs, (inv.endedAt ? Date.parse(inv.endedAt) : now) - Date.parse(inv.startedAt));
  const pending = actions.filter((a) => a.status === 'pending_approval');
  const fact = (term: string, value: React.ReactNode) => (
    <>
      <dt className={styles.term}>{term}</dt>
      <dd className={styles.value}>{value}</dd>
    </>
  );
  const tabLabel = (t: TabId): string => {
    if (t === 'pending') return `${TABS.pending} (${pending.length})`;
    if (t === 'alerts') return `${TABS.alerts} (${detail.data.alertIds.length})`;
    if (t === 'evidence') return `${TABS.evidence} (${detail.data.entities.length})`;
    return TABS[t];
  };

  return (
    <>
      <div className={styles.head}>
        <Title2 as="h1">Investigation on {inv.deviceName}</Title2>
        <InvestigationStatusBadge status={inv.status} />
        {permissions.has('investigations:manage') && !ended && (
          <Button onClick={() => setTerminating(true)}>Terminate</Button>
        )}
      </div>
      {inv.status === 'failed' && (
        <MessageBar intent="error" layout="multiline" aria-label="Why it failed">
          <MessageBarBody>{inv.conclusion ?? 'It failed; its log says where.'}</MessageBarBody>
          {permissions.has('investigations:manage') && (
            <MessageBarActions><Button onClick={() => setRetrying(true)}>Retry</Button></MessageBarActions>
          )}
        </MessageBar>
      )}
      <dl className={styles.facts} aria-label="Investigation summary">
        {fact('Status', <InvestigationStatusBadge status={inv.status} />)}
        {inv.conclusion !== null && fact('Why it ended', inv.conclusion)}
        {fact('Device', <Link to={`/devices/${inv.deviceId}`}>{inv.deviceName}</Link>)}
        {fact('Started by', inv.startedBy)}
        {fact('Started', formatDateTime(inv.startedAt))}
        {fact('Ended', ended ? formatDateTime(inv.endedAt) : 'Still running')}
        {fact('Duration', formatDuration(durationMs))}
        {fact('Waiting for analysts', formatDuration(waitingMs))}
        {fact('Working time', formatDuration(Math.max(0, durationMs - waitingMs)))}
        {fact('Investigation ID', inv.id)}
        {fact('Problems', inv.problems.length === 0 ? 'None' : <ProblemList problems={inv.problems} />)}
      </dl>
      {detail.data.pendingExpansion && <ExpansionDecision id={id} devices={detail.data.pendingExpansion.devices} />}
      <TabList selectedValue={tab} onTabSelect={(_, data) => setTab(data.value as TabId)}>
        {(Object.keys(TABS) as TabId[]).map((t) => <Tab key={t} value={t}>{tabLabel(t)}</Tab>)}
      </TabList>
      <div className={styles.panel} role="tabpanel" aria-label={TABS[tab]}>
        {tab === 'alerts' && <AlertsTab alertIds={detail.data.alertIds} />}
        {tab === 'evidence' && <EvidenceTab detail={detail.data} />}
        {tab === 'log' && <LogTab detail={detail.data} />}
        {tab === 'pending' && <PendingTab actions={pending} now={now} onDecided={() => void queryClient.invalidateQueries({ queryKey: ['investigation', id] })} />}
        {tab === 'actions' && <ActionsView view="history" filters={{ investigationId: id }} label="Actions of this investigation" />}
      </div>
      {retrying && (
        <CommentDialog
          title={`Retry the investigation on ${inv.deviceName}`}
          consequence="It runs again from the step it could not get past, with what it had found; fix what stopped it first (its reason is above)."
          confirmLabel="Retry"
          pending={retry.isPending}
          error={retry.error}
          onConfirm={(comment) => retry.mutate(comment)}
          onClose={() => setRetrying(false)}
        />
      )}
      {terminating && (
        <CommentDialog
          title={`Terminate the investigation on ${inv.deviceName}`}
          consequence={`It stops here: nothing more is proposed, and its ${pending.length} pending ${pending.length === 1 ? 'action is' : 'actions are'} cancelled. Actions already approved still run.`}
          confirmLabel="Terminate"
          pending={terminate.isPending}
          error={terminate.error}
          onConfirm={(comment) => terminate.mutate(comment)}
          onClose={() => setTerminating(false)}
        />
      )}
    </>
  );
}

/**
 * What went wrong on the way, newest last: an agent's answer that was not
 * what it should be, a step that could not run. Each was retried, then the
 * investigation went on with what it had.
 */
function ProblemList({ problems }: { problems: InvestigationDetail['investigation']['problems'] }) {
  const styles = useStyles();
  return (
    <ul className={styles.problems} aria-label="Problems of this investigation">
      {problems.map((p, i) => (
        <li key={i} className={styles.text}><Text weight="semibold">{p.step}</Text>, {formatDateTime(p.at)}: {p.reason}</li>
      ))}
    </ul>
  );
}

/** The investigation found its files on many other devices: following them there waits for an analyst. */
function ExpansionDecision({ id, devices }: { id: string; devices: Array<{ id: string; name: string }> }) {
  const queryClient = useQueryClient();
  const permissions = usePermissions();
  const [approve, setApprove] = useState<boolean | null>(null);
  const decide = useMutation({
    mutationFn: ({ yes, comment }: { yes: boolean; comment: string }) => api.decideExpansion(id, yes, comment),
    onSuccess: () => setApprove(null),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['investigation', id] }),
  });
  const names = devices.map((d) => d.name).join(', ');
  return (
    <MessageBar intent="warning">
      <MessageBarBody>
        The same files are on {devices.length} other devices ({names}). Following them there waits for your decision.
        {permissions.has('investigations:manage') && (
          <>
            {' '}<Button size="small" appearance="primary" onClick={() => setApprove(true)}>Follow them</Button>{' '}
            <Button size="small" onClick={() => setApprove(false)}>Do not follow</Button>
          </>
        )}
      </MessageBarBody>
      {approve !== null && (
        <CommentDialog
          title={approve ? `Follow the files to ${devices.length} devices` : `Do not follow the files to ${devices.length} devices`}
          consequence={approve ? 'Those devices join the investigation, and their copies of the files are remediated as their device groups allow.' : 'The investigation goes on with the devices it has.'}
          confirmLabel={approve ? 'Follow them' : 'Do not follow'}
          pending={decide.isPending}
          error={decide.error}
          onConfirm={(comment) => decide.mutate({ yes: approve, comment })}
          onClose={() => setApprove(null)}
        />
      )}
    </MessageBar>
  );
}
