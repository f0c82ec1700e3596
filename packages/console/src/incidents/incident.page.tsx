import {
  Button, MessageBar, MessageBarBody, Subtitle1, Tab, TabList, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text, Title2, makeStyles, tokens,
} from '@fluentui/react-components';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ActionsView } from '../action-center/actions-view.tsx';
import type { Column } from '../action-center/columns.tsx';
import { type IncidentDetail, api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime } from '../format.ts';
import { InvestigationStatusBadge, VERDICT_LABELS } from '../investigations/investigation-status.tsx';
import { PageLoading } from '../layout.tsx';
import { Link } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { SeverityBadge } from './incidents.page.tsx';

const useStyles = makeStyles({
  head: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalL, flexWrap: 'wrap' },
  facts: { display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalL, rowGap: tokens.spacingVerticalXS, margin: `${tokens.spacingVerticalM} 0` },
  term: { color: tokens.colorNeutralForeground2 },
  value: { margin: 0, wordBreak: 'break-all' },
  panel: { marginTop: tokens.spacingVerticalM },
  section: { display: 'block', marginTop: tokens.spacingVerticalL },
  text: { wordBreak: 'break-all' },
});

const TABS = { response: 'Evidence and response', alerts: 'Alerts', devices: 'Devices', evidence: 'Evidence', investigations: 'Investigations' } as const;
type TabId = keyof typeof TABS;

/** One incident: its alerts, devices, evidence and investigations, and the actions to decide, all in one place. */
export default function IncidentPage({ params }: { params: Record<string, string> }) {
  const id = params.id!;
  const styles = useStyles();
  const queryClient = useQueryClient();
  const permissions = usePermissions();
  const [tab, setTab] = useState<TabId>('response');
  const detail = useQuery({ queryKey: ['incident', id], queryFn: () => api.getIncident(id), refetchInterval: 5000 });
  const setStatus = useMutation({
    mutationFn: (status: 'active' | 'resolved') => api.updateIncident(id, status),
    onSettled: () => Promise.all([queryClient.invalidateQueries({ queryKey: ['incident', id] }), queryClient.invalidateQueries({ queryKey: ['incidents'] })]),
  });
  if (detail.isPending) return <PageLoading />;
  if (detail.isError) return <MessageBar intent="error"><MessageBarBody>{problemText(detail.error)}</MessageBarBody></MessageBar>;
  const { incident, actions } = detail.data;
  const pending = actions.filter((a) => a.status === 'pending_approval');
  const fact = (term: string, value: React.ReactNode) => (
    <>
      <dt className={styles.term}>{term}</dt>
      <dd className={styles.value}>{value}</dd>
    </>
  );
  return (
    <>
      <div className={styles.head}>
        <Title2 as="h1" className={styles.text}>{incident.title}</Title2>
        <SeverityBadge severity={incident.severity} />
        {permissions.has('alerts:manage') && (
          <Button disabled={setStatus.isPending} onClick={() => setStatus.mutate(incident.status === 'active' ? 'resolved' : 'active')}>
            {incident.status === 'active' ? 'Resolve' : 'Reopen'}
          </Button>
        )}
      </div>
      {setStatus.isError && <MessageBar intent="error"><MessageBarBody>{problemText(setStatus.error)}</MessageBarBody></MessageBar>}
      <dl className={styles.facts} aria-label="Incident summary">
        {fact('Status', incident.status === 'active' ? 'Active' : 'Resolved')}
        {fact('Alerts', incident.alertCount)}
        {fact('Devices', incident.deviceCount)}
        {fact('First activity', formatDateTime(incident.firstActivityAt))}
        {fact('Last activity', formatDateTime(incident.lastActivityAt))}
        {fact('Incident ID', incident.id)}
      </dl>
      <TabList selectedValue={tab} onTabSelect={(_, data) => setTab(data.value as TabId)}>
        {(Object.keys(TABS) as TabId[]).map((t) => <Tab key={t} value={t}>{t === 'response' ? `${TABS.response} (${pending.length} pending)` : TABS[t]}</Tab>)}
      </TabList>
      <div className={styles.panel} role="tabpanel" aria-label={TABS[tab]}>
        {tab === 'response' && (
          <>
            <Subtitle1 as="h2" className={styles.section}>Waiting for approval</Subtitle1>
            <ActionsView view="pending" filters={{ incidentId: id }} label="Pending actions of this incident" extraColumns={[verdictColumn(detail.data.verdicts)]} />
            <Subtitle1 as="h2" className={styles.section}>Action history</Subtitle1>
            <ActionsView view="history" filters={{ incidentId: id }} label="Action history of this incident" />
          </>
        )}
        {tab === 'alerts' && <AlertsTable detail={detail.data} />}
        {tab === 'devices' && (
          <ul aria-label="Devices of this incident">
            {detail.data.devices.map((d) => <li key={d.id}><Link to={`/devices/${d.id}`}>{d.name}</Link></li>)}
          </ul>
        )}
        {tab === 'evidence' && <EvidenceTable detail={detail.data} />}
        {tab === 'investigations' && <InvestigationsTable detail={detail.data} />}
      </div>
    </>
  );
}

