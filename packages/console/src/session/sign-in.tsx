import { Button, Card, Field, Input, MessageBar, MessageBarBody, Title2, makeStyles, tokens } from '@fluentui/react-components';
import { useMutation } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { type SessionInfo, api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';

const useStyles = makeStyles({
  page: { minHeight: '100vh', display: 'grid', placeItems: 'center', backgroundColor: tokens.colorNeutralBackground2 },
  card: { width: '360px', padding: tokens.spacingVerticalXXL },
  form: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM },
});

export function SignIn({ onSignedIn }: { onSignedIn: (session: SessionInfo) => void }) {
  const styles = useStyles();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const login = useMutation({ mutationFn: api.login, onSuccess: onSignedIn });
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    login.mutate({ username, password });
  };
  return (
    <main className={styles.page}>
      <Card className={styles.card}>
        <form className={styles.form} onSubmit={submit}>
          <Title2 as="h1">Sign in to Quell</Title2>
          {login.isError && (
            <MessageBar intent="error"><MessageBarBody>{problemText(login.error)}</MessageBarBody></MessageBar>
          )}
          <Field label="User name" required>
            <Input autoComplete="username" value={username} onChange={(_, data) => setUsername(data.value)} />
          </Field>
          <Field label="Password" required>
            <Input type="password" autoComplete="current-password" value={password} onChange={(_, data) => setPassword(data.value)} />
          </Field>
          <Button appearance="primary" type="submit" disabled={login.isPending || !username || !password}>Sign in</Button>
        </form>
      </Card>
    </main>
  );
}
