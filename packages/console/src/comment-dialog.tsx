import {
  Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, MessageBar, MessageBarBody, Text, Textarea,
  makeStyles, tokens,
} from '@fluentui/react-components';
import { type ReactNode, useState } from 'react';
import { problemText } from './api/problem-text.ts';

const useStyles = makeStyles({
  content: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM },
});

export interface CommentDialogProps {
  title: string;
  /** What will happen, in words. */
  consequence: ReactNode;
  /** Fields the action needs besides the comment. */
  children?: ReactNode;
  confirmLabel: string;
  /** Why the fields are not complete yet, or null when the form may be sent. */
  incomplete?: string | null;
  pending: boolean;
  error: unknown;
  /** Said after the server's refusal, e.g. that nothing was changed. */
  errorNote?: string;
  onConfirm: (comment: string) => void;
  onClose: () => void;
}

/** The refusal, then the note as a sentence of its own. */
const withNote = (text: string, note: string | undefined): string => (note ? `${text}${/[.!?]$/.test(text) ? '' : '.'} ${note}` : text);

/**
 * A modal that asks for a comment (always required) and any fields the step
 * needs, says what will happen, and shows the server's refusal in words.
 * Fluent's Dialog traps focus inside and gives it back to the opener on close.
 */
export function CommentDialog({ title, consequence, children, confirmLabel, incomplete = null, pending, error, errorNote, onConfirm, onClose }: CommentDialogProps) {
  const styles = useStyles();
  const [comment, setComment] = useState('');
  const ready = comment.trim() !== '' && incomplete === null && !pending;
  return (
    <Dialog open modalType="modal" onOpenChange={(_, data) => !data.open && onClose()}>
      <DialogSurface>
        <form onSubmit={(event) => { event.preventDefault(); if (ready) onConfirm(comment.trim()); }}>
          <DialogBody>
            <DialogTitle>{title}</DialogTitle>
            <DialogContent className={styles.content}>
              {error !== null && error !== undefined && (
                <MessageBar intent="error" role="alert"><MessageBarBody>{withNote(problemText(error), errorNote)}</MessageBarBody></MessageBar>
              )}
              <div>{consequence}</div>
              {children}
              <Field label="Comment" required hint="Recorded with the action in its timeline and the audit log.">
                <Textarea value={comment} onChange={(_, data) => setComment(data.value)} maxLength={2000} resize="vertical" />
              </Field>
              {incomplete !== null && <Text size={200}>{incomplete}</Text>}
            </DialogContent>
            <DialogActions>
              <Button appearance="primary" type="submit" disabled={!ready}>{confirmLabel}</Button>
              <Button onClick={onClose}>Cancel</Button>
            </DialogActions>
          </DialogBody>
        </form>
      </DialogSurface>
    </Dialog>
  );
}
