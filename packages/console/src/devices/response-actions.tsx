import { Button, Field, Input, Radio, RadioGroup, Text, Tooltip, makeStyles, tokens } from '@fluentui/react-components';
import { ACTION_CATALOGUE, type Action, type ActionParameters, type ActionType, CAPABILITY_MATRIX, type CreateActionBody, type Device, MAC_ADDRESS, addressOrRange } from '@quell/contracts';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { api } from '../api/api-client.ts';
import { ACTIONS_KEY } from '../action-center/use-actions.ts';
import { CommentDialog } from '../comment-dialog.tsx';
import { typeLabel } from '../format.ts';
import { usePermissions } from '../session/session.tsx';
import { ActionProgress } from './action-progress.tsx';
import type { useDeviceState } from './device-state.ts';

const useStyles = makeStyles({
  bar: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalS, margin: `${tokens.spacingVerticalS} 0` },
  progress: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalS, marginTop: tokens.spacingVerticalS },
  note: { color: tokens.colorNeutralForeground2 },
});

const SHA256 = /^[a-fA-F0-9]{64}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:]+(%\w+)?$/;
const isIp = (value: string): boolean => IPV4.test(value) || (value.includes(':') && IPV6.test(value));

/** One manual response: a new action of a type, or the undo of the action that put a state in place. */
type Response =
  | { kind: 'create'; type: ActionType }
  | { kind: 'undo'; original: Action };

/** A button that is usable, or disabled with the reason in a tooltip and its accessible description. */
function Guarded({ refusal, onClick, children }: { refusal: string | null; onClick: () => void; children: ReactNode }) {
  const button = <Button disabledFocusable={refusal !== null} onClick={refusal === null ? onClick : undefined}>{children}</Button>;
  return refusal === null ? button : <Tooltip content={refusal} relationship="description">{button}</Tooltip>;
}

/**
 * The manual response actions on one device that the role allows: each asks
 * for a comment, is born queued, and shows its progress below until it settles.
 */
export function ResponseActions({ device, state }: { device: Device; state: ReturnType<typeof useDeviceState> }) {
  const styles = useStyles();
  const permissions = usePermissions();
  const [open, setOpen] = useState<Response | null>(null);
  const [tracked, setTracked] = useState<string[]>([]);
  const track = (id: string): void => setTracked((ids) => [id, ...ids.filter((x) => x !== id)]);

  if (!permissions.has('actions:create')) {
    return <Text block className={styles.note}>Your role, {permissions.roleLabel}, can view this device but not act on it.</Text>;
  }
  const managed = device.agent !== null;
  /** Why this type cannot be asked for on this device, or null. */
  const refusal = (type: ActionType): string | null =>
    CAPABILITY_MATRIX[type][device.platform] === 'supported' ? null : `${typeLabel(type)} is not supported on ${device.platform}`;
  /** Why this action cannot be undone here, or null; one still loading cannot be yet. */
  const undoRefusal = (action: Action | null): string | null => (action ? permissions.undoRefusal(action.type) : 'Loading the action…');
  const create = (type: ActionType) => () => setOpen({ kind: 'create', type });
  const undo = (original: Action | null) => () => original && setOpen({ kind: 'undo', original });

  const buttons: ReactNode[] = [];
  if (managed) {
    const { isolation, restriction } = state;
    if (isolation.actionId && !isolation.releasing) buttons.push(<Guarded key="release" refusal={undoRefusal(isolation.action)} onClick={undo(isolation.action)}>Release from isolation</Guarded>);
    else buttons.push(<Guarded key="isolate" refusal={refusal('isolate_device') ?? (isolation.releasing ? 'The release from isolation is on its way' : null)} onClick={create('isolate_device')}>Isolate device</Guarded>);
    if (restriction.actionId && !restriction.releasing) buttons.push(<Guarded key="unrestrict" refusal={undoRefusal(restriction.action)} onClick={undo(restriction.action)}>Remove app restriction</Guarded>);
    else buttons.push(<Guarded key="restrict" refusal={refusal('restrict_code_execution') ?? (restriction.releasing ? 'The removal of the restriction is on its way' : null)} onClick={create('restrict_code_execution')}>Restrict app execution</Guarded>);
    buttons.push(
      <Guarded key="scan" refusal={refusal('run_antivirus_scan')} onClick={create('run_antivirus_scan')}>Run antivirus scan</Guarded>,
      <Guarded key="collect" refusal={refusal('collect_investigation_package')} onClick={create('collect_investigation_package')}>Collect investigation package</Guarded>,
      <Guarded key="quarantine" refusal={refusal('stop_and_quarantine_file')} onClick={create('stop_and_quarantine_file')}>Stop and quarantine file</Guarded>,
      <Guarded key="user" refusal={refusal('contain_user')} onClick={create('contain_user')}>Contain user</Guarded>,
    );
    for (const contained of state.containedUsers) {
      buttons.push(<Guarded key={`release-${contained.id}`} refusal={undoRefusal(contained)} onClick={undo(contained)}>Release user {contained.entity.name}</Guarded>);
    }
  } else {
    buttons.push(<Guarded key="contain" refusal={refusal('contain_device')} onClick={create('contain_device')}>Contain device</Guarded>);
    for (const containment of state.containments) {
      if (containment.status !== 'completed') continue;
      buttons.push(<Guarded key={`release-${containment.id}`} refusal={undoRefusal(containment)} onClick={undo(containment)}>Release containment of {containment.entity.name}</Guarded>);
    }
  }

  return (
    <section aria-label="Response actions">
      <div className={styles.bar} role="group" aria-label="Response actions on this device">{buttons}</div>
      {!managed && <Text block size={200} className={styles.note}>No Quell agent runs on this device: contain it by address, and every managed agent stops talking to it.</Text>}
      {tracked.length > 0 && (
        <div className={styles.progress} aria-label="Requested actions" aria-live="polite">
          {tracked.map((id) => <ActionProgress key={id} actionId={id} onDismiss={() => setTracked((ids) => ids.filter((x) => x !== id))} />)}
        </div>
      )}
      {open?.kind === 'create' && <CreateDialog device={device} type={open.type} onClose={() => setOpen(null)} onCreated={track} />}
      {open?.kind === 'undo' && <UndoDialog original={open.original} onClose={() => setOpen(null)} onCreated={track} />}
    </section>
  );
}

