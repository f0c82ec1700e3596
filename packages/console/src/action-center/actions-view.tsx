import {
  Button, Checkbox, Menu, MenuItemCheckbox, MenuList, MenuPopover, MenuTrigger, MessageBar, MessageBarBody, Select, Spinner, Table, TableBody,
  TableCell, TableHeader, TableHeaderCell, TableRow, Text, Tooltip, makeStyles, mergeClasses, tokens, useRestoreFocusTarget,
} from '@fluentui/react-components';
import type { Action, ActionView } from '@quell/contracts';
import { type KeyboardEvent, useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { typeLabel } from '../format.ts';
import { usePermissions } from '../session/session.tsx';
import { type ActionFilters, DEFAULT_PAGE_SIZE, PAGE_SIZES, exportQuery } from './action-filters.ts';
import { COLUMNS, loadVisibleColumns, saveVisibleColumns } from './columns.tsx';
import { DecisionDialog } from './decision-dialog.tsx';
import { useOpenAction } from './flyout-host.tsx';
import { undoRefusal } from './refusals.ts';
import { type Decision, useActionsPage, useNow } from './use-actions.ts';

const useStyles = makeStyles({
  toolbar: { display: 'flex', flexWrap: 'wrap', alignItems: 'center', gap: tokens.spacingHorizontalS, margin: `${tokens.spacingVerticalS} 0` },
  spacer: { flexGrow: 1 },
  tableWrap: { overflowX: 'auto' },
  row: { cursor: 'pointer', ':focus-visible': { outline: `2px solid ${tokens.colorStrokeFocus2}`, outlineOffset: '-2px' } },
  pastDue: { backgroundColor: tokens.colorPaletteRedBackground1, boxShadow: `inset 4px 0 0 ${tokens.colorPaletteRedBorder2}` },
  selectCell: { width: '44px' },
  visuallyHidden: { position: 'absolute', width: '1px', height: '1px', overflow: 'hidden', clip: 'rect(0 0 0 0)', whiteSpace: 'nowrap' },
  entity: { wordBreak: 'break-all', maxWidth: '320px' },
  pager: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalM, marginTop: tokens.spacingVerticalM },
  empty: { padding: tokens.spacingVerticalXXL, textAlign: 'center', color: tokens.colorNeutralForeground2 },
});

export interface ActionsViewProps {
  view: ActionView;
  filters: ActionFilters;
  /** Without it the sort and page size are fixed (embedded lists on other pages). */
  onFiltersChange?: (filters: ActionFilters) => void;
  label: string;
}

/** Why this row cannot join the selection, or null when it can. */
function selectionRefusal(action: Action, view: ActionView, selectedType: Action['type'] | null, undoRefusal: (a: Action) => string | null): string | null {
  if (selectedType !== null && action.type !== selectedType) {
    return `Select actions of one type at a time: the selection holds ${typeLabel(selectedType).toLowerCase()} actions, this is ${typeLabel(action.type).toLowerCase()}`;
  }
  return view === 'history' ? undoRefusal(action) : null;
}

/**
 * One page of the Pending or History list with server-side keyset paging,
 * multi-select of one action type, bulk decisions, the column chooser and the flyout.
 */
