import {
  Button, Checkbox, Menu, MenuItemCheckbox, MenuList, MenuPopover, MenuTrigger, MessageBar, MessageBarBody, Select, Spinner, Table, TableBody,
  TableCell, TableHeader, TableHeaderCell, TableRow, Text, Tooltip, makeStyles, mergeClasses, tokens, useRestoreFocusTarget,
} from '@fluentui/react-components';
import type { Action, ActionView } from '@quell/contracts';
import { type KeyboardEvent, useEffect, useRef, useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { typeLabel } from '../format.ts';
import { onDemand } from '../on-demand.ts';
import { usePermissions } from '../session/session.tsx';
import { type ActionFilters, DEFAULT_PAGE_SIZE, PAGE_SIZES, defaultSort, exportQuery } from './action-filters.ts';
import { type Column, columnsOf, loadVisibleColumns, saveVisibleColumns } from './columns.tsx';
import { useOpenAction } from './flyout-host.tsx';
import { undoRefusal } from './refusals.ts';
import { type Decision, useActionsPage, useNow } from './use-actions.ts';

const useStyles = makeStyles({
  toolbar: { display: 'flex', flexWrap: 'wrap', alignItems: 'center', gap: tokens.spacingHorizontalS, margin: `${tokens.spacingVerticalS} 0` },
  spacer: { flexGrow: 1 },
  tableWrap: { overflowX: 'auto' },
  // Columns as wide as their content (Fluent's tables split the width evenly); long text is cut in its cell.
  table: { tableLayout: 'auto' },
  row: { cursor: 'pointer', whiteSpace: 'nowrap', ':focus-visible': { outline: `2px solid ${tokens.colorStrokeFocus2}`, outlineOffset: '-2px' } },
  pastDue: { backgroundColor: tokens.colorPaletteRedBackground1, boxShadow: `inset 4px 0 0 ${tokens.colorPaletteRedBorder2}` },
  selectCell: { width: '44px' },
  pager: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalM, marginTop: tokens.spacingVerticalM },
  hint: { color: tokens.colorNeutralForeground2 },
  empty: { padding: tokens.spacingVerticalXXL, textAlign: 'center', color: tokens.colorNeutralForeground2 },
});

export interface ActionsViewProps {
  view: ActionView;
  filters: ActionFilters;
  /** Without it the sort and page size are fixed (embedded lists on other pages). */
  onFiltersChange?: (filters: ActionFilters) => void;
  label: string;
  /** Columns of the page's own, after the chosen ones (the verdicts on an incident's page). */
  extraColumns?: Column[];
}

/** Why this row cannot join the selection, or null when it can. */
function selectionRefusal(action: Action, view: ActionView, selectedType: Action['type'] | null, undoRefusal: (a: Action) => string | null): string | null {
  if (selectedType !== null && action.type !== selectedType) {
    return `Select actions of one type at a time: the selection holds ${typeLabel(selectedType).toLowerCase()} actions, this is ${typeLabel(action.type).toLowerCase()}`;
  }
  return view === 'history' ? undoRefusal(action) : null;
}

/** What an empty list says: an embedded one (on an incident's page) has no filters of its own to blame. */
function emptyText(view: ActionView, filtered: boolean): string {
  if (!filtered) return view === 'pending' ? 'No action waits for approval.' : 'No action yet.';
  return view === 'pending' ? 'No action waits for approval with these filters.' : 'No action matches these filters.';
}

/** The value as it was when `hold` became true, until it is false again. */
function useHeld<T>(value: T, hold: boolean): T {
  const [held, setHeld] = useState(value);
  if (!hold && held !== value) setHeld(value);
  return hold ? held : value;
}

const NO_ACTIONS: Action[] = [];
/** The confirmation's code loads once the list has its first page, not before. */
const decisionDialog = onDemand(() => import('./decision-dialog.tsx'));
const KEYS_WITH_MEANING = new Set(['j', 'k', 'x', 'a', 'r', 'u']);

/**
 * One page of the Pending or History list with server-side keyset paging,
 * multi-select of one action type, bulk decisions, the column chooser and the flyout.
 * From the keyboard: j / k move between rows, Enter opens one, x selects it,
 * a / r approve or reject and u undoes the selection, or the row when nothing is selected.
 */
