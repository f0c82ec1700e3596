import {
  Button, DrawerBody, DrawerHeader, DrawerHeaderTitle, Field, MessageBar, MessageBarBody, MessageBarTitle, OverlayDrawer, Select, Spinner, Subtitle2, Table, TableBody,
  TableCell, TableHeader, TableHeaderCell, TableRow, Text, makeStyles, tokens,
} from '@fluentui/react-components';
import { ALERT_CLASSIFICATIONS, ALERT_DETERMINATIONS, ALERT_STATUSES, type Alert, type UpdateAlertBody } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { useAnnounce } from '../action-center/decision-outcome.tsx';
import { type FalsePositiveResult, api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { CommentDialog } from '../comment-dialog.tsx';
import { ENTITY_TYPE_LABELS, formatDateTime, statusLabel, typeLabel } from '../format.ts';
import { SeverityBadge } from '../incidents/incidents.page.tsx';
import { INVESTIGATION_STATUS_LABELS } from '../investigations/investigation-status.tsx';
import { Link } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import {
  ALERT_STATUS_LABELS, type AlertClassification, type AlertDetermination, type AlertStatus, CLASSIFICATION_LABELS, DETERMINATION_LABELS,
  evidenceValues,
} from './alert-labels.ts';
import { AlertStatusBadge } from './alert-status.tsx';
import { FalsePositiveDialog } from './false-positive-dialog.tsx';
import { BlockThis, blockCandidate } from '../indicators/block-this.tsx';

const useStyles = makeStyles({
  badges: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalS, alignItems: 'center' },
  details: { display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalL, rowGap: tokens.spacingVerticalXS, margin: 0 },
  term: { color: tokens.colorNeutralForeground2 },
  value: { margin: 0, wordBreak: 'break-all', whiteSpace: 'pre-wrap' },
  section: { marginTop: tokens.spacingVerticalL, marginBottom: tokens.spacingVerticalS },
  triage: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, alignItems: 'flex-end' },
  field: { minWidth: '180px' },
  buttons: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, marginTop: tokens.spacingVerticalM },
  note: { color: tokens.colorNeutralForeground2 },
  list: { margin: 0, paddingLeft: tokens.spacingHorizontalL },
  values: { margin: 0, display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalS },
  pair: { display: 'contents' },
});

/** Every detail of one alert, its evidence, and the triage and false-positive flow for roles that may manage alerts. */
export default function AlertPanel({ alertId, onClose }: { alertId: string | null; onClose: () => void }) {
  const styles = useStyles();
  const detail = useQuery({ queryKey: ['alert', alertId], queryFn: () => api.getAlert(alertId!), enabled: alertId !== null });
  const alert = detail.data;
  return (
    <OverlayDrawer open={alertId !== null} position="end" size="medium" onOpenChange={(_, data) => !data.open && onClose()} aria-label="Alert">
      <DrawerHeader>
        <DrawerHeaderTitle action={<Button appearance="subtle" aria-label="Close" onClick={onClose}>✕</Button>}>
          <span className={styles.value}>{alert?.title ?? 'Alert'}</span>
        </DrawerHeaderTitle>
        {alert && <Text className={styles.value}>on {alert.deviceName} · {alert.detectionSource}</Text>}
      </DrawerHeader>
      <DrawerBody>
        {detail.isPending && alertId !== null && <Spinner label="Loading the alert…" />}
        {detail.isError && <MessageBar intent="error"><MessageBarBody>{problemText(detail.error)}</MessageBarBody></MessageBar>}
        {/* Keyed by alert: a result or a draft of one alert never shows on another. */}
        {alert && <AlertBody key={alert.id} alert={alert} onClose={onClose} />}
      </DrawerBody>
    </OverlayDrawer>
  );
}

