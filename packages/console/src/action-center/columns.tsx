import { makeStyles, mergeClasses } from '@fluentui/react-components';
import type { Action, ActionSortField, ActionView } from '@quell/contracts';
import type { ReactNode } from 'react';
import { ENTITY_TYPE_LABELS, SOURCE_LABELS, formatCompactDateTime, formatDateTime, shortId, typeLabel } from '../format.ts';
import { Link } from '../router.tsx';
import { StatusWithDeadline } from './status-badge.tsx';

export interface Column {
  id: string;
  label: string;
  /** The API's sort field, for the columns the list can be sorted by. */
  sort?: ActionSortField;
  /** The tabs that show it until the user chooses otherwise. */
  shownIn: ActionView[];
  /** The tabs that offer it at all; all when absent (Pending has no decision to show). */
  offeredIn?: ActionView[];
  render: (action: Action, now: number) => ReactNode;
}

const useStyles = makeStyles({
  // One line per row: long text is cut with an ellipsis, and the whole of it is in the title and the flyout.
  clip: { display: 'block', overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap' },
  entity: { maxWidth: '280px' },
  comment: { maxWidth: '360px' },
  medium: { maxWidth: '180px' },
});

type Width = 'entity' | 'comment' | 'medium';

/** Text on one line, cut to the column's width, whole (or `title`) on hover. Attackers choose entity names: React renders them as text. */
function Clipped({ text, title = text, width }: { text: string; title?: string; width: Width }) {
  const styles = useStyles();
  return <span className={mergeClasses(styles.clip, styles[width])} title={title}>{text}</span>;
}

function When({ iso, now }: { iso: string | null; now: number }) {
  return <span title={formatDateTime(iso)}>{formatCompactDateTime(iso, now)}</span>;
}

/** A link inside a clickable row: following it must not also open the row's flyout. */
function RowLink({ to, children }: { to: string; children: ReactNode }) {
  return <span onClick={(event) => event.stopPropagation()}><Link to={to}>{children}</Link></span>;
}

export const COLUMNS: Column[] = [
  { id: 'id', label: 'Action ID', shownIn: [], render: (a) => <span title={a.id}>{shortId(a.id)}</span> },
  {
    id: 'investigationId', label: 'Investigation', shownIn: ['pending', 'history'],
    render: (a) => (a.investigationId ? <RowLink to={`/investigations/${encodeURIComponent(a.investigationId)}`}><span title={a.investigationId}>{shortId(a.investigationId)}</span></RowLink> : '—'),
  },
  { id: 'approvalId', label: 'Approval ID', shownIn: [], render: (a) => (a.approvalId ? <span title={a.approvalId}>{shortId(a.approvalId)}</span> : '—') },
  { id: 'type', label: 'Action type', shownIn: ['pending', 'history'], render: (a) => typeLabel(a.type) },
  { id: 'entityType', label: 'Entity type', shownIn: [], render: (a) => ENTITY_TYPE_LABELS[a.entityType] },
  { id: 'entity', label: 'Entity', shownIn: ['pending', 'history'], render: (a) => <Clipped text={a.entity.name} title={a.entity.path ?? a.entity.name} width="entity" /> },
  { id: 'asset', label: 'Asset', shownIn: ['pending', 'history'], render: (a) => <Clipped text={a.deviceName} width="medium" /> },
  { id: 'source', label: 'Source', shownIn: ['pending', 'history'], render: (a) => <Clipped text={SOURCE_LABELS[a.source]} width="medium" /> },
  { id: 'status', label: 'Status', shownIn: ['pending', 'history'], render: (a, now) => <StatusWithDeadline action={a} now={now} /> },
  { id: 'decidedBy', label: 'Decided by', shownIn: ['history'], offeredIn: ['history'], render: (a) => (a.decidedBy ? <Clipped text={a.decidedBy} width="medium" /> : '—') },
  { id: 'requestedAt', label: 'Requested', sort: 'requestedAt', shownIn: ['pending', 'history'], render: (a, now) => <When iso={a.requestedAt} now={now} /> },
  { id: 'decidedAt', label: 'Decided', shownIn: ['history'], offeredIn: ['history'], render: (a, now) => <When iso={a.decidedAt} now={now} /> },
  { id: 'updatedAt', label: 'Last change', sort: 'updatedAt', shownIn: ['history'], render: (a, now) => <When iso={a.updatedAt} now={now} /> },
  { id: 'comment', label: 'Comment', shownIn: ['pending', 'history'], render: (a) => <Clipped text={a.decisionComment ?? a.comment ?? '—'} width="comment" /> },
];

/** The columns a tab offers in the column chooser. */
export const columnsOf = (view: ActionView): Column[] => COLUMNS.filter((c) => !c.offeredIn || c.offeredIn.includes(view));

const storageKey = (view: ActionView): string => `quell.actionColumns.${view}`;

/** The columns the user chose for a tab, or the tab's defaults. */
export function loadVisibleColumns(view: ActionView): string[] {
  try {
    const saved: unknown = JSON.parse(window.localStorage.getItem(storageKey(view)) ?? 'null');
    if (Array.isArray(saved) && saved.every((id) => typeof id === 'string')) return columnsOf(view).filter((c) => saved.includes(c.id)).map((c) => c.id);
  } catch {
    // A stored value we cannot read is the same as none.
  }
  return columnsOf(view).filter((c) => c.shownIn.includes(view)).map((c) => c.id);
}

export function saveVisibleColumns(view: ActionView, ids: string[]): void {
  window.localStorage.setItem(storageKey(view), JSON.stringify(ids));
}