export function ActionsView({ view, filters, onFiltersChange, label, extraColumns = [] }: ActionsViewProps) {
  const styles = useStyles();
  const now = useNow();
  const permissions = usePermissions();
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const page = useActionsPage(view, filters, cursors[cursors.length - 1]);
  /** The first page's count of matches, as the pager says it ("of 1,234", or "of 10,000+" when the count stopped at its cap). */
  const [total, setTotal] = useState<string | null>(null);
  const [selected, setSelected] = useState<Map<string, Action>>(new Map());
  const [hint, setHint] = useState('');
  const openAction = useOpenAction();
  // Closing the flyout puts focus back on the row it was opened from.
  const restoreFocusTarget = useRestoreFocusTarget();
  const [decision, setDecision] = useState<Decision | null>(null);
  const DecisionDialog = decisionDialog.useModule(page.isSuccess).module?.DecisionDialog;
  const [visible, setVisible] = useState(() => loadVisibleColumns(view));
  const tableRef = useRef<HTMLTableElement>(null);
  /** The row the keyboard was last on, to come back to after a dialog when that row has left the list. */
  const lastRow = useRef<number | null>(null);
  const dialogOpen = decision !== null;

  // Only the first page counts the matches (a count costs a scan); later pages keep that total.
  const pageTotal = page.data?.total == null ? null : `${page.data.total.toLocaleString()}${page.data.totalIsLowerBound ? '+' : ''}`;
  if (pageTotal !== null && pageTotal !== total) setTotal(pageTotal);

  // While a decision's dialog is open the rows behind it stay where they are; they refresh when it closes.
  // (The flyout covers the list and closes on a click beside it: no click can land on a row that moved behind it.)
  const items = useHeld(page.data?.items ?? NO_ACTIONS, dialogOpen);
  const selectedList = [...selected.values()];
  const selectedType = selectedList[0]?.type ?? null;
  const mayDecide = permissions.decideRefusal() === null;
  const mayUndo = permissions.has('actions:undo');
  const selectable = view === 'pending' ? mayDecide : mayUndo;
  const whyNotUndo = (a: Action): string | null => undoRefusal(a, permissions.undoRefusal);
  const offered = columnsOf(view);
  const columns = [...offered.filter((c) => visible.includes(c.id)), ...extraColumns];
  const limit = filters.limit ?? DEFAULT_PAGE_SIZE;
  const first = (cursors.length - 1) * limit;
  const sort = filters.sort ?? defaultSort(view);

  // Select all: the page's rows of the selection's type, or of the first row that can be selected.
  const pageType = selectedType ?? items.find((a) => selectionRefusal(a, view, null, whyNotUndo) === null)?.type ?? null;
  const pageCandidates = pageType ? items.filter((a) => selectionRefusal(a, view, pageType, whyNotUndo) === null) : [];
  const allChecked = pageCandidates.length > 0 && pageCandidates.every((a) => selected.has(a.id));
  const someChecked = pageCandidates.some((a) => selected.has(a.id));
  const selectPage = (): void => {
    const next = new Map(selected);
    if (allChecked) {
      for (const a of pageCandidates) next.delete(a.id);
      setHint('');
    } else {
      for (const a of pageCandidates) next.set(a.id, a);
      const left = items.length - pageCandidates.length;
      setHint(left > 0 ? `${left} ${left === 1 ? 'row was' : 'rows were'} left out: a decision covers actions of one type${view === 'history' ? ' that can be undone' : ''}.` : '');
    }
    setSelected(next);
  };

  const toggle = (action: Action): void => {
    const next = new Map(selected);
    if (next.has(action.id)) next.delete(action.id);
    else next.set(action.id, action);
    setSelected(next);
  };
  const sortBy = (field: NonNullable<ActionFilters['sort']>): void => {
    const order = sort === field && (filters.order ?? 'desc') === 'desc' ? 'asc' : 'desc';
    onFiltersChange?.({ ...filters, sort: field, order });
  };

  /** A decision from the keyboard: on the selection, or on the row when nothing is selected. */
  const decideFromKey = (kind: 'approve' | 'reject' | 'undo', action: Action): void => {
    const allowed = kind === 'undo' ? view === 'history' && mayUndo : view === 'pending' && mayDecide;
    if (!allowed) {
      setHint(kind === 'undo' ? (view === 'history' ? permissions.undoRefusal(action.type) ?? '' : 'Undo applies to History.') : (permissions.decideRefusal() ?? 'Approve and reject apply to Pending.'));
      return;
    }
    if (selectedList.length > 0) {
      setDecision({ kind, actions: selectedList });
      return;
    }
    const refusal = kind === 'undo' ? whyNotUndo(action) : null;
    if (refusal) setHint(`${refusal}.`);
    else setDecision({ kind, actions: [action] });
  };

  const rowsOfTable = (): HTMLElement[] => [...(tableRef.current?.querySelectorAll<HTMLElement>('tr[data-action-id]') ?? [])];
  const onRowKey = (event: KeyboardEvent<HTMLTableRowElement>, action: Action, index: number): void => {
    if (event.target !== event.currentTarget || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key === ' ' ? 'Enter' : event.key;
    if (key !== 'Enter' && !KEYS_WITH_MEANING.has(key)) return;
    event.preventDefault();
    setHint('');
    if (key === 'Enter') openAction(action.id);
    else if (key === 'j' || key === 'k') rowsOfTable()[Math.max(0, Math.min(items.length - 1, index + (key === 'j' ? 1 : -1)))]?.focus();
    else if (key === 'x') {
      const refusal = selectable ? selectionRefusal(action, view, selectedType, whyNotUndo) : (permissions.decideRefusal() ?? 'Your role cannot undo actions');
      if (refusal && !selected.has(action.id)) setHint(`${refusal}.`);
      else toggle(action);
    } else decideFromKey(key === 'a' ? 'approve' : key === 'r' ? 'reject' : 'undo', action);
  };

  // After its decision's dialog, the keyboard goes back to the list: to the same place when the row it was on has left it.
  const wasOpen = useRef(false);
  useEffect(() => {
    const closed = wasOpen.current && !dialogOpen;
    wasOpen.current = dialogOpen;
    if (!closed || lastRow.current === null) return;
    let frames = 0;
    let request = 0;
    const settle = (): void => {
      // The dialog hands focus back once its exit ends; until then it is still there.
      if (document.querySelector('[role="dialog"]') && frames++ < 60) {
        request = window.requestAnimationFrame(settle);
        return;
      }
      const active = document.activeElement;
      if (active === null || active === document.body) {
        const rows = rowsOfTable();
        rows[Math.min(lastRow.current ?? 0, rows.length - 1)]?.focus();
      }
    };
    request = window.requestAnimationFrame(settle);
    return () => window.cancelAnimationFrame(request);
  }, [dialogOpen]);

  return (
    <section aria-label={label}>
      <div className={styles.toolbar} role="group" aria-label={`${label}: tools`}>
        {selectable && selectedList.length > 0 && (
          <>
            <Text>{selectedList.length} selected · {typeLabel(selectedType!)}</Text>
            {view === 'pending' ? (
              <>
                <Button appearance="primary" onClick={() => setDecision({ kind: 'approve', actions: selectedList })}>Approve ({selectedList.length})</Button>
                <Button onClick={() => setDecision({ kind: 'reject', actions: selectedList })}>Reject ({selectedList.length})</Button>
              </>
            ) : (
              <Button appearance="primary" onClick={() => setDecision({ kind: 'undo', actions: selectedList })}>Undo ({selectedList.length})</Button>
            )}
            <Button appearance="subtle" onClick={() => setSelected(new Map())}>Clear selection</Button>
          </>
        )}
        {!selectable && view === 'pending' && <Text size={200}>{permissions.decideRefusal()}.</Text>}
        <Text size={200} className={styles.hint} role="status">{hint}</Text>
        <span className={styles.spacer} />
        {view === 'history' && onFiltersChange && (
          <Button as="a" href={api.exportCsvUrl(exportQuery(filters))} download="quell-actions.csv">Export CSV</Button>
        )}
        <Menu
          checkedValues={{ columns: visible }}
          onCheckedValueChange={(_, data) => {
            const ids = offered.filter((c) => data.checkedItems.includes(c.id)).map((c) => c.id);
            setVisible(ids);
            saveVisibleColumns(view, ids);
          }}
        >
          <MenuTrigger disableButtonEnhancement><Button>Columns</Button></MenuTrigger>
          <MenuPopover>
            <MenuList>
              {offered.map((c) => <MenuItemCheckbox key={c.id} name="columns" value={c.id}>{c.label}</MenuItemCheckbox>)}
            </MenuList>
          </MenuPopover>
        </Menu>
        {onFiltersChange && (
          <Select aria-label="Page size" value={String(limit)} onChange={(_, data) => onFiltersChange({ ...filters, limit: Number(data.value) })}>
            {PAGE_SIZES.map((size) => <option key={size} value={size}>{size} per page</option>)}
          </Select>
        )}
      </div>

      {page.isError && <MessageBar intent="error"><MessageBarBody>{problemText(page.error)}</MessageBarBody></MessageBar>}
      <div className={styles.tableWrap}>
        <Table aria-label={label} size="small" ref={tableRef} className={styles.table}>
          <TableHeader>
            <TableRow>
              {selectable && (
                <TableHeaderCell className={styles.selectCell}>
                  <Checkbox
                    checked={allChecked ? true : someChecked ? 'mixed' : false}
                    disabled={pageCandidates.length === 0}
                    onChange={selectPage}
                    aria-label={pageType ? `Select all ${typeLabel(pageType).toLowerCase()} actions on this page` : 'Select all on this page'}
                  />
                </TableHeaderCell>
              )}
              {columns.map((c) => c.sort && onFiltersChange ? (
                <TableHeaderCell
                  key={c.id}
                  sortable
                  sortDirection={sort === c.sort ? (filters.order === 'asc' ? 'ascending' : 'descending') : undefined}
                  onClick={() => sortBy(c.sort!)}
                >
                  {c.label}
                </TableHeaderCell>
              ) : <TableHeaderCell key={c.id}>{c.label}</TableHeaderCell>)}
            </TableRow>
          </TableHeader>
          <TableBody>
            {items.map((action, index) => {
              const refusal = selectionRefusal(action, view, selectedType, whyNotUndo);
              const checked = selected.has(action.id);
              const pastDue = action.status === 'pending_approval' && action.expiresAt !== null && Date.parse(action.expiresAt) <= now;
              const checkbox = (
                <Checkbox
                  checked={checked}
                  disabled={!checked && refusal !== null}
                  onChange={() => toggle(action)}
                  aria-label={`Select ${typeLabel(action.type).toLowerCase()} of ${action.entity.name} on ${action.deviceName}`}
                />
              );
              return (
                <TableRow
                  key={action.id}
                  tabIndex={0}
                  {...restoreFocusTarget}
                  data-action-id={action.id}
                  aria-selected={selectable ? checked : undefined}
                  className={mergeClasses(styles.row, pastDue && styles.pastDue)}
                  onClick={() => openAction(action.id)}
                  onFocus={(event) => event.target === event.currentTarget && (lastRow.current = index)}
                  onKeyDown={(event) => onRowKey(event, action, index)}
                >
                  {selectable && (
                    <TableCell className={styles.selectCell} onClick={(event) => event.stopPropagation()}>
                      {!checked && refusal !== null ? <Tooltip content={refusal} relationship="description">{checkbox}</Tooltip> : checkbox}
                    </TableCell>
                  )}
                  {columns.map((c) => <TableCell key={c.id}>{c.render(action, now)}</TableCell>)}
                </TableRow>
              );
            })}
          </TableBody>
        </Table>
        {page.isPending && <Spinner label="Loading actions…" />}
        {page.isSuccess && items.length === 0 && (
          <div className={styles.empty}>{emptyText(view, onFiltersChange !== undefined)}</div>
        )}
      </div>

      <nav className={styles.pager} aria-label={`${label}: pages`}>
        <Button disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</Button>
        <Button disabled={!page.data?.nextCursor} onClick={() => setCursors([...cursors, page.data!.nextCursor!])}>Next page</Button>
        <Text aria-live="polite">
          {`${items.length > 0 ? `${first + 1}–${first + items.length}` : '0'}${total !== null ? ` of ${total}` : ''}`}
        </Text>
        {page.isFetching && !page.isPending && <Spinner size="tiny" aria-label="Refreshing" />}
      </nav>

      {decision && DecisionDialog && <DecisionDialog decision={decision} onClose={() => setDecision(null)} onDecided={() => setSelected(new Map())} />}
    </section>
  );
}
