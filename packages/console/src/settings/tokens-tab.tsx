import { Button, Checkbox, Field, Input, Subtitle1, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text } from '@fluentui/react-components';
import type { Permission } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { api } from '../api/api-client.ts';
import { formatDateTime } from '../format.ts';
import { useSession } from '../session/session.tsx';
import { ErrorBar, SecretOnce, useStyles } from './settings-shared.tsx';

export function TokensTab() {
  const styles = useStyles();
  const { permissions } = useSession();
  const queryClient = useQueryClient();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: api.listTokens });
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['tokens'] });
  const revoke = useMutation({ mutationFn: api.revokeToken, onSettled: refresh });
  const [name, setName] = useState('');
  const [days, setDays] = useState('30');
  const [scopes, setScopes] = useState<Permission[]>(['actions:read']);
  const create = useMutation({ mutationFn: api.createToken, onSuccess: () => { setName(''); }, onSettled: refresh });
  const [shown, setShown] = useState(true);
  const validDays = Number.isInteger(Number(days)) && Number(days) >= 1 && Number(days) <= 365;
  return (
    <>
      {create.data && shown && <SecretOnce title={`API token “${create.data.token.name}”`} secret={create.data.secret} onDone={() => setShown(false)} />}
      <ErrorBar error={revoke.error ?? tokens.error} />
      <TokenTable label="API tokens" tokens={tokens.data?.items ?? []} revoke={(t) => revoke.mutate(t.id)} revokeLabel={(t) => `Revoke ${t.name}`} columns={[
        { header: 'Scopes', cell: (t) => t.scopes.join(', '), text: true },
        { header: 'Created', cell: (t) => formatDateTime(t.createdAt) },
        { header: 'Expires', cell: (t) => formatDateTime(t.expiresAt) },
      ]} />
      <Subtitle1 as="h2">Create an API token</Subtitle1>
      <Text>The token acts as you, with only the scopes you pick, until it expires or is revoked.</Text>
      <ErrorBar error={create.error} />
      <form className={styles.column} aria-label="Create an API token" onSubmit={(event) => { event.preventDefault(); setShown(true); create.mutate({ name: name.trim(), scopes, expiresInDays: Number(days) }); }}>
        <div className={styles.form}>
          <Field label="Token name" required><Input value={name} onChange={(_, d) => setName(d.value)} /></Field>
          <Field label="Expires in (days)" required><Input type="number" value={days} onChange={(_, d) => setDays(d.value)} /></Field>
        </div>
        <fieldset>
          <legend>Scopes</legend>
          <div className={styles.grid}>
            {permissions.map((p) => (
              <Checkbox key={p} label={p} checked={scopes.includes(p)} onChange={(_, d) => setScopes(d.checked ? [...scopes, p] : scopes.filter((s) => s !== p))} />
            ))}
          </div>
        </fieldset>
        <Button type="submit" appearance="primary" disabled={create.isPending || name.trim() === '' || scopes.length === 0 || !validDays}>Create token</Button>
      </form>
    </>
  );
}

export function EnrolmentTab() {
  const styles = useStyles();
  const [name, setName] = useState('');
  const [uses, setUses] = useState('10');
  const [days, setDays] = useState('7');
  const [shown, setShown] = useState(true);
  const queryClient = useQueryClient();
  const tokens = useQuery({ queryKey: ['enrolment-tokens'], queryFn: api.listEnrolmentTokens });
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['enrolment-tokens'] });
  const revoke = useMutation({ mutationFn: api.revokeEnrolmentToken, onSettled: refresh });
  const create = useMutation({ mutationFn: api.createEnrolmentToken, onSuccess: () => setName(''), onSettled: refresh });
  const valid = name.trim() !== '' && Number.isInteger(Number(uses)) && Number(uses) >= 1 && Number(uses) <= 100_000 && Number.isInteger(Number(days)) && Number(days) >= 1 && Number(days) <= 90;
  return (
    <>
      <Text>Agents enrol with one of these: <code>quell agent enrol --server URL --token …</code>. Each token allows a number of enrolments until it expires.</Text>
      {create.data && shown && (
        <>
          <SecretOnce title={`Enrolment token “${create.data.token.name}”`} secret={create.data.secret} onDone={() => setShown(false)} />
          <Text>{create.data.token.usesLeft} enrolments left, until {formatDateTime(create.data.token.expiresAt)}.</Text>
        </>
      )}
      <ErrorBar error={revoke.error ?? tokens.error} />
      <TokenTable label="Enrolment tokens" tokens={tokens.data?.items ?? []} revoke={(t) => revoke.mutate(t.id)} revokeLabel={(t) => `Revoke enrolment token ${t.name}`} columns={[
        { header: 'Enrolments left', cell: (t) => t.usesLeft },
        { header: 'Expires', cell: (t) => formatDateTime(t.expiresAt) },
      ]} />
      <ErrorBar error={create.error} />
      <form className={styles.form} aria-label="Create an enrolment token" onSubmit={(event) => { event.preventDefault(); setShown(true); create.mutate({ name: name.trim(), uses: Number(uses), expiresInDays: Number(days) }); }}>
        <Field label="Enrolment token name" required><Input value={name} onChange={(_, d) => setName(d.value)} /></Field>
        <Field label="Enrolments allowed" required><Input type="number" value={uses} onChange={(_, d) => setUses(d.value)} /></Field>
        <Field label="Valid for (days)" required><Input type="number" value={days} onChange={(_, d) => setDays(d.value)} /></Field>
        <Button type="submit" appearance="primary" disabled={create.isPending || !valid}>Create enrolment token</Button>
      </form>
    </>
  );
}

interface RevocableToken { id: string; name: string; revokedAt: string | null }

/** A table of tokens: the name, the given columns, and the state (when revoked, or a Revoke button). */
function TokenTable<T extends RevocableToken>({ label, tokens, columns, revoke, revokeLabel }: {
  label: string;
  tokens: readonly T[];
  columns: ReadonlyArray<{ header: string; cell: (token: T) => ReactNode; text?: boolean }>;
  revoke: (token: T) => void;
  revokeLabel: (token: T) => string;
}) {
  const styles = useStyles();
  return (
    <Table aria-label={label} size="small">
      <TableHeader>
        <TableRow>
          <TableHeaderCell>Name</TableHeaderCell>
          {columns.map((column) => <TableHeaderCell key={column.header}>{column.header}</TableHeaderCell>)}
          <TableHeaderCell>State</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {tokens.map((t) => (
          <TableRow key={t.id}>
            <TableCell className={styles.text}>{t.name}</TableCell>
            {columns.map((column) => <TableCell key={column.header} className={column.text ? styles.text : undefined}>{column.cell(t)}</TableCell>)}
            <TableCell>
              {t.revokedAt ? `Revoked ${formatDateTime(t.revokedAt)}` : <Button size="small" onClick={() => revoke(t)} aria-label={revokeLabel(t)}>Revoke</Button>}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
