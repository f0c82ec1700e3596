import { Button, Field, Input, Select, Subtitle1, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text } from '@fluentui/react-components';
import { AUTOMATION_LEVELS, type AutomationLevel } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api/api-client.ts';
import { DEVICE_GROUPS_KEY, useDeviceGroups } from '../devices/devices-shared.ts';
import { formatDateTime } from '../format.ts';
import { ErrorBar, useStyles } from './settings-shared.tsx';

const AUTOMATION_LABELS: Record<AutomationLevel, string> = {
  full: 'Full: remediate threats automatically',
  semi_any_folder: 'Semi: approval for any folder',
  semi_core_folders: 'Semi: approval for core folders',
  semi_non_temp_folders: 'Semi: approval for non-temp folders',
  none: 'No automated response',
};

export function GroupsTab() {
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