export function ActionsView({ view, filters, onFiltersChange, label }: ActionsViewProps) {
  const styles = useStyles();
  const now = useNow();
  const permissions = usePermissions();
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const page = useActionsPage(view, filters, cursors[cursors.length - 1]);
  const [total, setTotal] = useState<number | null>(null);
  const [selected, setSelected] = useState<Map<string, Action>>(new Map());
  const openAction = useOpenAction();
  // Closing the flyout puts focus back on the row it was opened from.
  const restoreFocusTarget = useRestoreFocusTarget();
  const [decision, setDecision] = useState<Decision | null>(null);
  const [visible, setVisible] = useState(loadVisibleColumns);

  // Only the first page counts the matches (a count costs a scan); later pages keep that total.
  const pageTotal = page.data?.total ?? null;
  if (pageTotal !== null && pageTotal !== total) setTotal(pageTotal);

  const items = page.data?.items ?? [];
  const selectedList = [...selected.values()];
  const selectedType = selectedList[0]?.type ?? null;
  const mayDecide = permissions.decideRefusal() === null;
  const mayUndo = permissions.has('actions:undo');
  const selectable = view === 'pending' ? mayDecide : mayUndo;
  const whyNotUndo = (a: Action): string | null => undoRefusal(a, permissions.undoRefusal);
  const columns = COLUMNS.filter((c) => visible.includes(c.id));
  const limit = filters.limit ?? DEFAULT_PAGE_SIZE;
  const first = (cursors.length - 1) * limit;

  const toggle = (action: Action): void => {
    const next = new Map(selected);
    if (next.has(action.id)) next.delete(action.id);
    else next.set(action.id, action);
    setSelected(next);
  };
  const sortBy = (field: NonNullable<ActionFilters['sort']>): void => {
    const current = filters.sort ?? 'requestedAt';
    const order = current === field && (filters.order ?? 'desc') === 'desc' ? 'asc' : 'desc';
    onFiltersChange?.({ ...filters, sort: field, order });
  };
  const openOnKey = (event: KeyboardEvent<HTMLTableRowElement>, id: string): void => {
    if (event.target === event.currentTarget && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      openAction(id);
    }
  };

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
        <span className={styles.spacer} />
        {view === 'history' && onFiltersChange && (
          <Button as="a" href={api.exportCsvUrl(exportQuery(filters))} download="quell-actions.csv">Export CSV</Button>
        )}
        <Menu
          checkedValues={{ columns: visible }}
          onCheckedValueChange={(_, data) => {
            const ids = COLUMNS.filter((c) => data.checkedItems.includes(c.id)).map((c) => c.id);
            setVisible(ids);
            saveVisibleColumns(ids);
          }}
        >
          <MenuTrigger disableButtonEnhancement><Button>Columns</Button></MenuTrigger>
          <MenuPopover>
            <MenuList>
              {COLUMNS.map((c) => <MenuItemCheckbox key={c.id} name="columns" value={c.id}>{c.label}</MenuItemCheckbox>)}
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
        <Table aria-label={label} size="small">
          <TableHeader>
            <TableRow>
              {selectable && <TableHeaderCell className={styles.selectCell}><span className={styles.visuallyHidden}>Select</span></TableHeaderCell>}
              {columns.map((c) => c.sort && onFiltersChange ? (
                <TableHeaderCell
                  key={c.id}
                  sortable
                  sortDirection={(filters.sort ?? 'requestedAt') === c.sort ? (filters.order === 'asc' ? 'ascending' : 'descending') : undefined}
                  onClick={() => sortBy(c.sort!)}
                >
                  {c.label}
                </TableHeaderCell>
              ) : <TableHeaderCell key={c.id}>{c.label}</TableHeaderCell>)}
            </TableRow>
          </TableHeader>
          <TableBody>
            {items.map((action) => {
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
                  className={mergeClasses(styles.row, pastDue && styles.pastDue)}
                  onClick={() => openAction(action.id)}
                  onKeyDown={(event) => openOnKey(event, action.id)}
                >
                  {selectable && (
                    <TableCell className={styles.selectCell} onClick={(event) => event.stopPropagation()}>
                      {!checked && refusal !== null ? <Tooltip content={refusal} relationship="description">{checkbox}</Tooltip> : checkbox}
                    </TableCell>
                  )}
                  {columns.map((c) => <TableCell key={c.id} className={c.id === 'entity' ? styles.entity : undefined}>{c.render(action, now)}</TableCell>)}
                </TableRow>
              );
            })}
          </TableBody>
        </Table>
        {page.isPending && <Spinner label="Loading actions…" />}
        {page.isSuccess && items.length === 0 && (
          <div className={styles.empty}>{view === 'pending' ? 'No action waits for approval with these filters.' : 'No action matches these filters.'}</div>
        )}
      </div>

      <nav className={styles.pager} aria-label={`${label}: pages`}>
        <Button disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</Button>
        <Button disabled={!page.data?.nextCursor} onClick={() => setCursors([...cursors, page.data!.nextCursor!])}>Next page</Button>
        <Text aria-live="polite">
          {`${items.length > 0 ? `${first + 1}–${first + items.length}` : '0'}${total !== null ? ` of ${total.toLocaleString()}` : ''}`}
        </Text>
        {page.isFetching && !page.isPending && <Spinner size="tiny" aria-label="Refreshing" />}
      </nav>

      {decision && <DecisionDialog decision={decision} onClose={() => setDecision(null)} onDecided={() => setSelected(new Map())} />}
    </section>
  );
}
