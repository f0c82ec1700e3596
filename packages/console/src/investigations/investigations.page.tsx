import {
  MessageBar, MessageBarBody, Select, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Title2, Field, makeStyles, tokens,
} from '@fluentui/react-components';
import { INVESTIGATION_STATUSES, type InvestigationStatus } from '@quell/contracts';
import { useQuery } from '@tanstack/react-query';
import { useNow } from '../action-center/use-actions.ts';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime, formatDuration } from '../format.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import { INVESTIGATION_STATUS_LABELS, InvestigationStatusBadge } from './investigation-status.tsx';

const useStyles = makeStyles({
  bar: { display: 'flex', gap: tokens.spacingHorizontalM, alignItems: 'flex-end', margin: `${tokens.spacingVerticalM} 0` },
  name: { wordBreak: 'break-all' },
});

/** Every investigation in the user's scope, newest first; `?status=` is kept in the URL. */
export default function InvestigationsPage() {
  const styles = useStyles();
  const now = useNow();
  const { search } = useLocation();
  const wanted = search.get('status');
  const status = (INVESTIGATION_STATUSES as readonly string[]).includes(wanted ?? '') ? (wanted as InvestigationStatus) : undefined;
  const list = useQuery({ queryKey: ['investigations'], queryFn: () => api.listInvestigations(), refetchInterval: 10_000 });
  const items = (list.data?.items ?? []).filter((i) => status === undefined || i.status === status);
  return (
    <>
      <Title2 as="h1">Investigations</Title2>
      <div className={styles.bar} role="search" aria-label="Filters">
        <Field label="Status">
          <Select value={status ?? ''} onChange={(_, data) => navigate(`/investigations${data.value ? `?status=${data.value}` : ''}`)}>
            <option value="">Any</option>
            {INVESTIGATION_STATUSES.map((s) => <option key={s} value={s}>{INVESTIGATION_STATUS_LABELS[s]}</option>)}
          </Select>
        </Field>
      </div>
      {list.isError && <MessageBar intent="error"><MessageBarBody>{problemText(list.error)}</MessageBarBody></MessageBar>}
      <Table aria-label="Investigations" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Device</TableHeaderCell>
            <TableHeaderCell>Status</TableHeaderCell>
            <TableHeaderCell>Started</TableHeaderCell>
            <TableHeaderCell>Duration</TableHeaderCell>
            <TableHeaderCell>Waiting for analysts</TableHeaderCell>
            <TableHeaderCell>Started by</TableHeaderCell>
            <TableHeaderCell>Problems</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {items.map((i) => (
            <TableRow key={i.id} data-investigation-id={i.id}>
              <TableCell className={styles.name}><Link to={`/investigations/${i.id}`}>{i.deviceName}</Link></TableCell>
              <TableCell><InvestigationStatusBadge status={i.status} /></TableCell>
              <TableCell>{formatDateTime(i.startedAt)}</TableCell>
              <TableCell>{formatDuration((i.endedAt ? Date.parse(i.endedAt) : now) - Date.parse(i.startedAt))}</TableCell>
              <TableCell>{formatDuration(i.waitingSeconds * 1000)}</TableCell>
              <TableCell className={styles.name}>{i.startedBy}</TableCell>
              <TableCell>{i.problems.length === 0 ? 'None' : i.problems.length}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {list.isPending && <Spinner label="Loading investigations…" />}
      {list.isSuccess && items.length === 0 && <p>No investigation{status ? ' with this status' : ''} yet.</p>}
    </>
  );
}
