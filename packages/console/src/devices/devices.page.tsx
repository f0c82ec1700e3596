import {
  Badge, Input, MessageBar, MessageBarBody, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Title2, makeStyles, tokens,
} from '@fluentui/react-components';
import type { Device, DeviceHealth } from '@quell/contracts';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime } from '../format.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import { HEALTH_COLORS, HEALTH_LABELS, useDeviceGroups } from './devices-shared.ts';

const useStyles = makeStyles({
  bar: { display: 'flex', gap: tokens.spacingHorizontalM, alignItems: 'center', margin: `${tokens.spacingVerticalM} 0` },
  row: { whiteSpace: 'nowrap' },
  name: { display: 'block', maxWidth: '260px', overflow: 'hidden', textOverflow: 'ellipsis' },
});

const HEALTH_ORDER: Record<DeviceHealth, number> = { offline: 0, online: 1, unmanaged: 2 };

/** The list's columns; those with `value` sort (on the client: the list comes whole). */
const COLUMNS: Array<{ id: string; label: string; value?: (d: Device) => string | number }> = [
  { id: 'name', label: 'Name', value: (d) => d.name.toLowerCase() },
  { id: 'health', label: 'Health', value: (d) => HEALTH_ORDER[d.health] },
  { id: 'lastSeen', label: 'Last seen', value: (d) => (d.lastSeenAt ? Date.parse(d.lastSeenAt) : 0) },
  { id: 'isolated', label: 'Isolation', value: (d) => (d.state.isolatedBy ? 1 : 0) },
  { id: 'restricted', label: 'Code restriction', value: (d) => (d.state.codeRestrictedBy ? 1 : 0) },
  { id: 'users', label: 'Contained users', value: (d) => d.state.containedUsers.length },
  { id: 'pending', label: 'Pending actions', value: (d) => d.pendingActions },
  { id: 'platform', label: 'Platform', value: (d) => d.platform },
  { id: 'group', label: 'Device group' },
  { id: 'os', label: 'Operating system' },
  { id: 'agentVersion', label: 'Agent version' },
];

/** Every device in the user's scope with its health and what is in force on it; `?q=` narrows by name, `?sort=&order=` sorts, kept in the URL. */
export default function DevicesPage() {
  const styles = useStyles();
  const { search } = useLocation();
  const q = search.get('q') ?? '';
  const sortColumn = COLUMNS.find((c) => c.id === search.get('sort') && c.value) ?? COLUMNS[0]!;
  const order = search.get('order') === 'desc' ? 'desc' : 'asc';
  const devices = useQuery({ queryKey: ['devices'], queryFn: api.listDevices, refetchInterval: 15_000 });
  const groups = useDeviceGroups();
  const groupName = (id: string | null): string => (id ? (groups.data?.items.find((g) => g.id === id)?.name ?? id) : '—');
  const go = (change: { q?: string; sort?: string; order?: string }): void => {
    const next = new URLSearchParams({ ...(q ? { q } : {}), ...(search.get('sort') ? { sort: sortColumn.id, order } : {}), ...change });
    if (!next.get('q')) next.delete('q');
    const text = next.toString();
    navigate(`/devices${text ? `?${text}` : ''}`, { replace: true });
  };
  const value = sortColumn.value!;
  const items = (devices.data?.items ?? []).filter((d) => d.name.toLowerCase().includes(q.toLowerCase()))
    .sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      return (x < y ? -1 : x > y ? 1 : a.name.localeCompare(b.name)) * (order === 'desc' ? -1 : 1);
    });
  return (
    <>
      <Title2 as="h1">Devices</Title2>
      <div className={styles.bar} role="search" aria-label="Find devices">
        <Input aria-label="Device name" placeholder="Filter by name" value={q} data-shortcut="search" onChange={(_, data) => go({ q: data.value })} />
      </div>
      {devices.isError && <MessageBar intent="error"><MessageBarBody>{problemText(devices.error)}</MessageBarBody></MessageBar>}
      <Table aria-label="Devices" size="small">
        <TableHeader>
          <TableRow>
            {COLUMNS.map((c) => (c.value ? (
              <TableHeaderCell
                key={c.id}
                sortable
                sortDirection={c === sortColumn ? (order === 'asc' ? 'ascending' : 'descending') : undefined}
                onClick={() => go({ sort: c.id, order: c === sortColumn && order === 'asc' ? 'desc' : 'asc' })}
              >
                {c.label}
              </TableHeaderCell>
            ) : <TableHeaderCell key={c.id}>{c.label}</TableHeaderCell>))}
          </TableRow>
        </TableHeader>
        <TableBody>
          {items.map((d) => (
            <TableRow key={d.id} data-device-id={d.id} className={styles.row}>
              <TableCell><Link to={`/devices/${d.id}`}><span className={styles.name} title={d.name}>{d.name}</span></Link></TableCell>
              <TableCell><Badge appearance="tint" color={HEALTH_COLORS[d.health]}>{HEALTH_LABELS[d.health]}</Badge></TableCell>
              <TableCell>{formatDateTime(d.lastSeenAt)}</TableCell>
              <TableCell>{d.state.isolatedBy ? <Badge appearance="filled" color="danger">Isolated</Badge> : '—'}</TableCell>
              <TableCell>{d.state.codeRestrictedBy ? <Badge appearance="filled" color="warning">Restricted</Badge> : '—'}</TableCell>
              <TableCell title={d.state.containedUsers.map((u) => u.name).join(', ')}>{d.state.containedUsers.length || '—'}</TableCell>
              <TableCell>
                {d.pendingActions > 0 ? <Link to={`/action-center/pending?deviceId=${d.id}`}>{d.pendingActions}</Link> : '—'}
              </TableCell>
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
