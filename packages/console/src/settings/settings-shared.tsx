import { Button, MessageBar, MessageBarBody, MessageBarTitle, Text, makeStyles, tokens } from '@fluentui/react-components';
import { useState } from 'react';
import { problemText } from '../api/problem-text.ts';

/** What the settings tabs share: their layout, an error bar, a secret shown once. */

export const useStyles = makeStyles({
  panel: { marginTop: tokens.spacingVerticalL, display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM, maxWidth: '1100px' },
  form: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, alignItems: 'flex-end' },
  column: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalS, alignItems: 'flex-start' },
  grid: { display: 'grid', gridTemplateColumns: 'repeat(auto-fill, minmax(260px, 1fr))', gap: tokens.spacingVerticalXXS },
  secret: { fontFamily: tokens.fontFamilyMonospace, wordBreak: 'break-all' },
  text: { wordBreak: 'break-all' },
});


export function ErrorBar({ error }: { error: unknown }) {
  if (!error) return null;
  return <MessageBar intent="error" role="alert"><MessageBarBody>{problemText(error)}</MessageBarBody></MessageBar>;
}

/** A secret the server shows this once, with a copy button. */
export function SecretOnce({ title, secret, onDone }: { title: string; secret: string; onDone: () => void }) {
  const styles = useStyles();
  const [copied, setCopied] = useState<'yes' | 'no' | null>(null);
  const copy = (): void => {
    navigator.clipboard.writeText(secret).then(() => setCopied('yes'), () => setCopied('no'));
  };
  return (
    <MessageBar intent="warning" layout="multiline">
      <MessageBarBody>
        <MessageBarTitle>{title}</MessageBarTitle>
        Copy it now: it is shown only this once and stored only as a hash.
        <div><code className={styles.secret} aria-label="Secret">{secret}</code></div>
        <div className={styles.form}>
          <Button size="small" onClick={copy}>Copy</Button>
          <Button size="small" appearance="subtle" onClick={onDone}>Done</Button>
          <Text size={200} aria-live="polite">{copied === 'yes' ? 'Copied to the clipboard.' : copied === 'no' ? 'The browser refused the clipboard: select the text and copy it.' : ''}</Text>
        </div>
      </MessageBarBody>
    </MessageBar>
  );
}
