import { Button, Link, MessageBar, MessageBarBody, makeStyles, tokens } from '@fluentui/react-components';
import type { Action } from '@quell/contracts';
import { type ReactNode, createContext, useContext, useState } from 'react';
import type { BulkResult } from '../api/api-client.ts';
import { typeLabel } from '../format.ts';
import { Link as RouterLink } from '../router.tsx';
import { useOpenAction } from './flyout-host.tsx';
import { type Decision, targets } from './use-actions.ts';

const useStyles = makeStyles({
  // Fixed at the bottom, above the pages: appearing, it moves no row under the pointer.
  name: { display: 'inline-block', maxWidth: '180px', overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap', verticalAlign: 'bottom' },
  outcome: { position: 'fixed', bottom: tokens.spacingVerticalL, left: '50%', transform: 'translateX(-50%)', width: 'min(720px, calc(100vw - 32px))', zIndex: 100, boxShadow: tokens.shadow16 },
});

const count = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** What a decision did, in a sentence: how many actions, of what, and where they went. */
function outcomeText(decision: Decision, result: BulkResult): string {
  const decided = targets(decision);
  const what = count(decided.length, `${typeLabel(decision.actions[0]!.type).toLowerCase()} action`, `${typeLabel(decision.actions[0]!.type).toLowerCase()} actions`);
  const devices = count(new Set(result.items.map((a) => a.deviceId)).size, 'device', 'devices');
  switch (decision.kind) {
    case 'approve': return `Approved ${what}: queued to ${devices}.`;
    case 'reject': return `Rejected ${what}: ${decided.length === 1 ? 'it' : 'they'} will not run.`;
    case 'undo':
    case 'undo_instances': return `Undo of ${what} requested: ${count(result.items.length, 'undo action', 'undo actions')} queued to ${devices}.`;
  }
}

/** The last decision's outcome, shown until dismissed or the next decision. */
interface Outcome { text: string; actions: Action[] }
const OutcomeContext = createContext<{ outcome: Outcome | null; setOutcome: (outcome: Outcome | null) => void }>({ outcome: null, setOutcome: () => undefined });

const MAX_LINKED = 5;

/** Keeps what the last decision did, wherever it was taken: the Action center, the flyout, an investigation or an incident. */
export function DecisionOutcomes({ children }: { children: ReactNode }) {
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  return <OutcomeContext.Provider value={{ outcome, setOutcome }}>{children}</OutcomeContext.Provider>;
}

/** The message that says what the last decision did, with a link to each action it made or changed, and to the History. */
export function DecisionOutcomeBar() {
  const { outcome, setOutcome } = useContext(OutcomeContext);
  const openAction = useOpenAction();
  const styles = useStyles();
  if (!outcome) return null;
  return (
    <MessageBar intent="success" role="status" aria-label="Decision outcome" className={styles.outcome}>
      <MessageBarBody>
        {outcome.text}{' '}
        {outcome.actions.slice(0, MAX_LINKED).map((a, i) => (
          <span key={a.id}>{i > 0 && ', '}<Link as="button" inline onClick={() => openAction(a.id)} title={`${a.entity.name} on ${a.deviceName}`}><span className={styles.name}>{a.entity.name}</span> on {a.deviceName}</Link></span>
        ))}
        {outcome.actions.length > MAX_LINKED && ` and ${outcome.actions.length - MAX_LINKED} more`}
        {' · '}
        <RouterLink to="/action-center/history">View in History</RouterLink>
      </MessageBarBody>
      <Button appearance="transparent" onClick={() => setOutcome(null)}>Dismiss</Button>
    </MessageBar>
  );
}

/** Says what a decision did, in the message above every page. */
export function useAnnounceOutcome(): (decision: Decision, result: BulkResult) => void {
  const announce = useAnnounce();
  return (decision, result) => announce(outcomeText(decision, result), result.items);
}

/** Says what a flow of its own did (a false positive, say), with a link to each action it made. */
export function useAnnounce(): (text: string, actions: Action[]) => void {
  const { setOutcome } = useContext(OutcomeContext);
  return (text, actions) => setOutcome({ text, actions });
}
