import { MessageBar, MessageBarBody, MessageBarTitle } from '@fluentui/react-components';
import type { ActionDetail } from '@quell/contracts';
import { formatDateTime } from '../format.ts';

/**
 * How true the action's effect is: unverified while the device's agent is
 * out of contact, and where it was found lifted (tampering, a firewall
 * reload, a remount) and whether its agent put it back. Device names and
 * the agent's words are shown as text.
 */
export function EffectNotes({ detail }: { detail: Pick<ActionDetail, 'drift' | 'unverified'> }) {
  const { drift, unverified } = detail;
  if (drift.length === 0 && unverified === null) return null;
  return (
    <div aria-label="Tampering">
      {unverified && (
        <MessageBar intent="warning">
          <MessageBarBody>
            <MessageBarTitle>Unverified{unverified.since ? ` since ${formatDateTime(unverified.since)}` : ''}</MessageBarTitle>
            {unverified.reason}
          </MessageBarBody>
        </MessageBar>
      )}
      {drift.map((d) => (
        <MessageBar key={d.deviceId} intent={d.repaired ? 'warning' : 'error'}>
          <MessageBarBody>
            <MessageBarTitle>
              {d.repaired ? `Re-applied after tampering at ${formatDateTime(d.lastAt)}` : `Found lifted at ${formatDateTime(d.lastAt)} and not re-applied`}
            </MessageBarTitle>
            on {d.deviceName}{d.count > 1 ? ` (${d.count} times since ${formatDateTime(d.firstAt)})` : ''}: {d.detail}
          </MessageBarBody>
        </MessageBar>
      ))}
    </div>
  );
}
