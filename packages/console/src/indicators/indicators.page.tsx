import {
  Badge, Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, Input, Menu, MenuItemCheckbox, MenuList, MenuPopover, MenuTrigger, MessageBar, MessageBarBody, Select,
  Spinner, Subtitle1, Switch, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, Text, Textarea, Title2, makeStyles, tokens,
} from '@fluentui/react-components';
import { type CreateIndicatorBody, INDICATOR_ACTIONS, INDICATOR_TYPES, type Indicator, type IndicatorAction, type IndicatorHitRow, type IndicatorType } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type ChangeEvent, type FormEvent, useRef, useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { useDeviceGroups } from '../devices/devices-shared.ts';
import { formatDateTime } from '../format.ts';
import { navigate, useLocation } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { IndicatorHitsTable, hitTotals } from './indicator-hits.tsx';
import { INDICATOR_ACTION_LABELS, INDICATOR_TYPE_LABELS } from './indicator-labels.ts';

const useStyles = makeStyles({
  toolbar: { display: 'flex', flexWrap: 'wrap', alignItems: 'center', gap: tokens.spacingHorizontalM, margin: `${tokens.spacingVerticalM} 0` },
  spacer: { flexGrow: 1 },
  tableWrap: { overflowX: 'auto' },
  value: { wordBreak: 'break-all', maxWidth: '360px' },
  text: { wordBreak: 'break-word' },
  form: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, alignItems: 'flex-end', maxWidth: '1100px' },
  wide: { minWidth: '320px', flexGrow: 1 },
  field: { minWidth: '180px' },
  section: { display: 'block', marginTop: tokens.spacingVerticalXL, marginBottom: tokens.spacingVerticalS },
  column: { display: 'flex', flexDirection: 'column', gap: tokens.spacingVerticalM },
  buttons: { display: 'flex', gap: tokens.spacingHorizontalS },
  hidden: { display: 'none' },
  empty: { padding: tokens.spacingVerticalXXL, textAlign: 'center', color: tokens.colorNeutralForeground2 },
});

const ACTION_COLOURS: Record<IndicatorAction, 'success' | 'informative' | 'danger' | 'severe'> = { allow: 'success', audit: 'informative', block: 'danger', block_and_remediate: 'severe' };

/** `2026-12-31` (a date input's value) → the end of that day here, as the API's timestamp; '' → no expiry. */
function expiryFromDate(value: string): string | null {
  if (!value) return null;
  const end = new Date(`${value}T23:59:59.999`);
  return Number.isNaN(end.getTime()) ? null : end.toISOString();
}
/** The API's timestamp → the local date a date input shows. */
function dateOfExpiry(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 10);
}
const today = (): string => dateOfExpiry(new Date().toISOString());

const INDICATORS_KEY = ['indicators'] as const;

function ErrorBar({ error }: { error: unknown }) {
  if (!error) return null;
  return <MessageBar intent="error" role="alert"><MessageBarBody>{problemText(error)}</MessageBarBody></MessageBar>;
}

/**
 * Indicators: values always allowed, audited or blocked, per device group and
 * until they expire. Everyone who reads them may export them; Security
 * Administrators create, change, expire and import them.
 */
