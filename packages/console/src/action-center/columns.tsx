import type { Action, ActionSortField } from '@quell/contracts';
import type { ReactNode } from 'react';
import { ENTITY_TYPE_LABELS, SOURCE_LABELS, formatDateTime, typeLabel } from '../format.ts';
import { StatusWithDeadline } from './status-badge.tsx';

export interface Column {
  id: string;
  label: string;
  /** The API's sort field, for the columns the list can be sorted by. */
  sort?: ActionSortField;
  shownByDefault: boolean;
  render: (action: Action, now: number) => ReactNode;
}

const short = (id: string | null): string => (id ? (id.length > 13 ? `${id.slice(0, 8)}…` : id) : '—');

/** Entity names and comments come from attackers and users: React renders them as text, never as HTML. */
export const COLUMNS: Column[] = [
  { id: 'id', label: 'Action ID', shownByDefault: true, render: (a) => <span title={a.id}>{short(a.id)}</span> },
  { id: 'investigationId', label: 'Investigation ID', shownByDefault: true, render: (a) => short(a.investigationId) },
  { id: 'approvalId', label: 'Approval ID', shownByDefault: false, render: (a) => short(a.approvalId) },
  { id: 'type', label: 'Action type', shownByDefault: true, render: (a) => typeLabel(a.type) },
  { id: 'entityType', label: 'Entity type', shownByDefault: true, render: (a) => ENTITY_TYPE_LABELS[a.entityType] },
  { id: 'entity', label: 'Entity', shownByDefault: true, render: (a) => a.entity.name },
  { id: 'asset', label: 'Asset', shownByDefault: true, render: (a) => a.deviceName },
  { id: 'source', label: 'Source', shownByDefault: true, render: (a) => SOURCE_LABELS[a.source] },
  { id: 'status', label: 'Status', shownByDefault: true, render: (a, now) => <StatusWithDeadline action={a} now={now} /> },
  { id: 'decidedBy', label: 'Decided by', shownByDefault: true, render: (a) => a.decidedBy ?? '—' },
  { id: 'requestedAt', label: 'Date/time', sort: 'requestedAt', shownByDefault: true, render: (a) => formatDateTime(a.requestedAt) },
  { id: 'updatedAt', label: 'Last update', sort: 'updatedAt', shownByDefault: false, render: (a) => formatDateTime(a.updatedAt) },
  { id: 'comment', label: 'Comment', shownByDefault: true, render: (a) => a.decisionComment ?? a.comment ?? '—' },
];

const STORAGE_KEY = 'quell.actionColumns';

export function loadVisibleColumns(): string[] {
  try {
    const saved: unknown = JSON.parse(window.localStorage.getItem(STORAGE_KEY) ?? 'null');
    if (Array.isArray(saved) && saved.every((id) => typeof id === 'string')) return COLUMNS.filter((c) => saved.includes(c.id)).map((c) => c.id);
  } catch {
    // A stored value we cannot read is the same as none.
  }
  return COLUMNS.filter((c) => c.shownByDefault).map((c) => c.id);
}

export function saveVisibleColumns(ids: string[]): void {
  window.localStorage.setItem(STORAGE_KEY, JSON.stringify(ids));
}
