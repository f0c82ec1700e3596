import { MessageBar, MessageBarBody, Spinner, Subtitle1, Text, Title2, makeStyles, tokens } from '@fluentui/react-components';
import { ACTION_STATUSES, type ActionStatus } from '@quell/contracts';
import { useActivity, useNow, usePendingSummary } from '../action-center/use-actions.ts';
import type { ActionActivity, ActionSummary } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { STATUS_LABELS, formatDateTime, formatDuration, typeLabel } from '../format.ts';
import { Link } from '../router.tsx';

const useStyles = makeStyles({
  cards: { display: 'grid', gridTemplateColumns: 'repeat(auto-fit, minmax(380px, 1fr))', gap: tokens.spacingHorizontalL, marginTop: tokens.spacingVerticalL },
  card: {
    padding: tokens.spacingVerticalL, border: `1px solid ${tokens.colorNeutralStroke2}`, borderRadius: tokens.borderRadiusLarge, boxShadow: tokens.shadow4,
    display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalS,
  },
  big: { fontSize: tokens.fontSizeHero800, fontWeight: tokens.fontWeightSemibold, lineHeight: tokens.lineHeightHero800 },
  list: { margin: 0, paddingLeft: tokens.spacingHorizontalXL },
  legend: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, listStyle: 'none', padding: 0, margin: 0 },
  swatch: { display: 'inline-block', width: '10px', height: '10px', marginRight: tokens.spacingHorizontalXS },
  chart: { width: '100%', height: 'auto' },
});

/** One colour per status for the chart; the legend names them, so colour is never the only cue. */
const STATUS_COLORS: Record<ActionStatus, string> = {
  pending_approval: '#c19c00',
  queued: '#8a8886',
  in_progress: '#0078d4',
  completed: '#107c10',
  failed: '#d13438',
  rejected: '#5c2e91',
  expired: '#986f0b',
  cancelled: '#605e5c',
  timed_out: '#ca5010',
  undone: '#038387',
};

const DAYS = 30;

/** The last 30 days, oldest first, as `YYYY-MM-DD` (UTC, as the API counts them). */
function lastDays(now: number): string[] {
  const today = Math.floor(now / 86_400_000);
  return Array.from({ length: DAYS }, (_, i) => new Date((today - DAYS + 1 + i) * 86_400_000).toISOString().slice(0, 10));
}

