import type { ExportActionsQuery } from '@quell/contracts';
import { QuellError } from '../../errors.ts';
import type { SortColumn } from './actions.repository.ts';

const DAY = 86_400_000;
const RANGES = { day: DAY, week: 7 * DAY, '30d': 30 * DAY, '6m': 182 * DAY } as const;

/** Turns the time-range filter into [from, to) epoch milliseconds on requestedAt. */
export function resolveTimeRange(query: Pick<ExportActionsQuery, 'range' | 'from' | 'to'>, now: number): { from?: number; to?: number } {
  if (query.range === undefined || query.range === 'custom') {
    if (query.range === 'custom' && query.from === undefined && query.to === undefined) throw new QuellError('invalid_time_range', 'A custom range needs from, to or both');
    const from = query.from === undefined ? undefined : Date.parse(query.from);
    const to = query.to === undefined ? undefined : Date.parse(query.to);
    if (from !== undefined && to !== undefined && from >= to) throw new QuellError('invalid_time_range', '`from` must be before `to`');
    return { from, to };
  }
  if (query.from !== undefined || query.to !== undefined) throw new QuellError('invalid_time_range', 'from and to go with range=custom only');
  return { from: now - RANGES[query.range] };
}

/** Cursors are opaque to clients: base64url of the sort they belong to and the last row's key. */
export function encodeCursor(column: SortColumn, order: 'asc' | 'desc', value: number, id: string): string {
  return Buffer.from(JSON.stringify([column, order, value, id])).toString('base64url');
}

export function decodeCursor(cursor: string, column: SortColumn, order: 'asc' | 'desc'): { value: number; id: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new QuellError('invalid_cursor', 'The cursor is not one this server issued');
  }
  // Only what encodeCursor writes gets through: an integer time in the database's range and an id.
  if (!Array.isArray(parsed) || parsed.length !== 4 || !Number.isSafeInteger(parsed[2]) || typeof parsed[3] !== 'string' || !/^[\w-]{1,64}$/.test(parsed[3])) {
    throw new QuellError('invalid_cursor', 'The cursor is not one this server issued');
  }
  if (parsed[0] !== column || parsed[1] !== order) throw new QuellError('invalid_cursor', 'The cursor belongs to another sort; start again without it');
  return { value: parsed[2], id: parsed[3] };
}
