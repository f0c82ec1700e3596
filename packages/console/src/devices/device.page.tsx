import { Badge, MessageBar, MessageBarBody, Subtitle1, Text, Title2, makeStyles, tokens } from '@fluentui/react-components';
import type { Device } from '@quell/contracts';
import { useQuery } from '@tanstack/react-query';
import { ActionsView } from '../action-center/actions-view.tsx';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime } from '../format.ts';
import { PageLoading } from '../layout.tsx';
import { Link, useLocation } from '../router.tsx';

const useStyles = makeStyles({
  facts: { display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalL, rowGap: tokens.spacingVerticalXS, margin: `${tokens.spacingVerticalM} 0` },
  term: { color: tokens.colorNeutralForeground2 },
  value: { margin: 0, wordBreak: 'break-all' },
  section: { display: 'block', marginTop: tokens.spacingVerticalXL },
});

const HEALTH_COLORS: Record<Device['health'], 'success' | 'danger' | 'subtle'> = { online: 'success', offline: 'danger', unmanaged: 'subtle' };

/** A device's facts and its actions; Go hunt lands here with `?entity=` to show the actions on that entity. */
export default function DevicePage({ params }: { params: Record<string, string> }) {
  const styles = useStyles();
  const { search } = useLocation();
  const entity = search.get('entity') ?? undefined;
  const id = params.id!;
  const device = useQuery({ queryKey: ['device', id], queryFn: () => api.getDevice(id) });
  if (device.isPending) return <PageLoading />;
  if (device.isError) return <MessageBar intent="error"><MessageBarBody>{problemText(device.error)}</MessageBarBody></MessageBar>;
  const d = device.data;
  const fact = (term: string, value: React.ReactNode) => (
    <>
      <dt className={styles.term}>{term}</dt>
      <dd className={styles.value}>{value}</dd>
    </>
  );
  return (
    <>
      <Title2 as="h1">{d.name}</Title2>
      <dl className={styles.facts} aria-label="Device facts">
        {fact('Health', <Badge appearance="tint" color={HEALTH_COLORS[d.health]}>{d.health}</Badge>)}
        {fact('Last seen', formatDateTime(d.lastSeenAt))}
        {fact('Platform', d.platform)}
        {fact('Device group', d.groupId ?? 'None')}
        {fact('Operating system', d.agent ? `${d.agent.os} (${d.agent.kernel})` : 'No agent enrolled')}
        {d.agent && fact('Agent version', d.agent.agentVersion)}
        {d.agent && fact('IP addresses', d.agent.ips.join(', ') || '—')}
        {fact('Device ID', d.id)}
      </dl>
      {entity !== undefined && (
        <MessageBar intent="info">
          <MessageBarBody>
            Showing the actions on <Text weight="semibold">{entity}</Text> on this device. <Link to={`/devices/${d.id}`}>Show all of its actions</Link>
          </MessageBarBody>
        </MessageBar>
      )}
      <Subtitle1 as="h2" className={styles.section}>Pending actions</Subtitle1>
      <ActionsView view="pending" filters={{ deviceId: d.id }} entityName={entity} label="Pending actions on this device" />
      <Subtitle1 as="h2" className={styles.section}>Action history</Subtitle1>
      <ActionsView view="history" filters={{ deviceId: d.id }} entityName={entity} label="Action history of this device" />
    </>
  );
}