export default function IndicatorsPage() {
  const styles = useStyles();
  const { search } = useLocation();
  const includeExpired = search.get('includeExpired') === 'true';
  const permissions = usePermissions();
  const mayManage = permissions.has('indicators:manage');
  const groups = useDeviceGroups();
  const list = useQuery({ queryKey: [...INDICATORS_KEY, { includeExpired }], queryFn: () => api.listIndicators(includeExpired ? { includeExpired } : {}) });
  const hits = useQuery({ queryKey: [...INDICATORS_KEY, 'hits'], queryFn: () => api.listIndicatorHits({}), refetchInterval: 30_000 });
  const totals = hitTotals(hits.data?.items ?? []);
  const [showingHits, setShowingHits] = useState<Indicator | null>(null);
  const [editing, setEditing] = useState<Indicator | null>(null);
  const [expiring, setExpiring] = useState<Indicator | null>(null);
  const items = list.data?.items ?? [];
  const groupNames = (ids: string[]): string => (ids.length === 0 ? 'All devices' : ids.map((id) => groups.data?.items.find((g) => g.id === id)?.name ?? id).join(', '));
  return (
    <>
      <Title2 as="h1">Indicators</Title2>
      <Text block>Values that are always allowed, audited or blocked on the devices of their groups until they expire. An expired indicator is kept for the record and matches nothing.</Text>
      <div className={styles.toolbar} role="group" aria-label="Indicator tools">
        <Switch
          label="Show expired indicators"
          checked={includeExpired}
          onChange={(_, data) => navigate(data.checked ? '/indicators?includeExpired=true' : '/indicators')}
        />
        <span className={styles.spacer} />
        <Button as="a" href={api.indicatorsCsvUrl()} download="quell-indicators.csv">Export CSV</Button>
        {mayManage && <ImportCsv />}
      </div>
      {!mayManage && (
        <Text block>Your role, {permissions.roleLabel}, can view and export indicators but not create, change, expire or import them: that needs a Security Administrator.</Text>
      )}
      <ErrorBar error={list.error} />
      <div className={styles.tableWrap}>
        <Table aria-label="Indicators" size="small">
          <TableHeader>
            <TableRow>
              <TableHeaderCell>Type</TableHeaderCell>
              <TableHeaderCell>Value</TableHeaderCell>
              <TableHeaderCell>Action</TableHeaderCell>
              <TableHeaderCell>Title</TableHeaderCell>
              <TableHeaderCell>Scope</TableHeaderCell>
              <TableHeaderCell>Expires</TableHeaderCell>
              <TableHeaderCell>State</TableHeaderCell>
              <TableHeaderCell>Hits</TableHeaderCell>
              {mayManage && <TableHeaderCell>Change</TableHeaderCell>}
            </TableRow>
          </TableHeader>
          <TableBody>
            {items.map((i) => (
              <TableRow key={i.id} data-indicator-id={i.id}>
                <TableCell>{INDICATOR_TYPE_LABELS[i.type]}</TableCell>
                <TableCell className={styles.value}>{i.value}</TableCell>
                <TableCell><Badge appearance="tint" color={ACTION_COLOURS[i.action]}>{INDICATOR_ACTION_LABELS[i.action]}</Badge></TableCell>
                <TableCell className={styles.text}>{i.title}</TableCell>
                <TableCell className={styles.text}>{groupNames(i.deviceGroupIds)}</TableCell>
                <TableCell>{i.expiresAt ? formatDateTime(i.expiresAt) : 'Never'}</TableCell>
                <TableCell>{i.active ? 'Active' : 'Expired'}</TableCell>
                <TableCell>
                  {totals.has(i.id) ? (
                    <Button size="small" appearance="subtle" onClick={() => setShowingHits(i)} aria-label={`Hits of ${i.title}`}>
                      {hitsSummary(totals.get(i.id)!)}
                    </Button>
                  ) : 'None'}
                </TableCell>
                {mayManage && (
                  <TableCell>
                    {i.active && (
                      <span className={styles.buttons}>
                        <Button size="small" onClick={() => setEditing(i)} aria-label={`Edit ${i.title}`}>Edit</Button>
                        <Button size="small" onClick={() => setExpiring(i)} aria-label={`Expire ${i.title}`}>Expire</Button>
                      </span>
                    )}
                  </TableCell>
                )}
              </TableRow>
            ))}
          </TableBody>
        </Table>
        {list.isPending && <Spinner label="Loading indicators…" />}
        {list.isSuccess && items.length === 0 && <div className={styles.empty}>{includeExpired ? 'No indicator yet.' : 'No active indicator.'}</div>}
      </div>
      {mayManage && <CreateIndicatorForm />}
      {showingHits && <HitsDialog indicator={showingHits} rows={(hits.data?.items ?? []).filter((row) => row.indicatorId === showingHits.id)} onClose={() => setShowingHits(null)} />}
      {editing && <EditIndicatorDialog indicator={editing} onClose={() => setEditing(null)} />}
      {expiring && <ExpireIndicatorDialog indicator={expiring} onClose={() => setExpiring(null)} />}
    </>
  );
}

/** A CSV file from disk, sent as it is; the server imports every row or none. */
function ImportCsv() {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const importCsv = useMutation({ mutationFn: api.importIndicators, onSettled: () => queryClient.invalidateQueries({ queryKey: INDICATORS_KEY }) });
  const chosen = async (event: ChangeEvent<HTMLInputElement>): Promise<void> => {
    const file = event.target.files?.[0];
    // The same file may be chosen again after it is fixed.
    event.target.value = '';
    if (file) importCsv.mutate(await file.text());
  };
  const count = importCsv.data?.items.length ?? 0;
  return (
    <>
      <input ref={input} type="file" accept=".csv,text/csv" className={styles.hidden} aria-label="CSV file to import" onChange={(event) => void chosen(event)} />
      <Button onClick={() => { importCsv.reset(); input.current?.click(); }} disabled={importCsv.isPending}>Import CSV</Button>
      <div role="status" aria-label="Import result">
        {importCsv.isPending && <Spinner size="tiny" label="Importing…" />}
        {importCsv.isSuccess && <MessageBar intent="success"><MessageBarBody>{count} {count === 1 ? 'indicator' : 'indicators'} imported.</MessageBarBody></MessageBar>}
        {importCsv.isError && <MessageBar intent="error"><MessageBarBody>The import was refused. {problemText(importCsv.error)}</MessageBarBody></MessageBar>}
      </div>
    </>
  );
}

