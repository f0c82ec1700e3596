/**
 * The Action center's filters live in the URL query (so a view can be shared);
 * these functions turn the query into the list API's parameters and back,
 * dropping anything the contracts do not name.
 */
import {
  ACTION_SORT_FIELDS, ACTION_SOURCES, ACTION_STATUSES, ACTION_TYPES, ENTITY_TYPES, TIME_RANGES,
  type ActionSortField, type ActionView, type ExportActionsQuery, type ListActionsQuery,
} from '@quell/contracts';
import { UUID } from '../format.ts';

export type ActionFilters = Omit<ListActionsQuery, 'view' | 'cursor' | 'withTotal'>;

export const PAGE_SIZES = [25, 50, 100, 200] as const;
export const DEFAULT_PAGE_SIZE = 50;

/** Pending lists what waits longest first by request; History puts what changed last on top (an undo brings its action back up). */
export const defaultSort = (view: ActionView): ActionSortField => (view === 'history' ? 'updatedAt' : 'requestedAt');

const oneOf = <T extends string>(values: readonly T[], value: string | null): T | undefined =>
  value !== null && (values as readonly string[]).includes(value) ? (value as T) : undefined;
const text = (value: string | null, max: number): string | undefined => (value && value.length <= max ? value : undefined);
const isoTime = (value: string | null): string | undefined => (value && !Number.isNaN(Date.parse(value)) ? new Date(value).toISOString() : undefined);

export function filtersFromSearch(search: URLSearchParams): ActionFilters {
  const limit = Number(search.get('limit'));
  const filters: ActionFilters = {
    range: oneOf(TIME_RANGES, search.get('range')),
    type: oneOf(ACTION_TYPES, search.get('type')),
    source: oneOf(ACTION_SOURCES, search.get('source')),
    status: oneOf(ACTION_STATUSES, search.get('status')),
    entityType: oneOf(ENTITY_TYPES, search.get('entityType')),
    deviceId: UUID.test(search.get('deviceId') ?? '') ? search.get('deviceId')! : undefined,
    investigationId: text(search.get('investigationId'), 64),
    decidedBy: text(search.get('decidedBy'), 128),
    entity: text(search.get('entity'), 1024),
    sort: oneOf(ACTION_SORT_FIELDS, search.get('sort')),
    order: oneOf(['asc', 'desc'] as const, search.get('order')),
    limit: (PAGE_SIZES as readonly number[]).includes(limit) ? limit : undefined,
  };
  if (filters.range === 'custom') {
    filters.from = isoTime(search.get('from'));
    filters.to = isoTime(search.get('to'));
    // The API refuses a custom range with neither end; until one is given it means "any time".
    if (!filters.from && !filters.to) filters.range = undefined;
  }
  return filters;
}

export function searchFromFilters(filters: ActionFilters): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value !== undefined && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** The list query of one page. The Pending tab has one status, so its status filter is dropped. */
export function listQuery(view: ActionView, filters: ActionFilters, cursor: string | undefined): ListActionsQuery {
  const { status, ...rest } = filters;
  return {
    ...rest,
    view,
    sort: filters.sort ?? defaultSort(view),
    ...(view === 'history' && status ? { status } : {}),
    limit: filters.limit ?? DEFAULT_PAGE_SIZE,
    ...(cursor ? { cursor } : { withTotal: true }),
  };
}

/** The CSV export takes the History view's filters, without paging. */
export function exportQuery(filters: ActionFilters): ExportActionsQuery {
  const query: ExportActionsQuery & { limit?: number } = { ...filters, sort: filters.sort ?? defaultSort('history') };
  delete query.limit;
  return query;
}
