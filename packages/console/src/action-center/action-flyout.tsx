import {
  Button, DrawerBody, DrawerHeader, DrawerHeaderTitle, MessageBar, MessageBarBody, OverlayDrawer, Spinner, Subtitle2, Text, Tooltip,
  makeStyles, tokens,
} from '@fluentui/react-components';
import { type Action, type ActionOrigin, type ActionTimelineEntry, FILE_QUARANTINE_TYPES, IN_FORCE_STATUSES, isStatusIn, isUndoable } from '@quell/contracts';
import { type ReactNode, useState } from 'react';
import { problemText } from '../api/problem-text.ts';
import { ENTITY_TYPE_LABELS, SOURCE_LABELS, formatDateTime, statusLabel, typeLabel } from '../format.ts';
import { Link } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { EffectNotes } from './effect-notes.tsx';
import { DecisionDialog } from './decision-dialog.tsx';
import { useOpenAction } from './flyout-host.tsx';
import { undoRefusal } from './refusals.ts';
import type { Decision } from './use-actions.ts';
import { useActionDetail, useInstances, useNow } from './use-actions.ts';
import { StatusWithDeadline } from './status-badge.tsx';

const useStyles = makeStyles({
  buttons: { display: 'flex', flexWrap: 'wrap', alignItems: 'center', gap: tokens.spacingHorizontalM, margin: `${tokens.spacingVerticalM} 0` },
  details: { display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: tokens.spacingHorizontalL, rowGap: tokens.spacingVerticalXS, margin: 0 },
  term: { color: tokens.colorNeutralForeground2 },
  value: { margin: 0, wordBreak: 'break-all' },
  timeline: { listStyle: 'none', padding: 0, margin: 0, display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalS },
  event: { borderLeft: `2px solid ${tokens.colorBrandStroke1}`, paddingLeft: tokens.spacingHorizontalM },
  section: { marginTop: tokens.spacingVerticalL, marginBottom: tokens.spacingVerticalS },
  note: { color: tokens.colorNeutralForeground2 },
});

const EVENT_LABELS: Record<ActionTimelineEntry['event'], string> = {
  create: 'Created', approve: 'Approved', reject: 'Rejected', expire: 'Expired', cancel: 'Cancelled', deliver: 'Delivered to the device',
  complete: 'Completed', fail: 'Failed', time_out: 'Timed out', undo_complete: 'Undone', undo_requested: 'Undo requested',
};

/** A button that is either usable or disabled with the reason in a tooltip (and in its description for screen readers). */
function GuardedButton({ refusal, children, onClick }: { refusal: string | null; children: ReactNode; onClick: () => void }) {
  const button = <Button disabledFocusable={refusal !== null} onClick={refusal === null ? onClick : undefined}>{children}</Button>;
  return refusal === null ? button : <Tooltip content={refusal} relationship="description">{button}</Tooltip>;
}

/** Whether to offer Undo at all: never for a type without an undo, nor for an action that never completed and never will. */
const offersUndo = (action: Action): boolean => isUndoable(action.type) && isStatusIn(IN_FORCE_STATUSES, action.status);