function StatusChart({ data }: { data: ActionActivity['byStatusPerDay'] }) {
  const styles = useStyles();
  const days = lastDays(useNow(3_600_000));
  const byDay = new Map<string, Map<ActionStatus, number>>();
  for (const row of data) {
    const day = byDay.get(row.day) ?? new Map<ActionStatus, number>();
    day.set(row.status, (day.get(row.status) ?? 0) + row.count);
    byDay.set(row.day, day);
  }
  const totals = days.map((d) => [...(byDay.get(d)?.values() ?? [])].reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const perStatus = ACTION_STATUSES.map((s) => [s, data.filter((r) => r.status === s).reduce((sum, r) => sum + r.count, 0)] as const).filter(([, n]) => n > 0);
  const width = 600;
  const height = 160;
  const bar = width / DAYS;
  const summary = perStatus.length === 0
    ? 'No actions in the last 30 days'
    : `Actions in the last 30 days by status: ${perStatus.map(([s, n]) => `${STATUS_LABELS[s].toLowerCase()} ${n}`).join(', ')}; busiest day ${Math.max(...totals)}`;
  return (
    <>
      <svg viewBox={`0 0 ${width} ${height + 16}`} className={styles.chart} role="img" aria-label={summary}>
        {days.map((day, i) => {
          let y = height;
          return (
            <g key={day}>
              <title>{`${day}: ${totals[i]} actions`}</title>
              {ACTION_STATUSES.map((s) => {
                const n = byDay.get(day)?.get(s) ?? 0;
                if (n === 0) return null;
                const h = (n / max) * height;
                y -= h;
                return <rect key={s} x={i * bar + 1} y={y} width={bar - 2} height={h} fill={STATUS_COLORS[s]} />;
              })}
            </g>
          );
        })}
        <line x1={0} x2={width} y1={height} y2={height} stroke="#8a8886" />
        <text x={0} y={height + 14} fontSize={11} fill="#605e5c">{days[0]}</text>
        <text x={width} y={height + 14} fontSize={11} fill="#605e5c" textAnchor="end">{days[DAYS - 1]}</text>
      </svg>
      <ul className={styles.legend} aria-label="Legend">
        {perStatus.map(([s, n]) => (
          <li key={s}><svg className={styles.swatch} viewBox="0 0 10 10" aria-hidden="true"><rect width="10" height="10" fill={STATUS_COLORS[s]} /></svg>{STATUS_LABELS[s]}: {n}</li>
        ))}
      </ul>
    </>
  );
}

/** Queued is not under way: says when approved actions wait for devices out of contact, and since when one was heard from. */
function QueuedOffline({ waiting }: { waiting: ActionSummary['queuedOffline'] }) {
  if (waiting.actions === 0) return null;
  const devices = waiting.devices === 1 ? 'a device' : `${waiting.devices} devices`;
  return (
    <MessageBar intent="warning" aria-label="Waiting for devices">
      <MessageBarBody>
        {waiting.actions} queued {waiting.actions === 1 ? 'action waits' : 'actions wait'} for {devices} out of contact
        {waiting.lastSeenAt ? ` (${waiting.devices === 1 ? 'last seen' : 'the most recently seen at'} ${formatDateTime(waiting.lastSeenAt)})` : ' (never seen by an agent)'}: they run when the agents come back.{' '}
        <Link to="/devices?sort=health">See the devices</Link>
      </MessageBarBody>
    </MessageBar>
  );
}

/** Home: how many actions wait, for how long, and what the last 30 days looked like. */
export default function HomePage() {
  const styles = useStyles();
  const summary = usePendingSummary();
  const activity = useActivity();
  return (
    <>
      <Title2 as="h1">Home</Title2>
      {summary.isError && <MessageBar intent="error"><MessageBarBody>{problemText(summary.error)}</MessageBarBody></MessageBar>}
      {summary.isPending && <Spinner label="Loading…" />}
      {summary.data && (
        <div className={styles.cards}>
          <section className={styles.card} aria-labelledby="air-title">
            <Subtitle1 as="h2" id="air-title">Automated investigation &amp; response</Subtitle1>
            <div>
              <span className={styles.big}>{summary.data.pendingTotal}</span> <Text>{summary.data.pendingTotal === 1 ? 'action waits' : 'actions wait'} for approval</Text>
            </div>
            {summary.data.oldestPendingAgeSeconds !== null && (
              <Text block>The oldest has waited {formatDuration(summary.data.oldestPendingAgeSeconds * 1000)}.</Text>
            )}
            {summary.data.pendingByType.length > 0 && (
              <ul className={styles.list} aria-label="Pending actions by type">
                {summary.data.pendingByType.map((p) => <li key={p.type}>{typeLabel(p.type)}: {p.count}</li>)}
              </ul>
            )}
            <Link to="/action-center/pending">Open the Pending tab</Link>
            <QueuedOffline waiting={summary.data.queuedOffline} />
          </section>
          <section className={styles.card} aria-labelledby="chart-title">
            <Subtitle1 as="h2" id="chart-title">Actions by status, last 30 days</Subtitle1>
            {activity.isError && <MessageBar intent="error"><MessageBarBody>{problemText(activity.error)}</MessageBarBody></MessageBar>}
            {activity.isPending && <Spinner label="Loading…" />}
            {activity.data && (
              <>
                <StatusChart data={activity.data.byStatusPerDay} />
                <Text block>
                  Rejected: {activity.data.rejectedLast30Days}
                  {activity.data.expiredLast30Days > 0 && `, of which ${activity.data.expiredLast30Days} expired without a decision (an expiry counts as a rejection)`}
                </Text>
              </>
            )}
            <Link to="/action-center/history?range=30d">Open History</Link>
          </section>
        </div>
      )}
    </>
  );
}
