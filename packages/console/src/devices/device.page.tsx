import { Badge, Button, MessageBar, MessageBarBody, Subtitle1, Text, Title2, makeStyles, tokens } from '@fluentui/react-components';
import type { Device } from '@quell/contracts';
import { useMutation, useQuery } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { ActionsView } from '../action-center/actions-view.tsx';
import { ACTIONS_KEY } from '../action-center/use-actions.ts';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { formatDateTime } from '../format.ts';
import { PageLoading } from '../layout.tsx';
import { Link, navigate, useLocation } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { type AppliedState, useDeviceState } from './device-state.ts';
import { OffboardingNotes } from './offboarding-notes.tsx';
import { HEALTH_COLORS, HEALTH_LABELS, useDeviceGroups } from './devices-shared.ts';
import { ResponseActions } from './response-actions.tsx';
import { IndicatorHitsTable } from '../indicators/indicator-hits.tsx';
import { INDICATOR_TYPE_LABELS } from '../indicators/indicator-labels.ts';

const useStyles = makeStyles({
  head: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalL, flexWrap: 'wrap' },
  facts: { display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalL, rowGap: tokens.spacingVerticalXS, margin: `${tokens.spacingVerticalM} 0` },
  term: { color: tokens.colorNeutralForeground2 },
  value: { margin: 0, wordBreak: 'break-all' },
  section: { display: 'block', marginTop: tokens.spacingVerticalXL },
});

function stateText(state: AppliedState, on: string, releasing: string, off: string): ReactNode {
  if (!state.actionId) return <Badge appearance="tint" color="subtle">{off}</Badge>;
  const since = state.action ? ` since ${formatDateTime(state.action.updatedAt)}` : '';
  return <Badge appearance="tint" color={state.releasing ? 'warning' : 'danger'}>{state.releasing ? releasing : `${on}${since}`}</Badge>;
}

/** A device's facts, state, response actions and actions; Go hunt lands here with `?entity=` to filter its actions on the server. */
export default function DevicePage({ params }: { params: Record<string, string> }) {
  const id = params.id!;
  // Under the actions' key: what its actions do changes what is in force on it, and the page follows at once.
  const device = useQuery({ queryKey: [ACTIONS_KEY, 'device', id], queryFn: () => api.getDevice(id), refetchInterval: 15_000 });
  if (device.isPending) return <PageLoading />;
  if (device.isError) return <MessageBar intent="error"><MessageBarBody>{problemText(device.error)}</MessageBarBody></MessageBar>;
  return <DeviceView device={device.data} />;
}

function DeviceView({ device: d }: { device: Device }) {
  const styles = useStyles();
  const permissions = usePermissions();
  const { search } = useLocation();
  const entity = search.get('entity') || undefined;
  const groups = useDeviceGroups();
  const state = useDeviceState(d);
  const start = useMutation({ mutationFn: () => api.startInvestigation(d.id), onSuccess: (inv) => navigate(`/investigations/${inv.id}`) });
  const group = d.groupId ? groups.data?.items.find((g) => g.id === d.groupId) : undefined;
  const fact = (term: string, value: ReactNode) => (
    <>
      <dt className={styles.term}>{term}</dt>
      <dd className={styles.value}>{value}</dd>
    </>
  );
  const filters = { deviceId: d.id, ...(entity ? { entity } : {}) };
  return (
    <>
      <div className={styles.head}>
        <Title2 as="h1">{d.name}</Title2>
        <Badge appearance="filled" color={HEALTH_COLORS[d.health]}>{HEALTH_LABELS[d.health]}</Badge>
        {permissions.has('investigations:manage') && (
          <Button onClick={() => start.mutate()} disabled={start.isPending}>Start investigation</Button>
        )}
      </div>
      {start.isError && <MessageBar intent="error" role="alert"><MessageBarBody>{problemText(start.error)}</MessageBarBody></MessageBar>}
      <OffboardingNotes device={d} />
      <WaitingForDevice device={d} />
      <dl className={styles.facts} aria-label="Device facts">
        {fact('Health', HEALTH_LABELS[d.health])}
        {fact('Last seen', formatDateTime(d.lastSeenAt))}
        {fact('Platform', d.platform)}
        {fact('Device group', d.groupId ? (group?.name ?? d.groupId) : 'None')}
        {d.agent && fact('Isolation', stateText(state.isolation, 'Isolated', 'Release from isolation on its way', 'Not isolated'))}
        {d.agent && fact('Code execution', stateText(state.restriction, 'Restricted', 'Removal of the restriction on its way', 'Not restricted'))}
        {state.containedUsers.length > 0 && fact('Contained users', state.containedUsers.map((a) => a.entity.name).join(', '))}
        {!d.agent && fact('Containment', state.containments.length > 0
          ? state.containments.map((a) => `${a.entity.name} (${a.status === 'completed' ? 'enforced' : 'being enforced'})`).join(', ')
          : 'Not contained')}
        {fact('Operating system', d.agent ? `${d.agent.os} (${d.agent.kernel})` : 'No agent enrolled')}
        {d.agent && fact('Agent version', d.agent.agentVersion)}
        {d.agent && fact('IP addresses', d.agent.ips.join(', ') || '—')}
        {d.agent && fact('Enrolled', formatDateTime(d.agent.enrolledAt))}
        {d.agent && fact('Indicators and containment', <DesiredState state={d.agent.desiredState} />)}
        {fact('Device ID', d.id)}
      </dl>
      <Subtitle1 as="h2" className={styles.section}>Response actions</Subtitle1>
      <ResponseActions device={d} state={state} />
      {entity !== undefined && (
        <MessageBar intent="info">
          <MessageBarBody>
            Showing the actions on <Text weight="semibold">{entity}</Text> on this device. <Link to={`/devices/${d.id}`}>Show all of its actions</Link>
          </MessageBarBody>
        </MessageBar>
      )}
      <Subtitle1 as="h2" className={styles.section}>Indicator hits</Subtitle1>
      <DeviceIndicatorHits deviceId={d.id} />
      <Subtitle1 as="h2" className={styles.section}>Pending actions</Subtitle1>
      <ActionsView key={`pending-${entity ?? ''}`} view="pending" filters={filters} label="Pending actions on this device" />
      <Subtitle1 as="h2" className={styles.section}>Action history</Subtitle1>
      <ActionsView key={`history-${entity ?? ''}`} view="history" filters={filters} label="Action history of this device" />
    </>
  );
}

