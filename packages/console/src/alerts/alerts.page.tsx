import {
  Button, Field, MessageBar, MessageBarBody, Select, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text, Title2,
  makeStyles, tokens, useRestoreFocusTarget,
} from '@fluentui/react-components';
import { ALERT_SEVERITIES, ALERT_STATUSES, type Alert, type AlertSeverity, type ListAlertsQuery } from '@quell/contracts';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { type KeyboardEvent, type MouseEvent, Suspense, lazy, useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { UUID, formatDateTime } from '../format.ts';
import { SeverityBadge } from '../incidents/incidents.page.tsx';
import { Link, navigate, useLocation } from '../router.tsx';
import { ALERT_STATUS_LABELS, CLASSIFICATION_LABELS } from './alert-labels.ts';
import { AlertStatusBadge } from './alert-status.tsx';

const AlertPanel = lazy(() => import('./alert-panel.tsx'));

const PAGE_SIZE = 50;

const useStyles = makeStyles({
  bar: { display: 'flex', flexWrap: 'wrap', alignItems: 'flex-end', gap: tokens.spacingHorizontalM, margin: `${tokens.spacingVerticalM} 0` },
  field: { minWidth: '150px' },
  tableWrap: { overflowX: 'auto' },
  row: { cursor: 'pointer', ':focus-visible': { outline: `2px solid ${tokens.colorStrokeFocus2}`, outlineOffset: '-2px' } },
  title: { wordBreak: 'break-word', maxWidth: '360px' },
  text: { wordBreak: 'break-all' },
  pager: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalM, marginTop: tokens.spacingVerticalM },
  empty: { padding: tokens.spacingVerticalXXL, textAlign: 'center', color: tokens.colorNeutralForeground2 },
});

const SEVERITY_LABELS: Record<AlertSeverity, string> = { informational: 'Informational', low: 'Low', medium: 'Medium', high: 'High' };

type AlertFilters = Pick<ListAlertsQuery, 'status' | 'severity'>;

const oneOf = <T extends string>(values: readonly T[], value: string | null): T | undefined =>
  value !== null && (values as readonly string[]).includes(value) ? (value as T) : undefined;

function filtersFromSearch(search: URLSearchParams): AlertFilters {
  return { status: oneOf(ALERT_STATUSES, search.get('status')), severity: oneOf(ALERT_SEVERITIES, search.get('severity')) };
}

function pathOfFilters(filters: AlertFilters): string {
  const search = new URLSearchParams();
  if (filters.status) search.set('status', filters.status);
  if (filters.severity) search.set('severity', filters.severity);
  const text = search.toString();
  return text ? `/alerts?${text}` : '/alerts';
}

/** Alerts in the user's scope, newest first, filtered through the URL; a row opens the alert panel. */
export default function AlertsPage() {
  const styles = useStyles();
  const { search } = useLocation();
  const filters = filtersFromSearch(search);
  const [alertId, setAlertId] = useState<string | null>(null);
  const [opened, setOpened] = useState(false);
  const open = (id: string): void => {
    setOpened(true);
    setAlertId(id);
  };
  // `/alerts?alert=<id>`, as the action flyout links an alert: opens its panel.
  const linked = search.get('alert');
  const [opensLinked, setOpensLinked] = useState<string | null>(null);
  if (linked !== null && linked !== opensLinked && UUID.test(linked)) {
    setOpensLinked(linked);
    open(linked);
  }
  const set = (change: AlertFilters): void => navigate(pathOfFilters({ ...filters, ...change }));
  return (
    <>
      <Title2 as="h1">Alerts</Title2>
      <div className={styles.bar} role="search" aria-label="Filters">
        <Field label="Status" className={styles.field}>
          <Select value={filters.status ?? ''} onChange={(_, data) => set({ status: oneOf(ALERT_STATUSES, data.value) })}>
            <option value="">Any</option>
            {ALERT_STATUSES.map((s) => <option key={s} value={s}>{ALERT_STATUS_LABELS[s]}</option>)}
          </Select>
        </Field>
        <Field label="Severity" className={styles.field}>
          <Select value={filters.severity ?? ''} onChange={(_, data) => set({ severity: oneOf(ALERT_SEVERITIES, data.value) })}>
            <option value="">Any</option>
            {ALERT_SEVERITIES.map((s) => <option key={s} value={s}>{SEVERITY_LABELS[s]}</option>)}
          </Select>
        </Field>
        <Button appearance="subtle" disabled={!filters.status && !filters.severity} onClick={() => navigate('/alerts')}>Clear filters</Button>
      </div>
      {/* A new filter starts again at the first page. */}
      <AlertsList key={pathOfFilters(filters)} filters={filters} onOpen={open} />
      {opened && (
        <Suspense fallback={null}>
          <AlertPanel alertId={alertId} onClose={() => setAlertId(null)} />
        </Suspense>
      )}
    </>
  );
}

