import {
  Button, Checkbox, Field, Input, Menu, MenuItemCheckbox, MenuList, MenuPopover, MenuTrigger, MessageBar, MessageBarBody, MessageBarTitle, Select, Spinner, Subtitle1, Switch, Tab, TabList, Table, TableBody,
  TableCell, TableHeader, TableHeaderCell, TableRow, Text, Title2, makeStyles, tokens,
} from '@fluentui/react-components';
import {
  ACTION_CATALOGUE, ACTION_TYPES, AUTOMATION_LEVELS, type AutomationLevel, type Permission, ROLES, ROLE_LABELS, type Role, type Settings, type UpdateSettingsBody, roleAtLeast,
} from '@quell/contracts';
import { type UseMutationResult, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { DEVICE_GROUPS_KEY, useDeviceGroups } from '../devices/devices-shared.ts';
import { formatDateTime } from '../format.ts';
import { navigate, useLocation } from '../router.tsx';
import { useSession } from '../session/session.tsx';

const useStyles = makeStyles({
  panel: { marginTop: tokens.spacingVerticalL, display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM, maxWidth: '1100px' },
  form: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, alignItems: 'flex-end' },
  column: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalS, alignItems: 'flex-start' },
  grid: { display: 'grid', gridTemplateColumns: 'repeat(auto-fill, minmax(260px, 1fr))', gap: tokens.spacingVerticalXXS },
  secret: { fontFamily: tokens.fontFamilyMonospace, wordBreak: 'break-all' },
  text: { wordBreak: 'break-all' },
});

const TABS = { users: 'Users and roles', groups: 'Device groups', tokens: 'API tokens', enrolment: 'Enrolment tokens', policy: 'Approvals and expiry' } as const;
type TabId = keyof typeof TABS;

const AUTOMATION_LABELS: Record<AutomationLevel, string> = {
  full: 'Full: remediate threats automatically',
  semi_any_folder: 'Semi: approval for any folder',
  semi_core_folders: 'Semi: approval for core folders',
  semi_non_temp_folders: 'Semi: approval for non-temp folders',
  none: 'No automated response',
};

/** Security Administrator and up: users, device groups, tokens and the approval policy; the tab is in the URL. */
export default function SettingsPage() {
  const { search } = useLocation();
  const wanted = search.get('tab') ?? 'users';
  const tab: TabId = wanted in TABS ? (wanted as TabId) : 'users';
  const styles = useStyles();
  return (
    <>
      <Title2 as="h1">Settings</Title2>
      <TabList selectedValue={tab} onTabSelect={(_, data) => navigate(`/settings?tab=${String(data.value)}`)}>
        {(Object.keys(TABS) as TabId[]).map((t) => <Tab key={t} value={t}>{TABS[t]}</Tab>)}
      </TabList>
      <div className={styles.panel} role="tabpanel" aria-label={TABS[tab]}>
        {tab === 'users' && <UsersTab />}
        {tab === 'groups' && <GroupsTab />}
        {tab === 'tokens' && <TokensTab />}
        {tab === 'enrolment' && <EnrolmentTab />}
        {tab === 'policy' && <PolicyTab />}
      </div>
    </>
  );
}

function ErrorBar({ error }: { error: unknown }) {
  if (!error) return null;
  return <MessageBar intent="error" role="alert"><MessageBarBody>{problemText(error)}</MessageBarBody></MessageBar>;
}

