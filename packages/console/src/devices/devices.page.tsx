import {
  Badge, Input, MessageBar, MessageBarBody, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Title2, makeStyles, tokens,
} from '@fluentui/react-components';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime } from '../format.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import { HEALTH_COLORS, HEALTH_LABELS, useDeviceGroups } from './devices-shared.ts';

const useStyles = makeStyles({
  bar: { display: 'flex', gap: tokens.spacingHorizontalM, alignItems: 'center', margin: `${tokens.spacingVerticalM} 0` },
  name: { wordBreak: 'break-all' },
});

/** Every device in the user's scope with its health; `?q=` narrows by name, kept in the URL. */
export default function DevicesPage() {
  const styles = useStyles();
  const { search } = useLocation();
  const q = search.get('q') ?? '';
  const devices = useQuery({ queryKey: ['devices'], queryFn: api.listDevices, refetchInterval: 15_000 });
  const groups = useDeviceGroups();
  const groupName = (id: string | null): string => (id ? (groups.data?.items.find((g) => g.id === id)?.name ?? id) : '—');
  const items = (devices.data?.items ?? []).filter((d) => d.name.toLowerCase().includes(q.toLowerCase()));
  return (
    <>
      <Title2 as="h1">Devices</Title2>
      <div className={styles.bar} role="search" aria-label="Find devices">
        <Input aria-label="Device name" placeholder="Filter by name" value={q} onChange={(_, data) => navigate(`/devices${data.value ? `?q=${encodeURIComponent(data.value)}` : ''}`, { replace: true })} />
      </div>
      {devices.isError && <MessageBar intent="error"><MessageBarBody>{problemText(devices.error)}</MessageBarBody></MessageBar>}
      <Table aria-label="Devices" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Name</TableHeaderCell>
            <TableHeaderCell>Health</TableHeaderCell>
            <TableHeaderCell>Last seen</TableHeaderCell>
            <TableHeaderCell>Platform</TableHeaderCell>
            <TableHeaderCell>Device group</TableHeaderCell>
            <TableHeaderCell>Operating system</TableHeaderCell>
            <TableHeaderCell>Agent version</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {items.map((d) => (
            <TableRow key={d.id} data-device-id={d.id}>
              <TableCell className={styles.name}><Link to={`/devices/${d.id}`}>{d.name}</Link></TableCell>
              <TableCell><Badge appearance="tint" color={HEALTH_COLORS[d.health]}>{HEALTH_LABELS[d.health]}</Badge></TableCell>
              <TableCell>{formatDateTime(d.lastSeenAt)}</TableCell>
              <TableCell>{d.platform}</TableCell>
              <TableCell>{groupName(d.groupId)}</TableCell>
              <TableCell>{d.agent ? d.agent.os : 'No agent'}</TableCell>
              <TableCell>{d.agent?.agentVersion ?? '—'}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {devices.isPending && <Spinner label="Loading devices…" />}
      {devices.isSuccess && items.length === 0 && <p>No device matches.</p>}
    </>
  );
}
