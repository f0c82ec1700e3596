import { Field, MessageBar, MessageBarBody, Radio, RadioGroup, makeStyles, tokens } from '@fluentui/react-components';
import type { Alert, FalsePositiveBody } from '@quell/contracts';
import { useState } from 'react';
import { CommentDialog } from '../comment-dialog.tsx';
import { usePermissions } from '../session/session.tsx';
import { fileHashes } from './alert-labels.ts';

const useStyles = makeStyles({
  list: { margin: 0, paddingLeft: tokens.spacingHorizontalL, display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalXS },
  hash: { wordBreak: 'break-all', fontFamily: tokens.fontFamilyMonospace },
});

type Undo = FalsePositiveBody['undo'];

const UNDO_LABELS: Record<Undo, string> = {
  none: 'Undo nothing',
  remediation: 'Undo the remediation this alert led to',
  all_instances: 'Undo every instance: also every other quarantine of the same files, on any device',
};

/** What each undo choice will do, said before anything is sent. */
const UNDO_CONSEQUENCES: Record<Undo, string> = {
  none: 'Nothing that was done about it is undone.',
  remediation: 'The completed quarantines of its files that its investigations made (or the antivirus quarantine it reports) each get a restore action.',
  all_instances: 'The completed quarantines of its files that its investigations made (or the antivirus quarantine it reports), and every other completed quarantine of the same files on any device, each get a restore action.',
};

/**
 * The false-positive flow in one dialog: resolve the alert as a false
 * positive, undo what it led to, and allow its files from now on. The server
 * does all of it or nothing, so a refusal changes nothing.
 */
export function FalsePositiveDialog({ alert, pending, error, onConfirm, onClose }: {
  alert: Alert; pending: boolean; error: unknown; onConfirm: (body: FalsePositiveBody) => void; onClose: () => void;
}) {
  const styles = useStyles();
  const permissions = usePermissions();
  const hashes = fileHashes(alert.evidence);
  const [undo, setUndo] = useState<Undo>(hashes.length > 0 ? 'remediation' : 'none');
  const [allow, setAllow] = useState(hashes.length > 0);
  const undoRefusal = undo === 'none' ? null : permissions.undoRefusal('quarantine_file');
  const allowRefusal = allow && !permissions.has('indicators:manage') ? `Creating allow indicators needs the Security Administrator role or higher; you are ${permissions.roleLabel}` : null;
  const consequence = (
    <ul className={styles.list} aria-label="What will happen">
      <li>The alert is resolved and classified as a false positive.</li>
      {hashes.length === 0
        ? <li>It names no file by SHA-256, so nothing is undone and no indicator is created.</li>
        : (
          <>
            <li>{UNDO_CONSEQUENCES[undo]}</li>
            <li>
              {allow
                ? `${hashes.length === 1 ? 'Its file gets an allow indicator' : `Each of its ${hashes.length} files gets an allow indicator`} (a block indicator for it is expired), so it is not remediated again: `
                : 'No indicator is created: its files may be remediated again. '}
              {hashes.map((h) => <span key={h} className={styles.hash}>{h} </span>)}
            </li>
          </>
        )}
    </ul>
  );
  return (
    <CommentDialog
      title="Classify as false positive"
      consequence={consequence}
      confirmLabel="Classify as false positive"
      pending={pending}
      error={error}
      errorNote="Nothing was changed: the alert, its actions and the indicators are as they were."
      onConfirm={(comment) => onConfirm({ undo, allowIndicator: allow, comment })}
      onClose={onClose}
    >
      <Field label="Undo">
        <RadioGroup value={undo} onChange={(_, data) => setUndo(data.value as Undo)}>
          {(Object.keys(UNDO_LABELS) as Undo[]).map((u) => <Radio key={u} value={u} label={UNDO_LABELS[u]} disabled={hashes.length === 0 && u !== 'none'} />)}
        </RadioGroup>
      </Field>
      <Field label="Allow indicator">
        <RadioGroup value={allow ? 'yes' : 'no'} onChange={(_, data) => setAllow(data.value === 'yes')}>
          <Radio value="yes" label="Yes: allow its files from now on (an allow indicator per SHA-256)" disabled={hashes.length === 0} />
          <Radio value="no" label="No: they may be remediated again" />
        </RadioGroup>
      </Field>
      {(undoRefusal ?? allowRefusal) !== null && (
        <MessageBar intent="warning" layout="multiline">
          <MessageBarBody>{[undoRefusal, allowRefusal].filter(Boolean).join('. ')}: the server will refuse this choice.</MessageBarBody>
        </MessageBar>
      )}
    </CommentDialog>
  );
}