/** A secret the server shows this once, with a copy button. */
function SecretOnce({ title, secret, onDone }: { title: string; secret: string; onDone: () => void }) {
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

function UsersTab() {
  const styles = useStyles();
  const { user: me } = useSession();
  const queryClient = useQueryClient();
  const users = useQuery({ queryKey: ['users'], queryFn: api.listUsers });
  const groups = useDeviceGroups();
  const roles = ROLES.filter((r) => roleAtLeast(me.role, r));
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['users'] });
  const update = useMutation({ mutationFn: ({ id, body }: { id: string; body: Parameters<typeof api.updateUser>[1] }) => api.updateUser(id, body), onSettled: refresh });
  const [draft, setDraft] = useState({ username: '', displayName: '', role: 'security_reader' as Role, password: '' });
  const create = useMutation({ mutationFn: api.createUser, onSuccess: () => setDraft({ username: '', displayName: '', role: 'security_reader', password: '' }), onSettled: refresh });
  const groupNames = (ids: string[]): string => (ids.length === 0 ? 'All devices' : ids.map((id) => groups.data?.items.find((g) => g.id === id)?.name ?? id).join(', '));
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    create.mutate({ username: draft.username, role: draft.role, password: draft.password, ...(draft.displayName ? { displayName: draft.displayName } : {}) });
  };
  return (
    <>
      <ErrorBar error={update.error} />
      {users.isPending && <Spinner label="Loading users…" />}
      <ErrorBar error={users.error} />
      <Table aria-label="Users" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>User name</TableHeaderCell>
            <TableHeaderCell>Display name</TableHeaderCell>
            <TableHeaderCell>Role</TableHeaderCell>
            <TableHeaderCell>Scope</TableHeaderCell>
            <TableHeaderCell>Enabled</TableHeaderCell>
            <TableHeaderCell>Created</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {(users.data?.items ?? []).map((u) => {
            const editable = u.id !== me.id && roleAtLeast(me.role, u.role);
            return (
              <TableRow key={u.id}>
                <TableCell className={styles.text}>{u.username}</TableCell>
                <TableCell className={styles.text}>{u.displayName || '—'}</TableCell>
                <TableCell>
                  {editable ? (
                    <Select aria-label={`Role of ${u.username}`} value={u.role} onChange={(_, data) => update.mutate({ id: u.id, body: { role: data.value as Role } })}>
                      {roles.map((r) => <option key={r} value={r}>{ROLE_LABELS[r]}</option>)}
                    </Select>
                  ) : ROLE_LABELS[u.role]}
                </TableCell>
                <TableCell className={styles.text}>
                  {editable && (groups.data?.items.length ?? 0) > 0 ? (
                    <Menu
                      checkedValues={{ groups: u.deviceGroupIds }}
                      onCheckedValueChange={(_, data) => update.mutate({ id: u.id, body: { deviceGroupIds: data.checkedItems } })}
                    >
                      <MenuTrigger disableButtonEnhancement>
                        <Button size="small" appearance="subtle" aria-label={`Scope of ${u.username}: ${groupNames(u.deviceGroupIds)}`}>{groupNames(u.deviceGroupIds)}</Button>
                      </MenuTrigger>
                      <MenuPopover>
                        <MenuList>
                          {groups.data!.items.map((g) => <MenuItemCheckbox key={g.id} name="groups" value={g.id}>{g.name}</MenuItemCheckbox>)}
                        </MenuList>
                      </MenuPopover>
                    </Menu>
                  ) : groupNames(u.deviceGroupIds)}
                </TableCell>
                <TableCell>
                  <Switch aria-label={`${u.username} enabled`} checked={!u.disabled} disabled={!editable} onChange={(_, data) => update.mutate({ id: u.id, body: { disabled: !data.checked } })} />
                </TableCell>
                <TableCell>{formatDateTime(u.createdAt)}</TableCell>
              </TableRow>
            );
          })}
        </TableBody>
      </Table>
      <Subtitle1 as="h2">Add a user</Subtitle1>
      <ErrorBar error={create.error} />
      <form className={styles.form} onSubmit={submit} aria-label="Add a user">
        <Field label="User name" required><Input value={draft.username} onChange={(_, d) => setDraft({ ...draft, username: d.value })} /></Field>
        <Field label="Display name"><Input value={draft.displayName} onChange={(_, d) => setDraft({ ...draft, displayName: d.value })} /></Field>
        <Field label="Role" required>
          <Select value={draft.role} onChange={(_, d) => setDraft({ ...draft, role: d.value as Role })}>
            {roles.map((r) => <option key={r} value={r}>{ROLE_LABELS[r]}</option>)}
          </Select>
        </Field>
        <Field label="Initial password" required hint="At least 12 characters">
          <Input type="password" autoComplete="new-password" value={draft.password} onChange={(_, d) => setDraft({ ...draft, password: d.value })} />
        </Field>
        <Button type="submit" appearance="primary" disabled={create.isPending || !draft.username || draft.password.length < 12}>Add user</Button>
      </form>
    </>
  );
}

