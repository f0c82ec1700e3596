import {
  Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, MessageBar, MessageBarBody, Text, Textarea,
  makeStyles, tokens,
} from '@fluentui/react-components';
import { ACTION_CATALOGUE, type Action } from '@quell/contracts';
import { type ReactNode, createContext, useContext, useState } from 'react';
import type { BulkResult } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { typeLabel } from '../format.ts';
import { Link } from '../router.tsx';
import { useOpenAction } from './flyout-host.tsx';
import { type Decision, useDecide } from './use-actions.ts';

const useStyles = makeStyles({
  list: { maxHeight: '240px', overflowY: 'auto', margin: `${tokens.spacingVerticalS} 0`, paddingLeft: tokens.spacingHorizontalXL },
  entity: { wordBreak: 'break-all' },
  content: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM },
  // Fixed at the bottom, above the pages: appearing, it moves no row under the pointer.
  outcome: { position: 'fixed', bottom: tokens.spacingVerticalL, left: '50%', transform: 'translateX(-50%)', width: 'min(720px, calc(100vw - 32px))', zIndex: 100, boxShadow: tokens.shadow16 },
});

const VERB = { approve: 'Approve', reject: 'Reject', undo: 'Undo', undo_instances: 'Undo' } as const;

function consequence(decision: Decision): string {
  const n = decision.actions.length;
  const them = n === 1 ? 'It' : 'They';
  const type = decision.actions[0]!.type;
  const undoType = ACTION_CATALOGUE[type].undoType;
  switch (decision.kind) {
    case 'approve': return `${them} will be queued and sent to ${n === 1 ? 'its device' : 'their devices'}.`;
    case 'reject': return `${them} will not run. The decision is final.`;
    case 'undo': return `Each gets a ${undoType ? typeLabel(undoType).toLowerCase() : 'undo'} action, sent to its device without further approval.`;
    case 'undo_instances': return `The file is restored on this device and on ${decision.deviceCount} more ${decision.deviceCount === 1 ? 'device' : 'devices'}.`;
  }
}

const count = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** What a decision did, in a sentence: how many actions, of what, and where they went. */
export function outcomeText(decision: Decision, result: BulkResult): string {
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

/** The last decision's outcome, shown above the page until dismissed or the next decision. */
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
          <span key={a.id}>{i > 0 && ', '}<Button appearance="transparent" size="small" onClick={() => openAction(a.id)}>{a.entity.name} on {a.deviceName}</Button></span>
        ))}
        {outcome.actions.length > MAX_LINKED && ` and ${outcome.actions.length - MAX_LINKED} more`}
        {' · '}
        <Link to="/action-center/history">View in History</Link>
      </MessageBarBody>
      <Button appearance="transparent" onClick={() => setOutcome(null)}>Dismiss</Button>
    </MessageBar>
  );
}

/** Every target of the decision: the actions, plus the other instances of a quarantined file. */
const targets = (decision: Decision): Action[] => (decision.kind === 'undo_instances' ? [...decision.actions, ...decision.instances] : decision.actions);

/** One confirmation for one decision on one or many actions of one type; it always asks for a comment. */
export function DecisionDialog({ decision, onClose, onDecided }: { decision: Decision; onClose: () => void; onDecided?: () => void }) {
  const styles = useStyles();
  const [comment, setComment] = useState('');
  const decide = useDecide();
  const announce = useContext(OutcomeContext).setOutcome;
  const all = targets(decision);
  const title = `${VERB[decision.kind]} ${all.length} ${typeLabel(decision.actions[0]!.type).toLowerCase()} ${all.length === 1 ? 'action' : 'actions'}`;
  const confirm = (): void => decide.mutate({ decision, comment: comment.trim() }, {
    onSuccess: (result) => {
      announce({ text: outcomeText(decision, result), actions: result.items });
      onDecided?.();
      onClose();
    },
  });

  return (
    <Dialog open modalType="modal" onOpenChange={(_, data) => !data.open && onClose()}>
      <DialogSurface>
        <DialogBody>
          <DialogTitle>{title}</DialogTitle>
          <DialogContent className={styles.content}>
            {decide.isError && (
              <MessageBar intent="error" role="alert"><MessageBarBody>{problemText(decide.error)}</MessageBarBody></MessageBar>
            )}
            <div>
              <Text>{consequence(decision)}</Text>
              <ul className={styles.list} aria-label="Actions this decision covers">
                {all.map((a) => <li key={a.id}><span className={styles.entity}>{a.entity.name}</span> on {a.deviceName}</li>)}
              </ul>
            </div>
            <Field label="Comment" required hint="Recorded with the decision in the action's timeline and the audit log.">
              <Textarea value={comment} onChange={(_, data) => setComment(data.value)} maxLength={2000} resize="vertical" />
            </Field>
          </DialogContent>
          <DialogActions>
            <Button appearance="primary" onClick={confirm} disabled={decide.isPending || decide.isError || comment.trim() === ''}>{VERB[decision.kind]}</Button>
            <Button onClick={onClose}>{decide.isError ? 'Close' : 'Cancel'}</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