/** The verdict each action remediates, with its reason on hover. */
function verdictColumn(verdicts: IncidentDetail['verdicts']): Column {
  const byAction = new Map(verdicts.map((v) => [v.actionId, v]));
  return {
    id: 'verdict', label: 'Verdict', shownIn: [],
    render: (a) => {
      const judged = byAction.get(a.id);
      return judged ? <span title={judged.reason ?? undefined}>{VERDICT_LABELS[judged.verdict]}</span> : '—';
    },
  };
}

function AlertsTable({ detail }: { detail: IncidentDetail }) {
  const styles = useStyles();
  return (
    <Table aria-label="Alerts of this incident" size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Alert</TableHeaderCell>
          <TableHeaderCell>Severity</TableHeaderCell>
          <TableHeaderCell>Device</TableHeaderCell>
          <TableHeaderCell>Detection source</TableHeaderCell>
          <TableHeaderCell>Status</TableHeaderCell>
          <TableHeaderCell>Occurred</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.alerts.map((a) => (
          <TableRow key={a.id}>
            <TableCell className={styles.text}>{a.title}</TableCell>
            <TableCell><SeverityBadge severity={a.severity} /></TableCell>
            <TableCell><Link to={`/devices/${a.deviceId}`}>{a.deviceName}</Link></TableCell>
            <TableCell className={styles.text}>{a.detectionSource}</TableCell>
            <TableCell>{a.status.replace('_', ' ')}</TableCell>
            <TableCell>{formatDateTime(a.occurredAt)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function EvidenceTable({ detail }: { detail: IncidentDetail }) {
  const styles = useStyles();
  const names = new Map(detail.devices.map((d) => [d.id, d.name]));
  if (detail.evidence.length === 0) return <Text>Its alerts name no evidence.</Text>;
  return (
    <Table aria-label="Evidence of this incident" size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Kind</TableHeaderCell>
          <TableHeaderCell>Value</TableHeaderCell>
          <TableHeaderCell>Seen on</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.evidence.map((e) => (
          <TableRow key={`${e.kind}:${e.value}`}>
            <TableCell>{e.kind}</TableCell>
            <TableCell className={styles.text}>{e.value}</TableCell>
            <TableCell>{e.deviceIds.map((id) => names.get(id) ?? id).join(', ')}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function InvestigationsTable({ detail }: { detail: IncidentDetail }) {
  if (detail.investigations.length === 0) return <Text>No investigation started from its alerts.</Text>;
  return (
    <Table aria-label="Investigations of this incident" size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Device</TableHeaderCell>
          <TableHeaderCell>Status</TableHeaderCell>
          <TableHeaderCell>Started</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.investigations.map((i) => (
          <TableRow key={i.id}>
            <TableCell><Link to={`/investigations/${i.id}`}>{i.deviceName}</Link></TableCell>
            <TableCell><InvestigationStatusBadge status={i.status} /></TableCell>
            <TableCell>{formatDateTime(i.startedAt)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

