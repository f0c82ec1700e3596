import { Button, Field, Input, Menu, MenuItemCheckbox, MenuList, MenuPopover, MenuTrigger, Select, Spinner, Subtitle1, Switch, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from '@fluentui/react-components';
import { ROLES, ROLE_LABELS, type Role, roleAtLeast } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api } from '../api/api-client.ts';
import { useDeviceGroups } from '../devices/devices-shared.ts';
import { formatDateTime } from '../format.ts';
import { useSession } from '../session/session.tsx';
import { ErrorBar, useStyles } from './settings-shared.tsx';

export function UsersTab() {
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
