import { Badge, MessageBar, MessageBarBody, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Title2, makeStyles } from '@fluentui/react-components';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime } from '../format.ts';
import { Link } from '../router.tsx';

const useStyles = makeStyles({ text: { wordBreak: 'break-all' } });

/** Incidents in the user's scope, latest activity first. */
export default function IncidentsPage() {
  const styles = useStyles();
  const list = useQuery({ queryKey: ['incidents'], queryFn: api.listIncidents, refetchInterval: 10_000 });
  const items = list.data?.items ?? [];
  return (
    <>
      <Title2 as="h1">Incidents</Title2>
      {list.isError && <MessageBar intent="error"><MessageBarBody>{problemText(list.error)}</MessageBarBody></MessageBar>}
      <Table aria-label="Incidents" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Incident</TableHeaderCell>
            <TableHeaderCell>Severity</TableHeaderCell>
            <TableHeaderCell>Status</TableHeaderCell>
            <TableHeaderCell>Alerts</TableHeaderCell>
            <TableHeaderCell>Devices</TableHeaderCell>
            <TableHeaderCell>Last activity</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {items.map((i) => (
            <TableRow key={i.id} data-incident-id={i.id}>
              <TableCell className={styles.text}><Link to={`/incidents/${i.id}`}>{i.title}</Link></TableCell>
              <TableCell><SeverityBadge severity={i.severity} /></TableCell>
              <TableCell>{i.status === 'active' ? 'Active' : 'Resolved'}</TableCell>
              <TableCell>{i.alertCount}</TableCell>
              <TableCell>{i.deviceCount}</TableCell>
              <TableCell>{formatDateTime(i.lastActivityAt)}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {list.isPending && <Spinner label="Loading incidents…" />}
      {list.isSuccess && items.length === 0 && <p>No incident yet.</p>}
    </>
  );
}

const SEVERITY_COLOURS = { informational: 'informative', low: 'subtle', medium: 'warning', high: 'danger' } as const;

export function SeverityBadge({ severity }: { severity: keyof typeof SEVERITY_COLOURS }) {
  return <Badge appearance="tint" color={SEVERITY_COLOURS[severity]}>{severity[0]!.toUpperCase() + severity.slice(1)}</Badge>;
}