const EMPTY_DRAFT = { type: 'sha256' as IndicatorType, value: '', action: 'block' as IndicatorAction, title: '', description: '', groupIds: [] as string[], expires: '' };

function CreateIndicatorForm() {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const groups = useDeviceGroups();
  const [draft, setDraft] = useState(EMPTY_DRAFT);
  const create = useMutation({
    mutationFn: api.createIndicator,
    onSuccess: () => setDraft(EMPTY_DRAFT),
    onSettled: () => queryClient.invalidateQueries({ queryKey: INDICATORS_KEY }),
  });
  const groupNames = draft.groupIds.map((id) => groups.data?.items.find((g) => g.id === id)?.name ?? id).join(', ');
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const body: CreateIndicatorBody = {
      type: draft.type, value: draft.value.trim(), action: draft.action, title: draft.title.trim(),
      ...(draft.description.trim() ? { description: draft.description.trim() } : {}),
      ...(draft.groupIds.length > 0 ? { deviceGroupIds: draft.groupIds } : {}),
      ...(draft.expires ? { expiresAt: expiryFromDate(draft.expires) } : {}),
    };
    create.mutate(body);
  };
  return (
    <>
      <Subtitle1 as="h2" className={styles.section}>Add an indicator</Subtitle1>
      {create.isSuccess && <MessageBar intent="success"><MessageBarBody>Indicator “{create.data.title}” added.</MessageBarBody></MessageBar>}
      <ErrorBar error={create.error} />
      <form className={styles.form} onSubmit={submit} aria-label="Add an indicator">
        <Field label="Indicator type" required className={styles.field}>
          <Select value={draft.type} onChange={(_, d) => setDraft({ ...draft, type: d.value as IndicatorType })}>
            {INDICATOR_TYPES.map((t) => <option key={t} value={t}>{INDICATOR_TYPE_LABELS[t]}</option>)}
          </Select>
        </Field>
        <Field label="Value" required className={styles.wide}>
          <Input value={draft.value} onChange={(_, d) => setDraft({ ...draft, value: d.value })} maxLength={2048} />
        </Field>
        <Field label="Indicator action" required className={styles.field}>
          <Select value={draft.action} onChange={(_, d) => setDraft({ ...draft, action: d.value as IndicatorAction })}>
            {INDICATOR_ACTIONS.map((a) => <option key={a} value={a}>{INDICATOR_ACTION_LABELS[a]}</option>)}
          </Select>
        </Field>
        <Field label="Title" required className={styles.wide}>
          <Input value={draft.title} onChange={(_, d) => setDraft({ ...draft, title: d.value })} maxLength={256} />
        </Field>
        <Field label="Description" className={styles.wide}>
          <Textarea value={draft.description} onChange={(_, d) => setDraft({ ...draft, description: d.value })} maxLength={4000} resize="vertical" />
        </Field>
        <Field label="Device groups" hint="None chosen: every device" className={styles.field}>
          {/* A menu of checkboxes, as on the Settings page's user scopes: it shares their code, not a listbox's. */}
          <Menu checkedValues={{ groups: draft.groupIds }} onCheckedValueChange={(_, data) => setDraft({ ...draft, groupIds: data.checkedItems })}>
            <MenuTrigger disableButtonEnhancement>
              <Button aria-label={`Device groups: ${groupNames || 'all devices'}`}>{groupNames || 'All devices'}</Button>
            </MenuTrigger>
            <MenuPopover>
              <MenuList>
                {(groups.data?.items ?? []).map((g) => <MenuItemCheckbox key={g.id} name="groups" value={g.id}>{g.name}</MenuItemCheckbox>)}
              </MenuList>
            </MenuPopover>
          </Menu>
        </Field>
        <Field label="Expires on" hint="Empty: never" className={styles.field}>
          <Input type="date" min={today()} value={draft.expires} onChange={(_, d) => setDraft({ ...draft, expires: d.value })} />
        </Field>
        <Button type="submit" appearance="primary" disabled={create.isPending || draft.value.trim() === '' || draft.title.trim() === ''}>Add indicator</Button>
      </form>
    </>
  );
}