/**
 * Queued is not under way: when the device's agent is out of contact (or it
 * has none), says how many approved actions wait for it and since when it
 * was last heard from (the device counts them, containment aside: other
 * devices' agents carry it).
 */
function WaitingForDevice({ device }: { device: Device }) {
  const waiting = device.queuedActions;
  if (device.health === 'online' || waiting === 0) return null;
  const one = waiting === 1;
  const count = `${waiting} queued ${one ? 'action waits' : 'actions wait'}`;
  return (
    <MessageBar intent="warning" aria-label="Waiting for the device">
      <MessageBarBody>
        {device.agent
          ? `${count} for this device's agent, out of contact since ${device.lastSeenAt ? formatDateTime(device.lastSeenAt) : 'it enrolled'}: ${one ? 'it runs' : 'they run'} when it is back.`
          : `${count} for this device, which has no agent enrolled: nothing can carry ${one ? 'it' : 'them'} out until one is.`}
      </MessageBarBody>
    </MessageBar>
  );
}

/** The indicators that matched on this device, as its agent reported them. */
function DeviceIndicatorHits({ deviceId }: { deviceId: string }) {
  const hits = useQuery({ queryKey: ['indicators', 'hits', { deviceId }], queryFn: () => api.listIndicatorHits({ deviceId }), refetchInterval: 30_000 });
  const indicators = useQuery({ queryKey: ['indicators', { includeExpired: true }], queryFn: () => api.listIndicators({ includeExpired: true }), enabled: (hits.data?.items.length ?? 0) > 0 });
  const name = (id: string): string => {
    const indicator = indicators.data?.items.find((i) => i.id === id);
    return indicator ? `${INDICATOR_TYPE_LABELS[indicator.type]} ${indicator.value} (${indicator.title})` : id;
  };
  if (hits.isError) return <MessageBar intent="error"><MessageBarBody>{problemText(hits.error)}</MessageBarBody></MessageBar>;
  return <IndicatorHitsTable rows={hits.data?.items ?? []} label="Indicator hits on this device" indicatorName={name} />;
}

/** What the agent last reported of the desired state, signed: the version it applied, and what it could not enforce, in its words. */
function DesiredState({ state }: { state: NonNullable<Device['agent']>['desiredState'] }) {
  if (state.version === null) return <Text>No state applied yet</Text>;
  const problems = [
    state.error && `Not applied: ${state.error}`,
    state.addressIndicators && `Address indicators not enforced: ${state.addressIndicators}`,
    state.dnsIndicators && `Domain and URL indicators not enforced: ${state.dnsIndicators}`,
  ].filter((problem): problem is string => Boolean(problem));
  return (
    <>
      <Badge appearance="tint" color={problems.length > 0 ? 'danger' : 'success'}>{problems.length > 0 ? `Version ${state.version}, with problems` : `Version ${state.version} in force`}</Badge>
      {problems.map((problem) => <Text block key={problem}>{problem}</Text>)}
    </>
  );
}