function AlertBody({ alert, onClose }: { alert: Alert; onClose: () => void }) {
  const styles = useStyles();
  const investigations = useQuery({ queryKey: ['investigations', { alertId: alert.id }], queryFn: () => api.listInvestigations({ alertId: alert.id }) });
  const permissions = usePermissions();
  const [result, setResult] = useState<FalsePositiveResult | null>(null);
  const announce = useAnnounce();
  const onFalsePositive = (done: FalsePositiveResult): void => {
    setResult(done);
    const undone = done.undone.length === 0 ? 'nothing to undo' : `${done.undone.length} undo ${done.undone.length === 1 ? 'action' : 'actions'} queued`;
    const allowed = `${done.indicators.length} allow ${done.indicators.length === 1 ? 'indicator' : 'indicators'}`;
    announce(`Alert “${alert.title}” resolved as a false positive: ${undone}, ${allowed}.`, done.undone);
  };
  const row = (term: string, value: ReactNode) => (
    <>
      <dt className={styles.term}>{term}</dt>
      <dd className={styles.value}>{value ?? '—'}</dd>
    </>
  );
  return (
    <>
      <div className={styles.badges}>
        <SeverityBadge severity={alert.severity} />
        <AlertStatusBadge status={alert.status} />
        {alert.classification && <Text>{CLASSIFICATION_LABELS[alert.classification]}</Text>}
      </div>
      {result && <FalsePositiveOutcome result={result} />}
      {permissions.has('alerts:manage')
        ? <Triage alert={alert} onFalsePositive={onFalsePositive} />
        : <Text block className={styles.note}>Your role, {permissions.roleLabel}, can view alerts but not triage them or classify them as false positives.</Text>}
      <Subtitle2 as="h3" block className={styles.section}>Details</Subtitle2>
      <dl className={styles.details} aria-label="Alert details">
        {row('Alert ID', alert.id)}
        {row('Title', alert.title)}
        {row('Description', alert.description)}
        {row('Severity', alert.severity[0]!.toUpperCase() + alert.severity.slice(1))}
        {row('Status', ALERT_STATUS_LABELS[alert.status])}
        {row('Classification', alert.classification ? CLASSIFICATION_LABELS[alert.classification] : null)}
        {row('Determination', alert.determination ? DETERMINATION_LABELS[alert.determination] : null)}
        {row('Category', alert.category)}
        {row('Detection source', alert.detectionSource)}
        {row('External ID', alert.externalId)}
        {row('Rule', alert.ruleId)}
        {row('MITRE ATT&CK', alert.mitreTechniques.length + alert.mitreTactics.length === 0 ? null : [...alert.mitreTechniques, ...alert.mitreTactics].join(', '))}
        {alert.origin && row('Seen by', [alert.origin.agentName, alert.origin.agentId && `agent ${alert.origin.agentId}`, alert.origin.agentIp, alert.origin.location].filter(Boolean).join(' · '))}
        {row('Device', <Link to={`/devices/${alert.deviceId}`} closeFirst={onClose}>{alert.deviceName}</Link>)}
        {row('Incident', alert.incidentId ? <Link to={`/incidents/${alert.incidentId}`} closeFirst={onClose}>Open incident</Link> : null)}
        {row('Investigation', investigations.data && investigations.data.items.length > 0 ? investigations.data.items.map((i, n) => (
          <span key={i.id}>
            {n > 0 && '; '}
            <Link to={`/investigations/${i.id}`} closeFirst={onClose}>{i.deviceName}, {INVESTIGATION_STATUS_LABELS[i.status].toLowerCase()}</Link>
            {' · '}
            <Link to={`/action-center/history?investigationId=${i.id}`} closeFirst={onClose}>its actions</Link>
          </span>
        )) : investigations.isPending ? '…' : 'None started')}
        {row('Occurred', formatDateTime(alert.occurredAt))}
        {row('Received', formatDateTime(alert.receivedAt))}
        {row('Last update', `${formatDateTime(alert.updatedAt)}${alert.updatedBy ? ` by ${alert.updatedBy}` : ''}`)}
      </dl>
      <Subtitle2 as="h3" block className={styles.section}>Evidence</Subtitle2>
      {alert.evidence.length === 0 ? <Text>The alert names no evidence.</Text> : (
        <Table aria-label="Evidence" size="small">
          <TableHeader>
            <TableRow>
              <TableHeaderCell>Kind</TableHeaderCell>
              <TableHeaderCell>Values</TableHeaderCell>
              <TableHeaderCell>Block</TableHeaderCell>
            </TableRow>
          </TableHeader>
          <TableBody>
            {alert.evidence.map((e, i) => (
              <TableRow key={i}>
                <TableCell>{ENTITY_TYPE_LABELS[e.kind]}</TableCell>
                <TableCell>
                  <dl className={styles.values}>
                    {evidenceValues(e).map(([name, value]) => (
                      <div key={name} className={styles.pair}>
                        <dt className={styles.term}>{name}</dt>
                        <dd className={styles.value}>{value}</dd>
                      </div>
                    ))}
                  </dl>
                </TableCell>
                <TableCell><BlockThis candidate={blockCandidate(e)} source={`alert “${alert.title}”`} /></TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
    </>
  );
}

/** What the false-positive flow did, in words. */
function FalsePositiveOutcome({ result }: { result: FalsePositiveResult }) {
  const styles = useStyles();
  const { undone, indicators } = result;
  return (
    <div role="status" aria-label="False positive outcome">
    <MessageBar intent="success" layout="multiline">
      <MessageBarBody>
        <MessageBarTitle>Alert resolved as a false positive.</MessageBarTitle>
        <ul className={styles.list}>
          <li>
            {undone.length === 0 ? 'No undo action was created.' : `${undone.length} undo ${undone.length === 1 ? 'action' : 'actions'} created: `}
            {undone.map((a) => `${typeLabel(a.type)} of ${a.entity.name} on ${a.deviceName} (${statusLabel(a.status).toLowerCase()})`).join('; ')}
          </li>
          <li>
            {indicators.length === 0 ? 'No allow indicator was created.' : `${indicators.length} allow ${indicators.length === 1 ? 'indicator' : 'indicators'}: `}
            {indicators.map((i) => `${i.type.toUpperCase()} ${i.value}`).join('; ')}
          </li>
        </ul>
      </MessageBarBody>
    </MessageBar>
    </div>
  );
}

const NOT_SET = '';

/** Status, classification and determination, changed together with one comment; and the false-positive flow. */
function Triage({ alert, onFalsePositive }: { alert: Alert; onFalsePositive: (result: FalsePositiveResult) => void }) {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState<AlertStatus>(alert.status);
  const [classification, setClassification] = useState<AlertClassification | ''>(alert.classification ?? NOT_SET);
  const [determination, setDetermination] = useState<AlertDetermination | ''>(alert.determination ?? NOT_SET);
  const [dialog, setDialog] = useState<'update' | 'false_positive' | null>(null);
  const refresh = (updated: Alert): Promise<unknown> => {
    queryClient.setQueryData(['alert', alert.id], updated);
    return Promise.all([queryClient.invalidateQueries({ queryKey: ['alerts'] }), queryClient.invalidateQueries({ queryKey: ['incident'] })]);
  };
  const changes: UpdateAlertBody = {
    ...(status !== alert.status ? { status } : {}),
    ...(classification !== (alert.classification ?? NOT_SET) ? { classification: classification || null } : {}),
    ...(determination !== (alert.determination ?? NOT_SET) ? { determination: determination || null } : {}),
  };
  const update = useMutation({
    mutationFn: (comment: string) => api.updateAlert(alert.id, { ...changes, comment }),
    onSuccess: async (updated) => {
      setDialog(null);
      await refresh(updated);
    },
  });
  const falsePositive = useMutation({
    mutationFn: (body: Parameters<typeof api.falsePositive>[1]) => api.falsePositive(alert.id, body),
    onSuccess: async (result) => {
      setDialog(null);
      setStatus(result.alert.status);
      setClassification(result.alert.classification ?? NOT_SET);
      onFalsePositive(result);
      await Promise.all([refresh(result.alert), queryClient.invalidateQueries({ queryKey: ['actions'] }), queryClient.invalidateQueries({ queryKey: ['indicators'] })]);
    },
  });
  const said = (from: string, to: string): string => `${from} → ${to}`;
  const consequence = [
    changes.status !== undefined && `Status: ${said(ALERT_STATUS_LABELS[alert.status], ALERT_STATUS_LABELS[status])}`,
    changes.classification !== undefined && `Classification: ${said(alert.classification ? CLASSIFICATION_LABELS[alert.classification] : 'not set', classification ? CLASSIFICATION_LABELS[classification] : 'not set')}`,
    changes.determination !== undefined && `Determination: ${said(alert.determination ? DETERMINATION_LABELS[alert.determination] : 'not set', determination ? DETERMINATION_LABELS[determination] : 'not set')}`,
  ].filter(Boolean).join('; ');
  return (
    <>
      <Subtitle2 as="h3" block className={styles.section}>Triage</Subtitle2>
      <div className={styles.triage} role="group" aria-label="Triage">
        <Field label="Alert status" className={styles.field}>
          <Select value={status} onChange={(_, d) => setStatus(d.value as AlertStatus)}>
            {ALERT_STATUSES.map((s) => <option key={s} value={s}>{ALERT_STATUS_LABELS[s]}</option>)}
          </Select>
        </Field>
        <Field label="Classification" className={styles.field}>
          <Select value={classification} onChange={(_, d) => setClassification(d.value as AlertClassification | '')}>
            <option value={NOT_SET}>Not set</option>
            {ALERT_CLASSIFICATIONS.map((c) => <option key={c} value={c}>{CLASSIFICATION_LABELS[c]}</option>)}
          </Select>
        </Field>
        <Field label="Determination" className={styles.field}>
          <Select value={determination} onChange={(_, d) => setDetermination(d.value as AlertDetermination | '')}>
            <option value={NOT_SET}>Not set</option>
            {ALERT_DETERMINATIONS.map((d) => <option key={d} value={d}>{DETERMINATION_LABELS[d]}</option>)}
          </Select>
        </Field>
      </div>
      <div className={styles.buttons}>
        <Button appearance="primary" disabled={Object.keys(changes).length === 0} onClick={() => { update.reset(); setDialog('update'); }}>Update alert</Button>
        <Button onClick={() => { falsePositive.reset(); setDialog('false_positive'); }}>Classify as false positive</Button>
      </div>
      {dialog === 'update' && (
        <CommentDialog
          title="Update the alert"
          consequence={`${consequence}.`}
          confirmLabel="Update alert"
          pending={update.isPending}
          error={update.error}
          onConfirm={(comment) => update.mutate(comment)}
          onClose={() => setDialog(null)}
        />
      )}
      {dialog === 'false_positive' && (
        <FalsePositiveDialog
          alert={alert}
          pending={falsePositive.isPending}
          error={falsePositive.error}
          onConfirm={(body) => falsePositive.mutate(body)}
          onClose={() => setDialog(null)}
        />
      )}
    </>
  );
}