function GroupsTab() {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const groups = useDeviceGroups();
  const users = useQuery({ queryKey: ['users'], queryFn: api.listUsers });
  const scoped = (groupId: string): string => (users.data?.items ?? []).filter((u) => u.deviceGroupIds.includes(groupId)).map((u) => u.username).join(', ') || '—';
  const [draft, setDraft] = useState({ name: '', rank: '', automationLevel: 'semi_any_folder' as AutomationLevel });
  const create = useMutation({
    mutationFn: api.createDeviceGroup,
    onSuccess: () => setDraft({ name: '', rank: '', automationLevel: 'semi_any_folder' }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: DEVICE_GROUPS_KEY }),
  });
  const rank = Number(draft.rank);
  const validRank = draft.rank !== '' && Number.isInteger(rank) && rank >= 0 && rank <= 100_000;
  return (
    <>
      <Text>A device belongs to the highest-ranked group whose rule matches it; the group’s automation level decides which remediations wait for approval. Users are scoped to groups on the Users tab.</Text>
      <ErrorBar error={groups.error} />
      <Table aria-label="Device groups" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Name</TableHeaderCell>
            <TableHeaderCell>Rank</TableHeaderCell>
            <TableHeaderCell>Automation level</TableHeaderCell>
            <TableHeaderCell>Scoped users</TableHeaderCell>
            <TableHeaderCell>Created</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {(groups.data?.items ?? []).map((g) => (
            <TableRow key={g.id}>
              <TableCell className={styles.text}>{g.name}</TableCell>
              <TableCell>{g.rank}</TableCell>
              <TableCell>{AUTOMATION_LABELS[g.automationLevel]}</TableCell>
              <TableCell className={styles.text}>{scoped(g.id)}</TableCell>
              <TableCell>{formatDateTime(g.createdAt)}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      <Subtitle1 as="h2">Add a device group</Subtitle1>
      <ErrorBar error={create.error} />
      <form className={styles.form} aria-label="Add a device group" onSubmit={(event) => { event.preventDefault(); create.mutate({ name: draft.name.trim(), rank, automationLevel: draft.automationLevel }); }}>
        <Field label="Group name" required><Input value={draft.name} onChange={(_, d) => setDraft({ ...draft, name: d.value })} /></Field>
        <Field label="Rank" required hint="0 to 100000; higher wins"><Input type="number" value={draft.rank} onChange={(_, d) => setDraft({ ...draft, rank: d.value })} /></Field>
        <Field label="Automation level" required>
          <Select value={draft.automationLevel} onChange={(_, d) => setDraft({ ...draft, automationLevel: d.value as AutomationLevel })}>
            {AUTOMATION_LEVELS.map((l) => <option key={l} value={l}>{AUTOMATION_LABELS[l]}</option>)}
          </Select>
        </Field>
        <Button type="submit" appearance="primary" disabled={create.isPending || draft.name.trim() === '' || !validRank}>Add group</Button>
      </form>
    </>
  );
}

function TokensTab() {
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
      <Table aria-label="API tokens" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Name</TableHeaderCell>
            <TableHeaderCell>Scopes</TableHeaderCell>
            <TableHeaderCell>Created</TableHeaderCell>
            <TableHeaderCell>Expires</TableHeaderCell>
            <TableHeaderCell>State</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {(tokens.data?.items ?? []).map((t) => (
            <TableRow key={t.id}>
              <TableCell className={styles.text}>{t.name}</TableCell>
              <TableCell className={styles.text}>{t.scopes.join(', ')}</TableCell>
              <TableCell>{formatDateTime(t.createdAt)}</TableCell>
              <TableCell>{formatDateTime(t.expiresAt)}</TableCell>
              <TableCell>
                {t.revokedAt ? `Revoked ${formatDateTime(t.revokedAt)}` : (
                  <Button size="small" onClick={() => revoke.mutate(t.id)} aria-label={`Revoke ${t.name}`}>Revoke</Button>
                )}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
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

function EnrolmentTab() {
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
      <Table aria-label="Enrolment tokens" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Name</TableHeaderCell>
            <TableHeaderCell>Enrolments left</TableHeaderCell>
            <TableHeaderCell>Expires</TableHeaderCell>
            <TableHeaderCell>State</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {(tokens.data?.items ?? []).map((t) => (
            <TableRow key={t.id}>
              <TableCell className={styles.text}>{t.name}</TableCell>
              <TableCell>{t.usesLeft}</TableCell>
              <TableCell>{formatDateTime(t.expiresAt)}</TableCell>
              <TableCell>
                {t.revokedAt ? `Revoked ${formatDateTime(t.revokedAt)}` : (
                  <Button size="small" onClick={() => revoke.mutate(t.id)} aria-label={`Revoke enrolment token ${t.name}`}>Revoke</Button>
                )}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
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

function PolicyTab() {
  const queryClient = useQueryClient();
  const settings = useQuery({ queryKey: ['settings'], queryFn: api.getSettings });
  // Held here, not in the form: the form starts again from what the server saved, and the outcome stays shown.
  const save = useMutation({ mutationFn: api.updateSettings, onSuccess: (data) => queryClient.setQueryData(['settings'], data) });
  if (settings.isPending) return <Spinner label="Loading settings…" />;
  if (settings.isError) return <ErrorBar error={settings.error} />;
  return <PolicyForm key={settings.dataUpdatedAt} settings={settings.data} save={save} />;
}

function PolicyForm({ settings, save }: { settings: Settings; save: UseMutationResult<Settings, Error, UpdateSettingsBody> }) {
  const styles = useStyles();
  const [expiry, setExpiry] = useState(String(settings.pendingExpiryHours));
  const [delivery, setDelivery] = useState(String(settings.deliveryWindowHours));
  const [fourEyes, setFourEyes] = useState(settings.fourEyesActionTypes);
  const hours = (value: string): boolean => Number.isInteger(Number(value)) && Number(value) >= 1 && Number(value) <= 24 * 90;
  const types = ACTION_TYPES.filter((t) => !ACTION_CATALOGUE[t].isUndo);
  return (
    <form className={styles.column} aria-label="Approvals and expiry" onSubmit={(event) => {
      event.preventDefault();
      save.mutate({ pendingExpiryHours: Number(expiry), deliveryWindowHours: Number(delivery), fourEyesActionTypes: fourEyes });
    }}>
      {save.isSuccess && <MessageBar intent="success"><MessageBarBody>Settings saved.</MessageBarBody></MessageBar>}
      <ErrorBar error={save.error} />
      <Field label="Pending expiry (hours)" required hint="How long an action waits for approval before it expires (counts as rejected). Applies to actions proposed from now on." validationMessage={hours(expiry) ? undefined : 'From 1 to 2160 hours'}>
        <Input type="number" value={expiry} onChange={(_, d) => setExpiry(d.value)} />
      </Field>
      <Field label="Delivery window (hours)" required hint="How long a queued action waits for its device before it times out (isolation always waits 3 days)." validationMessage={hours(delivery) ? undefined : 'From 1 to 2160 hours'}>
        <Input type="number" value={delivery} onChange={(_, d) => setDelivery(d.value)} />
      </Field>
      <fieldset>
        <legend>Four-eyes rule: the requester may not approve their own actions of these types</legend>
        <div className={styles.grid}>
          {types.map((t) => (
            <Checkbox key={t} label={ACTION_CATALOGUE[t].label} checked={fourEyes.includes(t)} onChange={(_, d) => setFourEyes(d.checked ? [...fourEyes, t] : fourEyes.filter((x) => x !== t))} />
          ))}
        </div>
      </fieldset>
      <Button type="submit" appearance="primary" disabled={save.isPending || !hours(expiry) || !hours(delivery)}>Save settings</Button>
    </form>
  );
}
