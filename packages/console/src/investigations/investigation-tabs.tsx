import { Button, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text, makeStyles, tokens } from '@fluentui/react-components';
import type { Action } from '@quell/contracts';
import { useQueries } from '@tanstack/react-query';
import { useState } from 'react';
import { DecisionDialog } from '../action-center/decision-dialog.tsx';
import { useOpenAction } from '../action-center/flyout-host.tsx';
import { StatusBadge, StatusWithDeadline } from '../action-center/status-badge.tsx';
import type { Decision } from '../action-center/use-actions.ts';
import { type InvestigationDetail, api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime, formatDuration, typeLabel } from '../format.ts';
import { BlockThis, entityCandidate } from '../indicators/block-this.tsx';
import { Link } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { VerdictBadge } from './investigation-status.tsx';

/** The tabs of an investigation's page: its alerts, devices and evidence, log and pending actions. */

const useStyles = makeStyles({
  text: { wordBreak: 'break-all' },
  buttons: { display: 'flex', gap: tokens.spacingHorizontalS },
  problems: { margin: 0, paddingLeft: tokens.spacingHorizontalL },
});

export function AlertsTab({ alertIds }: { alertIds: string[] }) {
  const styles = useStyles();
  const alerts = useQueries({ queries: alertIds.map((id) => ({ queryKey: ['alert', id], queryFn: () => api.getAlert(id), staleTime: 30_000 })) });
  if (alertIds.length === 0) return <Text>No alert started this investigation; an analyst did.</Text>;
  return (
    <Table aria-label="Alerts" size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Alert</TableHeaderCell>
          <TableHeaderCell>Severity</TableHeaderCell>
          <TableHeaderCell>Status</TableHeaderCell>
          <TableHeaderCell>Detection source</TableHeaderCell>
          <TableHeaderCell>Occurred</TableHeaderCell>
          <TableHeaderCell>Evidence</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {alertIds.map((id, i) => {
          const query = alerts[i]!;
          if (!query.data) {
            return (
              <TableRow key={id}>
                <TableCell>{id}</TableCell>
                <TableCell colSpan={5}>{query.isError ? problemText(query.error) : <Spinner size="tiny" aria-label="Loading the alert" />}</TableCell>
              </TableRow>
            );
          }
          const a = query.data;
          return (
            <TableRow key={id}>
              <TableCell className={styles.text}>{a.title}</TableCell>
              <TableCell>{a.severity}</TableCell>
              <TableCell>{a.status.replace('_', ' ')}</TableCell>
              <TableCell className={styles.text}>{a.detectionSource}</TableCell>
              <TableCell>{formatDateTime(a.occurredAt)}</TableCell>
              <TableCell className={styles.text}>{a.evidence.length} ({[...new Set(a.evidence.map((e) => e.kind))].join(', ')})</TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}

export function EvidenceTab({ detail }: { detail: InvestigationDetail }) {
  const styles = useStyles();
  const openAction = useOpenAction();
  const byId = new Map(detail.actions.map((a) => [a.id, a]));
  if (detail.entities.length === 0) return <Text>No evidence gathered yet.</Text>;
  return (
    <Table aria-label="Devices and evidence" size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Kind</TableHeaderCell>
          <TableHeaderCell>Path</TableHeaderCell>
          <TableHeaderCell>Value</TableHeaderCell>
          <TableHeaderCell>Device</TableHeaderCell>
          <TableHeaderCell>Verdict</TableHeaderCell>
          <TableHeaderCell>Reason</TableHeaderCell>
          <TableHeaderCell>Facts</TableHeaderCell>
          <TableHeaderCell>Remediation</TableHeaderCell>
          <TableHeaderCell>Block</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.entities.map((e, i) => {
          const action = e.actionId ? byId.get(e.actionId) : undefined;
          return (
            <TableRow key={`${e.deviceId}-${e.value}-${i}`}>
              <TableCell>{e.kind}</TableCell>
              <TableCell className={styles.text}>{e.path ?? '—'}</TableCell>
              <TableCell className={styles.text}>{e.value}</TableCell>
              <TableCell><Link to={`/devices/${e.deviceId}`}>{e.deviceName}</Link></TableCell>
              <TableCell><VerdictBadge verdict={e.verdict} /></TableCell>
              <TableCell className={styles.text}>{e.reason ?? '—'}</TableCell>
              <TableCell>
                {e.facts.length === 0 ? '—' : <ul className={styles.problems} aria-label="Facts weighed">{e.facts.map((fact) => <li key={fact}>{fact}</li>)}</ul>}
              </TableCell>
              <TableCell>
                {action
                  ? <Button appearance="transparent" size="small" onClick={() => openAction(action.id)} aria-label={`${typeLabel(action.type)} of ${action.entity.name}: ${action.status.replace('_', ' ')}`}><StatusBadge status={action.status} /></Button>
                  : '—'}
              </TableCell>
              <TableCell><BlockThis candidate={entityCandidate(e.kind, e.value)} source={`investigation of ${detail.investigation.deviceName}`} /></TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}

export function LogTab({ detail }: { detail: InvestigationDetail }) {
  const styles = useStyles();
  if (detail.log.length === 0) return <Text>Nothing logged yet.</Text>;
  return (
    <Table aria-label="Investigation log" size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Step</TableHeaderCell>
          <TableHeaderCell>Started</TableHeaderCell>
          <TableHeaderCell>Took</TableHeaderCell>
          <TableHeaderCell>Result</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.log.map((l, i) => (
          <TableRow key={i}>
            <TableCell>{l.step}</TableCell>
            <TableCell>{formatDateTime(l.startedAt)}</TableCell>
            <TableCell>{formatDuration(Date.parse(l.endedAt) - Date.parse(l.startedAt))}</TableCell>
            <TableCell className={styles.text}>{l.result}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

/** Pending actions with Approve and Reject right there (investigation and incident pages). */
export function PendingTab({ actions, now, onDecided }: { actions: Action[]; now: number; onDecided: () => void }) {
  const styles = useStyles();
  const permissions = usePermissions();
  const openAction = useOpenAction();
  const [decision, setDecision] = useState<Decision | null>(null);
  const refusal = permissions.decideRefusal();
  if (actions.length === 0) return <Text>No action of this investigation waits for approval.</Text>;
  return (
    <>
      {refusal !== null && <Text block>{refusal}.</Text>}
      <Table aria-label="Pending actions of this investigation" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Action type</TableHeaderCell>
            <TableHeaderCell>Entity</TableHeaderCell>
            <TableHeaderCell>Device</TableHeaderCell>
            <TableHeaderCell>Status</TableHeaderCell>
            <TableHeaderCell>Decision</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {actions.map((a) => (
            <TableRow key={a.id} data-action-id={a.id}>
              <TableCell><Button appearance="transparent" size="small" onClick={() => openAction(a.id)}>{typeLabel(a.type)}</Button></TableCell>
              <TableCell className={styles.text}>{a.entity.path ?? a.entity.name}</TableCell>
              <TableCell>{a.deviceName}</TableCell>
              <TableCell><StatusWithDeadline action={a} now={now} /></TableCell>
              <TableCell>
                {refusal === null && (
                  <span className={styles.buttons}>
                    <Button size="small" appearance="primary" onClick={() => setDecision({ kind: 'approve', actions: [a] })} aria-label={`Approve ${typeLabel(a.type).toLowerCase()} of ${a.entity.name} on ${a.deviceName}`}>Approve</Button>
                    <Button size="small" onClick={() => setDecision({ kind: 'reject', actions: [a] })} aria-label={`Reject ${typeLabel(a.type).toLowerCase()} of ${a.entity.name} on ${a.deviceName}`}>Reject</Button>
                  </span>
                )}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {decision && <DecisionDialog decision={decision} onClose={() => setDecision(null)} onDecided={onDecided} />}
    </>
  );
}
