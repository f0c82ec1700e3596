import { MessageBar, MessageBarBody, MessageBarTitle } from '@fluentui/react-components';
import type { ActionDetail } from '@quell/contracts';
import { formatDateTime } from '../format.ts';

/**
 * Where the action's effect was found lifted on a device (tampering, a
 * firewall reload, a remount) and whether its agent put it back: an
 * effect in force is only as true as its last check. Device names and the
 * agent's words are shown as text.
 */
export function DriftNotes({ drift }: { drift: ActionDetail['drift'] }) {
  if (drift.length === 0) return null;
  return (
    <div aria-label="Tampering">
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
