import {
  Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, MessageBar, MessageBarBody, Text, Textarea,
  makeStyles, tokens,
} from '@fluentui/react-components';
import { ACTION_CATALOGUE } from '@quell/contracts';
import { useState } from 'react';
import { problemText } from '../api/problem-text.ts';
import { typeLabel } from '../format.ts';
import { useAnnounceOutcome } from './decision-outcome.tsx';
import { type Decision, targets, useDecide } from './use-actions.ts';

const useStyles = makeStyles({
  list: { maxHeight: '240px', overflowY: 'auto', margin: `${tokens.spacingVerticalS} 0`, paddingLeft: tokens.spacingHorizontalXL },
  entity: { wordBreak: 'break-all' },
  content: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM },
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


/** One confirmation for one decision on one or many actions of one type; it always asks for a comment. */
export function DecisionDialog({ decision, onClose, onDecided }: { decision: Decision; onClose: () => void; onDecided?: () => void }) {
  const styles = useStyles();
  const [comment, setComment] = useState('');
  const decide = useDecide();
  const announce = useAnnounceOutcome();
  const all = targets(decision);
  const title = `${VERB[decision.kind]} ${all.length} ${typeLabel(decision.actions[0]!.type).toLowerCase()} ${all.length === 1 ? 'action' : 'actions'}`;
  const confirm = (): void => decide.mutate({ decision, comment: comment.trim() }, {
    onSuccess: (result) => {
      announce(decision, result);
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