const CONSEQUENCE: Partial<Record<ActionType, string>> = {
  isolate_device: 'The device is cut off from the network except for Quell (and, for selective isolation, the addresses you allow).',
  restrict_code_execution: 'Only trusted programs may run on the device: user-writable places can no longer run code.',
  run_antivirus_scan: 'The agent scans the device and reports what it found.',
  collect_investigation_package: 'The agent gathers logs, processes, connections and configuration into a package you can download here.',
  stop_and_quarantine_file: 'The agent stops every process running the file and moves it into its quarantine vault.',
  contain_user: 'The account is locked and its sessions ended on this device.',
  contain_device: 'Every managed agent blocks traffic to and from this address (and MAC), also agents that connect later.',
};

/** An action to propose from this dialog, its parameters typed by its type. */
type Proposal = { [T in ActionType]: { type: T; entity: CreateActionBody['entity']; parameters?: ActionParameters<T> } }[ActionType];

function CreateDialog({ device, type, onClose, onCreated }: { device: Device; type: ActionType; onClose: () => void; onCreated: (id: string) => void }) {
  const queryClient = useQueryClient();
  const [mode, setMode] = useState<'full' | 'selective' | 'quick'>(type === 'run_antivirus_scan' ? 'quick' : 'full');
  const [allow, setAllow] = useState('');
  const [sha256, setSha256] = useState('');
  const [path, setPath] = useState('');
  const [user, setUser] = useState('');
  // An unmanaged device: the address its alerts reported last.
  const [ip, setIp] = useState(device.agent?.ips[0] ?? device.addresses[0] ?? '');
  const [mac, setMac] = useState('');
  const mutation = useMutation({
    mutationFn: (body: CreateActionBody) => api.createAction(body),
    onSuccess: (action) => {
      onCreated(action.id);
      onClose();
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey: [ACTIONS_KEY] }),
  });

  let fields: ReactNode = null;
  let incomplete: string | null = null;
  // What to propose: the entity and, where the type takes them, its parameters.
  let proposal: Proposal = { type, entity: { name: device.name } };
  switch (type) {
    case 'isolate_device': {
      const addresses = allow.split(',').map((a) => a.trim()).filter(Boolean);
      fields = (
        <>
          <RadioGroup value={mode} onChange={(_, data) => setMode(data.value as 'full' | 'selective')} aria-label="Isolation">
            <Radio value="full" label="Full: only Quell can reach the device" />
            <Radio value="selective" label="Selective: also allow these addresses" />
          </RadioGroup>
          {mode === 'selective' && (
            <Field label="Allowed addresses" hint="IP addresses or networks, separated by commas" required>
              <Input value={allow} onChange={(_, data) => setAllow(data.value)} />
            </Field>
          )}
        </>
      );
      const notAddress = addresses.find((a) => 'problem' in addressOrRange(a));
      if (mode === 'selective' && addresses.length === 0) incomplete = 'Name at least one address to allow.';
      if (mode === 'selective' && notAddress !== undefined) incomplete = `Not an IP address or network: ${notAddress}`;
      proposal = { type, entity: proposal.entity, parameters: mode === 'selective' ? { isolation: 'selective', allow: addresses } : { isolation: 'full' } };
      break;
    }
    case 'run_antivirus_scan':
      fields = (
        <RadioGroup value={mode} onChange={(_, data) => setMode(data.value as 'quick' | 'full')} aria-label="Scan">
          <Radio value="quick" label="Quick scan: the places malware usually lands" />
          <Radio value="full" label="Full scan: every local file" />
        </RadioGroup>
      );
      proposal = { type, entity: proposal.entity, parameters: { scan: mode === 'full' ? 'full' : 'quick' } };
      break;
    case 'stop_and_quarantine_file':
      fields = (
        <>
          <Field label="SHA-256" required validationMessage={sha256 && !SHA256.test(sha256.trim()) ? 'A SHA-256 is 64 hexadecimal characters' : undefined}>
            <Input value={sha256} onChange={(_, data) => setSha256(data.value)} />
          </Field>
          <Field label="Path" required hint="Where the file is on the device">
            <Input value={path} onChange={(_, data) => setPath(data.value)} />
          </Field>
        </>
      );
      if (!SHA256.test(sha256.trim()) || path.trim() === '') incomplete = 'Give the file’s SHA-256 and its path.';
      proposal = { type, entity: { name: path.trim().split('/').pop() || path.trim() || 'file', sha256: sha256.trim().toLowerCase(), path: path.trim() } };
      break;
    case 'contain_user':
      fields = (
        <Field label="User name" required>
          <Input value={user} onChange={(_, data) => setUser(data.value)} />
        </Field>
      );
      if (user.trim() === '') incomplete = 'Name the user to contain.';
      proposal = { type, entity: { name: user.trim() || 'user' } };
      break;
    case 'contain_device':
      fields = (
        <>
          <Field label="IP address" required validationMessage={ip && !isIp(ip.trim()) ? 'An IPv4 or IPv6 address' : undefined}>
            <Input value={ip} onChange={(_, data) => setIp(data.value)} />
          </Field>
          <Field label="MAC address (optional)" validationMessage={mac && !MAC_ADDRESS.test(mac.trim()) ? 'Such as 52:54:00:12:34:56' : undefined}>
            <Input value={mac} onChange={(_, data) => setMac(data.value)} />
          </Field>
        </>
      );
      if (!isIp(ip.trim()) || (mac.trim() !== '' && !MAC_ADDRESS.test(mac.trim()))) incomplete = 'Give the device’s IP address (and, if you like, its MAC address).';
      proposal = { type, entity: { name: ip.trim() || 'address' }, parameters: mac.trim() ? { mac: mac.trim() } : {} };
      break;
    default:
      break;
  }

  return (
    <CommentDialog
      title={`${ACTION_CATALOGUE[type].label} on ${device.name}`}
      consequence={`${CONSEQUENCE[type] ?? ''} It is sent at once, without approval.`}
      confirmLabel={ACTION_CATALOGUE[type].label}
      incomplete={incomplete}
      pending={mutation.isPending}
      error={mutation.error}
      onConfirm={(comment) => mutation.mutate({ ...proposal, deviceId: device.id, source: 'manual', comment })}
      onClose={onClose}
    >
      {fields}
    </CommentDialog>
  );
}

function UndoDialog({ original, onClose, onCreated }: { original: Action; onClose: () => void; onCreated: (id: string) => void }) {
  const queryClient = useQueryClient();
  const undoType = ACTION_CATALOGUE[original.type].undoType!;
  const mutation = useMutation({
    mutationFn: (comment: string) => api.undo({ ids: [original.id], comment }),
    onSuccess: (result) => {
      const created = result.items.find((a) => a.undoOf === original.id) ?? result.items[0];
      if (created) onCreated(created.id);
      onClose();
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey: [ACTIONS_KEY] }),
  });
  return (
    <CommentDialog
      title={`${typeLabel(undoType)}: ${original.entity.name}`}
      consequence={`Undoes the ${typeLabel(original.type).toLowerCase()} of ${formatShortDate(original.requestedAt)}; it is sent at once, without approval.`}
      confirmLabel={typeLabel(undoType)}
      pending={mutation.isPending}
      error={mutation.error}
      onConfirm={(comment) => mutation.mutate(comment)}
      onClose={onClose}
    />
  );
}

const formatShortDate = (iso: string): string => new Date(iso).toLocaleString();
