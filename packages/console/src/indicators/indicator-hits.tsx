import { Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text, makeStyles } from '@fluentui/react-components';
import type { IndicatorHitRow } from '@quell/contracts';
import { formatDateTime } from '../format.ts';
import { Link } from '../router.tsx';

const useStyles = makeStyles({ text: { wordBreak: 'break-all' } });

/** Each indicator's hits summed over devices: how many, on how many devices, and when last. */
export function hitTotals(rows: readonly IndicatorHitRow[]): Map<string, { count: number; devices: number; lastAt: string }> {
  const totals = new Map<string, { count: number; devices: number; lastAt: string }>();
  for (const row of rows) {
    const total = totals.get(row.indicatorId) ?? { count: 0, devices: 0, lastAt: row.lastAt };
    totals.set(row.indicatorId, { count: total.count + row.count, devices: total.devices + 1, lastAt: row.lastAt > total.lastAt ? row.lastAt : total.lastAt });
  }
  return totals;
}

/** What the last hit was: the remote end and which way, or the file; and who, where the agent could tell. */
export function lastHitText(hit: IndicatorHitRow['lastHit']): string {
  const what = hit.remote !== null ? `${hit.direction === 'inbound' ? 'from' : 'to'} ${hit.remote}${hit.name !== null ? ` (an address of ${hit.name})` : ''}` : hit.name !== null ? `DNS query for ${hit.name}` : hit.path ?? '';
  const who = [hit.process, hit.user && `user ${hit.user}`].filter(Boolean).join(', ');
  return `${hit.action === 'block' ? 'Blocked' : 'Audited'} ${what}${who ? ` (${who})` : ''}`;
}

/**
 * Hits as rows, one per indicator and device: for an indicator, its devices;
 * for a device, its indicators (named by `indicatorName`).
 */
export function IndicatorHitsTable({ rows, label, indicatorName }: { rows: readonly IndicatorHitRow[]; label: string; indicatorName?: (id: string) => string }) {
  const styles = useStyles();
  if (rows.length === 0) return <Text block>No hit reported.</Text>;
  return (
    <Table aria-label={label} size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>{indicatorName ? 'Indicator' : 'Device'}</TableHeaderCell>
          <TableHeaderCell>Hits</TableHeaderCell>
          <TableHeaderCell>First</TableHeaderCell>
          <TableHeaderCell>Last</TableHeaderCell>
          <TableHeaderCell>Last hit</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {rows.map((row) => (
          <TableRow key={`${row.indicatorId}:${row.deviceId}`}>
            <TableCell className={styles.text}>{indicatorName ? indicatorName(row.indicatorId) : <Link to={`/devices/${row.deviceId}`}>{row.deviceName}</Link>}</TableCell>
            <TableCell>{row.count.toLocaleString()}</TableCell>
            <TableCell>{formatDateTime(row.firstAt)}</TableCell>
            <TableCell>{formatDateTime(row.lastAt)}</TableCell>
            <TableCell className={styles.text}>{lastHitText(row.lastHit)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