function EditIndicatorDialog({ indicator, onClose }: { indicator: Indicator; onClose: () => void }) {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const [action, setAction] = useState(indicator.action);
  const [title, setTitle] = useState(indicator.title);
  const [expires, setExpires] = useState(dateOfExpiry(indicator.expiresAt));
  const save = useMutation({
    mutationFn: () => api.updateIndicator(indicator.id, { action, title: title.trim(), expiresAt: expiryFromDate(expires) }),
    onSuccess: onClose,
    onSettled: () => queryClient.invalidateQueries({ queryKey: INDICATORS_KEY }),
  });
  return (
    <Dialog open modalType="modal" onOpenChange={(_, data) => !data.open && onClose()}>
      <DialogSurface>
        <form onSubmit={(event) => { event.preventDefault(); save.mutate(); }}>
          <DialogBody>
            <DialogTitle>Edit indicator</DialogTitle>
            <DialogContent className={styles.column}>
              <ErrorBar error={save.error} />
              <Text className={styles.value}>{INDICATOR_TYPE_LABELS[indicator.type]} {indicator.value}</Text>
              <Field label="Indicator action" required>
                <Select value={action} onChange={(_, d) => setAction(d.value as IndicatorAction)}>
                  {INDICATOR_ACTIONS.map((a) => <option key={a} value={a}>{INDICATOR_ACTION_LABELS[a]}</option>)}
                </Select>
              </Field>
              <Field label="Title" required>
                <Input value={title} onChange={(_, d) => setTitle(d.value)} maxLength={256} />
              </Field>
              <Field label="Expires on" hint="Empty: never">
                <Input type="date" min={today()} value={expires} onChange={(_, d) => setExpires(d.value)} />
              </Field>
            </DialogContent>
            <DialogActions>
              <Button appearance="primary" type="submit" disabled={save.isPending || title.trim() === ''}>Save</Button>
              <Button onClick={onClose}>Cancel</Button>
            </DialogActions>
          </DialogBody>
        </form>
      </DialogSurface>
    </Dialog>
  );
}

const hitsSummary = (total: { count: number; devices: number; lastAt: string }): string =>
  `${total.count.toLocaleString()} on ${total.devices} ${total.devices === 1 ? 'device' : 'devices'}, last ${formatDateTime(total.lastAt)}`;

function HitsDialog({ indicator, rows, onClose }: { indicator: Indicator; rows: IndicatorHitRow[]; onClose: () => void }) {
  return (
    <Dialog open modalType="modal" onOpenChange={(_, data) => !data.open && onClose()}>
      <DialogSurface>
        <DialogBody>
          <DialogTitle>Hits of “{indicator.title}”</DialogTitle>
          <DialogContent>
            <Text block>{INDICATOR_TYPE_LABELS[indicator.type]} {indicator.value}, per device, as their agents reported them.</Text>
            <IndicatorHitsTable rows={rows} label={`Hits of ${indicator.title} per device`} />
          </DialogContent>
          <DialogActions><Button onClick={onClose}>Close</Button></DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

function ExpireIndicatorDialog({ indicator, onClose }: { indicator: Indicator; onClose: () => void }) {
  const styles = useStyles();
  const queryClient = useQueryClient();
  const expire = useMutation({
    mutationFn: () => api.expireIndicator(indicator.id),
    onSuccess: onClose,
    onSettled: () => queryClient.invalidateQueries({ queryKey: INDICATORS_KEY }),
  });
  return (
    <Dialog open modalType="modal" onOpenChange={(_, data) => !data.open && onClose()}>
      <DialogSurface>
        <DialogBody>
          <DialogTitle>Expire indicator</DialogTitle>
          <DialogContent className={styles.column}>
            <ErrorBar error={expire.error} />
            <Text className={styles.value}>
              {INDICATOR_ACTION_LABELS[indicator.action]} {INDICATOR_TYPE_LABELS[indicator.type]} {indicator.value} (“{indicator.title}”) stops matching now.
              It is kept for the record and listed with the expired indicators.
            </Text>
          </DialogContent>
          <DialogActions>
            <Button appearance="primary" disabled={expire.isPending} onClick={() => expire.mutate()}>Expire</Button>
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
