import { Button, Field, Input, Select, makeStyles, tokens } from '@fluentui/react-components';
import {
  ACTION_SOURCES, ACTION_STATUSES, ACTION_TYPES, ENTITY_TYPES, TIME_RANGES, type ActionStatus, type ActionView, type TimeRange, statusesCountedAs,
} from '@quell/contracts';
import { useQuery } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { api } from '../api/api-client.ts';
import { ENTITY_TYPE_LABELS, SOURCE_LABELS, STATUS_LABELS, typeLabel } from '../format.ts';
import type { ActionFilters } from './action-filters.ts';

const RANGE_LABELS: Record<TimeRange, string> = { day: 'Last day', week: 'Last week', '30d': 'Last 30 days', '6m': 'Last 6 months', custom: 'Custom range' };

const useStyles = makeStyles({
  bar: { display: 'flex', flexWrap: 'wrap', alignItems: 'flex-end', gap: tokens.spacingHorizontalM, margin: `${tokens.spacingVerticalS} 0` },
  field: { minWidth: '150px' },
  search: { minWidth: '280px' },
});

/** A text filter that applies when the user presses Enter or leaves the box, not on every key. */
function TextFilter({ label, placeholder, value, onCommit, search }: { label: string; placeholder?: string; value: string | undefined; onCommit: (value: string | undefined) => void; search?: boolean }) {
  const styles = useStyles();
  const [draft, setDraft] = useState(value ?? '');
  const commit = (): void => {
    if (draft.trim() !== (value ?? '')) onCommit(draft.trim() || undefined);
  };
  return (
    <Field label={label} className={search ? styles.search : styles.field}>
      <Input value={draft} placeholder={placeholder} {...(search ? { 'data-shortcut': 'search' } : {})} onChange={(_, data) => setDraft(data.value)} onBlur={commit} onKeyDown={(event) => event.key === 'Enter' && commit()} />
    </Field>
  );
}

function Choice<T extends string>({ label, value, options, onChange }: { label: string; value: T | undefined; options: Array<[T, string]>; onChange: (value: T | undefined) => void }) {
  return (
    <Field label={label} className={useStyles().field}>
      <Select value={value ?? ''} onChange={(_, data) => onChange((data.value || undefined) as T | undefined)}>
        <option value="">Any</option>
        {options.map(([v, text]) => <option key={v} value={v}>{text}</option>)}
      </Select>
    </Field>
  );
}

const toLocalInput = (iso: string | undefined): string => {
  if (!iso) return '';
  const date = new Date(iso);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};
const fromLocalInput = (value: string): string | undefined => (value ? new Date(value).toISOString() : undefined);

/** A status as a filter names it: with the statuses that count as it (Rejected finds the expired too). */
function statusFilterLabel(status: ActionStatus): string {
  const counted = statusesCountedAs(status).filter((other) => other !== status);
  return counted.length === 0 ? STATUS_LABELS[status] : `${STATUS_LABELS[status]}, ${counted.map((other) => other.replaceAll('_', ' ')).join(', ')} included`;
}

/** The filters behind *More filters*: rarer, so they take no room until asked for. */
const MORE: Array<keyof ActionFilters> = ['source', 'entityType', 'deviceId', 'investigationId', 'decidedBy'];

/** The Action center's filters on one line: entity search, time, type and status, the rarer ones behind *More filters*. */
export function FiltersBar({ view, filters, onChange }: { view: ActionView; filters: ActionFilters; onChange: (filters: ActionFilters) => void }) {
  const styles = useStyles();
  const hiddenInUse = MORE.filter((key) => filters[key] !== undefined).length;
  const [more, setMore] = useState(hiddenInUse > 0);
  // The fleet's devices fill the Device filter: fetched once it is shown, not on every first paint of the Action center.
  const devices = useQuery({ queryKey: ['devices'], queryFn: api.listDevices, staleTime: 60_000, enabled: more });
  const deviceOptions: Array<[string, string]> = (devices.data?.items ?? []).map((d) => [d.id, d.name]);
  if (filters.deviceId && !deviceOptions.some(([id]) => id === filters.deviceId)) deviceOptions.unshift([filters.deviceId, devices.isPending ? 'Loading…' : filters.deviceId]);
  const set = <K extends keyof ActionFilters>(key: K, value: ActionFilters[K]): void => onChange({ ...filters, [key]: value });
  const statuses = ACTION_STATUSES.filter((s) => s !== 'pending_approval');
  const fields: ReactNode[] = [
    <TextFilter key={`entity-${filters.entity ?? ''}`} label="Entity" placeholder="Name, path or SHA-256" value={filters.entity} onCommit={(v) => set('entity', v)} search />,
    <Choice key="range" label="Time range" value={filters.range} options={TIME_RANGES.map((r) => [r, RANGE_LABELS[r]])}
      onChange={(range) => onChange({ ...filters, range, from: undefined, to: undefined })} />,
  ];
  if (filters.range === 'custom') {
    fields.push(
      <Field key="from" label="From" className={styles.field}>
        <Input type="datetime-local" value={toLocalInput(filters.from)} onChange={(_, data) => set('from', fromLocalInput(data.value))} />
      </Field>,
      <Field key="to" label="To" className={styles.field}>
        <Input type="datetime-local" value={toLocalInput(filters.to)} onChange={(_, data) => set('to', fromLocalInput(data.value))} />
      </Field>,
    );
  }
  fields.push(<Choice key="type" label="Action type" value={filters.type} options={ACTION_TYPES.map((t) => [t, typeLabel(t)])} onChange={(v) => set('type', v)} />);
  if (view === 'history') {
    fields.push(<Choice key="status" label="Status" value={filters.status} options={statuses.map((s) => [s, statusFilterLabel(s)])} onChange={(v) => set('status', v)} />);
  }
  const moreFields: ReactNode[] = [
    <Choice key="source" label="Source" value={filters.source} options={ACTION_SOURCES.map((s) => [s, SOURCE_LABELS[s]])} onChange={(v) => set('source', v)} />,
    <Choice key="entityType" label="Entity type" value={filters.entityType} options={ENTITY_TYPES.map((e) => [e, ENTITY_TYPE_LABELS[e]])} onChange={(v) => set('entityType', v)} />,
    <Choice key="device" label="Device" value={filters.deviceId} options={deviceOptions} onChange={(v) => set('deviceId', v)} />,
    <TextFilter key={`inv-${filters.investigationId ?? ''}`} label="Investigation" value={filters.investigationId} onCommit={(v) => set('investigationId', v)} />,
  ];
  if (view === 'history') {
    moreFields.push(<TextFilter key={`by-${filters.decidedBy ?? ''}`} label="Decided by" value={filters.decidedBy} onCommit={(v) => set('decidedBy', v)} />);
  }
  const any = Object.entries(filters).some(([key, value]) => value !== undefined && !['sort', 'order', 'limit'].includes(key));
  return (
    <div role="search" aria-label="Filters">
      <div className={styles.bar}>
        {fields}
        <Button appearance="subtle" aria-expanded={more} aria-controls="more-filters" onClick={() => setMore(!more)}>
          {more ? 'Fewer filters' : `More filters${hiddenInUse > 0 ? ` (${hiddenInUse})` : ''}`}
        </Button>
        <Button appearance="subtle" disabled={!any} onClick={() => onChange({ sort: filters.sort, order: filters.order, limit: filters.limit })}>Clear filters</Button>
      </div>
      {more && <div id="more-filters" className={styles.bar}>{moreFields}</div>}
    </div>
  );
}