function AlertsList({ filters, onOpen }: { filters: AlertFilters; onOpen: (id: string) => void }) {
  const styles = useStyles();
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const page = useQuery({
    queryKey: ['alerts', filters, cursor ?? null],
    queryFn: () => api.listAlerts({ ...filters, limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) }),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
  // Closing the panel puts focus back on the row it was opened from.
  const restoreFocusTarget = useRestoreFocusTarget();
  const items = page.data?.items ?? [];
  const first = (cursors.length - 1) * PAGE_SIZE;
  const openOnKey = (event: KeyboardEvent<HTMLTableRowElement>, alert: Alert): void => {
    if (event.target === event.currentTarget && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      onOpen(alert.id);
    }
  };
  // A link in a row goes where it says; the rest of the row opens the panel.
  const keepToLink = (event: MouseEvent): void => event.stopPropagation();
  return (
    <>
      {page.isError && <MessageBar intent="error"><MessageBarBody>{problemText(page.error)}</MessageBarBody></MessageBar>}
      <div className={styles.tableWrap}>
        <Table aria-label="Alerts" size="small">
          <TableHeader>
            <TableRow>
              <TableHeaderCell>Title</TableHeaderCell>
              <TableHeaderCell>Severity</TableHeaderCell>
              <TableHeaderCell>Status</TableHeaderCell>
              <TableHeaderCell>Classification</TableHeaderCell>
              <TableHeaderCell>Device</TableHeaderCell>
              <TableHeaderCell>Detection source</TableHeaderCell>
              <TableHeaderCell>Occurred</TableHeaderCell>
              <TableHeaderCell>Incident</TableHeaderCell>
            </TableRow>
          </TableHeader>
          <TableBody>
            {items.map((a) => (
              <TableRow
                key={a.id}
                tabIndex={0}
                {...restoreFocusTarget}
                data-alert-id={a.id}
                className={styles.row}
                onClick={() => onOpen(a.id)}
                onKeyDown={(event) => openOnKey(event, a)}
              >
                <TableCell className={styles.title}>{a.title}</TableCell>
                <TableCell><SeverityBadge severity={a.severity} /></TableCell>
                <TableCell><AlertStatusBadge status={a.status} /></TableCell>
                <TableCell>{a.classification ? CLASSIFICATION_LABELS[a.classification] : '—'}</TableCell>
                <TableCell className={styles.text}><span onClick={keepToLink}><Link to={`/devices/${a.deviceId}`}>{a.deviceName}</Link></span></TableCell>
                <TableCell className={styles.text}>{a.detectionSource}</TableCell>
                <TableCell>{formatDateTime(a.occurredAt)}</TableCell>
                <TableCell>{a.incidentId ? <span onClick={keepToLink}><Link to={`/incidents/${a.incidentId}`}>Open incident</Link></span> : '—'}</TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
        {page.isPending && <Spinner label="Loading alerts…" />}
        {page.isSuccess && items.length === 0 && <div className={styles.empty}>No alert matches these filters.</div>}
      </div>
      <nav className={styles.pager} aria-label="Alerts: pages">
        <Button disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</Button>
        <Button disabled={!page.data?.nextCursor || page.isPlaceholderData} onClick={() => setCursors([...cursors, page.data!.nextCursor!])}>Next page</Button>
        <Text aria-live="polite">{items.length > 0 ? `${first + 1}–${first + items.length}` : '0'}</Text>
        {page.isFetching && !page.isPending && <Spinner size="tiny" aria-label="Refreshing" />}
      </nav>
    </>
  );
}
