import { Button, Checkbox, Field, Input, MessageBar, MessageBarBody, Spinner } from '@fluentui/react-components';
import { ACTION_CATALOGUE, ACTION_TYPES, type Settings, type UpdateSettingsBody } from '@quell/contracts';
import { type UseMutationResult, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api/api-client.ts';
import { ErrorBar, useStyles } from './settings-shared.tsx';

export function PolicyTab() {
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