function Details({ action, origin, onClose }: { action: Action; origin: ActionOrigin | undefined; onClose: () => void }) {
  const styles = useStyles();
  const openAction = useOpenAction();
  const actionLink = (id: string) => <Button appearance="transparent" size="small" className={styles.value} onClick={() => openAction(id)}>{id}</Button>;
  const linkList = (links: Array<[key: string, to: string, text: string]>) => links.map(([key, to, text], i) => (
    <span key={key}>{i > 0 && ', '}<Link to={to} closeFirst={onClose}>{text}</Link></span>
  ));
  const row = (term: string, value: ReactNode) => (
    <>
      <dt className={styles.term}>{term}</dt>
      <dd className={styles.value}>{value ?? '—'}</dd>
    </>
  );
  return (
    <dl className={styles.details}>
      {row('Action ID', action.id)}
      {row('Action type', typeLabel(action.type))}
      {row('Entity type', ENTITY_TYPE_LABELS[action.entityType])}
      {row('Entity', action.entity.name)}
      {action.entity.sha256 && row('SHA-256', action.entity.sha256)}
      {action.entity.path && row('Path', action.entity.path)}
      {row('Asset', <Link to={`/devices/${action.deviceId}`} closeFirst={onClose}>{action.deviceName}</Link>)}
      {row('Source', SOURCE_LABELS[action.source])}
      {row('Investigation ID', action.investigationId && <Link to={`/investigations/${encodeURIComponent(action.investigationId)}`} closeFirst={onClose}>{action.investigationId}</Link>)}
      {row('Incident ID', origin && origin.incidentIds.length > 0 ? linkList(origin.incidentIds.map((id) => [id, `/incidents/${encodeURIComponent(id)}`, id])) : action.incidentId)}
      {origin && origin.alerts.length > 0 && row(origin.alerts.length === 1 ? 'Alert' : 'Alerts', linkList(origin.alerts.map((a) => [a.id, `/alerts?alert=${a.id}`, a.title])))}
      {row('Approval ID', action.approvalId)}
      {row('Requested by', action.requestedBy)}
      {row('Requested at', formatDateTime(action.requestedAt))}
      {row('Comment', action.comment)}
      {row('Decided by', action.decidedBy)}
      {row('Decided at', formatDateTime(action.decidedAt))}
      {row('Decision comment', action.decisionComment)}
      {action.expiresAt && row('Expires at', formatDateTime(action.expiresAt))}
      {row('Last update', formatDateTime(action.updatedAt))}
      {action.undoOf && row('Undo of', actionLink(action.undoOf))}
      {action.undoneBy && row('Undone by', actionLink(action.undoneBy))}
      {Object.keys(action.parameters).length > 0 && row('Parameters', Object.entries(action.parameters).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`).join('; '))}
      {action.result?.output && row('Result', action.result.output)}
      {action.result?.error && row('Error', action.result.error)}
    </dl>
  );
}

/** Go hunt: the device page with its actions filtered on the server to this entity (its SHA-256 when it has one). */
const goHuntPath = (action: Action): string => `/devices/${action.deviceId}?entity=${encodeURIComponent(action.entity.sha256 ?? action.entity.name)}`;

/** Every detail of one action, its timeline, and what the signed-in role may do with it. */
export default function ActionFlyout({ actionId, onClose }: { actionId: string | null; onClose: () => void }) {
  const styles = useStyles();
  const [decision, setDecision] = useState<Decision | null>(null);
  const now = useNow();
  const permissions = usePermissions();
  const detail = useActionDetail(actionId);
  const action = detail.data?.action;
  const timeline = detail.data?.timeline ?? [];
  const isQuarantine = action !== undefined && FILE_QUARANTINE_TYPES.includes(action.type) && action.entity.sha256 !== undefined;
  const mayUndo = permissions.has('actions:undo');
  const instances = useInstances(action, isQuarantine && action.status === 'completed' && mayUndo);
  const decideRefusal = permissions.decideRefusal();

  return (
    <OverlayDrawer open={actionId !== null} position="end" size="medium" onOpenChange={(_, data) => !data.open && onClose()}>
      <DrawerHeader>
        <DrawerHeaderTitle action={<Button appearance="subtle" aria-label="Close" onClick={onClose}>✕</Button>}>
          {action ? typeLabel(action.type) : 'Action'}
        </DrawerHeaderTitle>
        {action && <Text className={styles.value}>{action.entity.name} on {action.deviceName}</Text>}
      </DrawerHeader>
      <DrawerBody>
        {detail.isPending && <Spinner label="Loading the action…" />}
        {detail.isError && <MessageBar intent="error"><MessageBarBody>{problemText(detail.error)}</MessageBarBody></MessageBar>}
        {action && (
          <>
            <StatusWithDeadline action={action} now={now} />
            {detail.data?.waiting && <Text block className={styles.note}>{detail.data.waiting.reason}</Text>}
            {detail.data && <EffectNotes detail={detail.data} />}
            <div className={styles.buttons} role="group" aria-label="Actions on this action">
              {action.investigationId
                ? <Link to={`/investigations/${encodeURIComponent(action.investigationId)}`} closeFirst={onClose}>Open investigation page</Link>
                : <Text className={styles.note}>No investigation proposed this action</Text>}
              {action.status === 'pending_approval' && decideRefusal === null && (
                <>
                  <Button appearance="primary" onClick={() => setDecision({ kind: 'approve', actions: [action] })}>Approve</Button>
                  <Button onClick={() => setDecision({ kind: 'reject', actions: [action] })}>Reject</Button>
                </>
              )}
              <Link to={goHuntPath(action)} closeFirst={onClose}>Go hunt</Link>
              {offersUndo(action) && mayUndo && (
                <GuardedButton refusal={undoRefusal(action, permissions.undoRefusal)} onClick={() => setDecision({ kind: 'undo', actions: [action] })}>Undo</GuardedButton>
              )}
              {/* Counted in devices where the file is quarantined now, not in actions. */}
              {action.status !== 'pending_approval' && isQuarantine && mayUndo && instances.data && instances.data.deviceCount > 0 && (
                <GuardedButton
                  refusal={undoRefusal(action, permissions.undoRefusal)}
                  onClick={() => setDecision({ kind: 'undo_instances', actions: [action], instances: instances.data.instances, deviceCount: instances.data.deviceCount })}
                >
                  Apply to {instances.data.deviceCount} more {instances.data.deviceCount === 1 ? 'instance' : 'instances'} of this file
                </GuardedButton>
              )}
            </div>
            {action.status === 'pending_approval' && decideRefusal !== null && <Text block className={styles.note}>{decideRefusal}.</Text>}
            <Subtitle2 as="h3" block className={styles.section}>Details</Subtitle2>
            <Details action={action} origin={detail.data?.origin} onClose={onClose} />
            <Subtitle2 as="h3" block className={styles.section}>Timeline</Subtitle2>
            <ol className={styles.timeline} aria-label="Timeline">
              {timeline.map((entry, i) => (
                <li key={i} className={styles.event}>
                  <Text weight="semibold">{EVENT_LABELS[entry.event]}</Text> <Text size={200}>{formatDateTime(entry.at)} · {entry.actor}</Text>
                  {/* An undo requested leaves this action's status as it was until the undo completes: no change to show. */}
                  {entry.fromStatus !== entry.toStatus && <Text block size={200}>{entry.fromStatus ? `${statusLabel(entry.fromStatus)} → ` : ''}{statusLabel(entry.toStatus)}</Text>}
                  {entry.comment && <Text block size={200} className={styles.value}>“{entry.comment}”</Text>}
                </li>
              ))}
            </ol>
          </>
        )}
      </DrawerBody>
      {decision && <DecisionDialog decision={decision} onClose={() => setDecision(null)} />}
    </OverlayDrawer>
  );
}
