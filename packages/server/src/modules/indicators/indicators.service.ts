import {
  type CreateIndicatorBody, DOMAIN_NAME, ENFORCED_INDICATOR_TYPES, INDICATOR_ACTIONS, addressOrRange, INDICATOR_CSV_COLUMNS, INDICATOR_TYPES, type Indicator,
  type IndicatorAction, type IndicatorType, type IndicatorHitRow, type ListIndicatorHitsQuery, type ListIndicatorsQuery, type UpdateIndicatorBody,
} from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import { csvCell, parseCsv } from '../../csv.ts';
import type { IndicatorsTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { presentHits, presentIndicator, visibleTo } from './indicators.presenter.ts';
import type { IndicatorsRepository } from './indicators.repository.ts';

/**
 * What indicators need of the desired state: file hash, address and name
 * indicators reach the agents through it, so a change to them signs a new version.
 */
export interface DesiredStateWriter {
  /** Signs the next version inside the caller's transaction. */
  write(trx: Db): Promise<unknown>;
  /** When the last version was signed, or undefined before the first. */
  signedAt(db: Db): Promise<number | undefined>;
}

const HEX = { sha256: 64, sha1: 40, md5: 32 } as const;

/** The value as it is stored and matched, or why it is not a value of that type. */
export function normaliseIndicator(type: IndicatorType, raw: string): string {
  const value = raw.trim();
  switch (type) {
    case 'sha256': case 'sha1': case 'md5':
      if (!new RegExp(`^[0-9a-fA-F]{${HEX[type]}}$`).test(value)) throw new QuellError('validation_failed', `a ${type} indicator is ${HEX[type]} hex digits, not ${JSON.stringify(raw.slice(0, 100))}`);
      return value.toLowerCase();
    case 'certificate':
      // Certificate thumbprints: SHA-1 (as Windows shows them) or SHA-256, with or without separators.
      if (!/^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/.test(value.replace(/[:\s]/g, ''))) throw new QuellError('validation_failed', 'a certificate indicator is a SHA-1 or SHA-256 thumbprint');
      return value.replace(/[:\s]/g, '').toLowerCase();
    case 'ip': {
      const address = addressOrRange(value);
      if ('problem' in address) throw new QuellError('validation_failed', address.problem);
      return address.value;
    }
    case 'domain':
      if (!DOMAIN_NAME.test(value.toLowerCase())) throw new QuellError('validation_failed', `not a domain name: ${JSON.stringify(raw.slice(0, 100))}`);
      return value.toLowerCase();
    case 'url': {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        throw new QuellError('validation_failed', `not a URL: ${JSON.stringify(raw.slice(0, 100))}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new QuellError('validation_failed', 'a URL indicator is an http or https URL');
      return url.href;
    }
  }
}

/**
 * Indicators: values (hashes, addresses, URLs, domains, certificates) that
 * are always allowed, audited or blocked, per device group and until they
 * expire. Expired indicators stay for the record and match nothing.
 */
export function createIndicatorsService(deps: {
  store: Store; repo: IndicatorsRepository; audit: AuditService; clock: Clock; ids: Ids;
  state: DesiredStateWriter;
  /** Told, after commit, that the desired state has a new version. */
  publishState?: () => void;
}) {
  const { store, repo, audit, clock, ids, state } = deps;

  /** File hash and address indicators reach the agents through the desired state: a change signs a new version. */
  async function refreshIfAgentsCare(trx: Db, rows: Array<Pick<IndicatorsTable, 'type'>>): Promise<boolean> {
    if (!rows.some((row) => (ENFORCED_INDICATOR_TYPES as readonly string[]).includes(row.type))) return false;
    await state.write(trx);
    return true;
  }

  async function checkGroups(db: Db, groupIds: readonly string[]): Promise<void> {
    if (groupIds.length === 0) return;
    const found = await repo.existingGroups(db, groupIds);
    const missing = groupIds.filter((id) => !found.has(id));
    if (missing.length > 0) throw new QuellError('device_group_not_found', `No such device group: ${missing.join(', ')}`);
  }

  /** Inserts one indicator inside `trx`; an active indicator of the same type and value is a conflict. */
  async function insert(trx: Db, actor: Actor, body: CreateIndicatorBody): Promise<IndicatorsTable> {
    const now = clock.now();
    const value = normaliseIndicator(body.type, body.value);
    const expiresAt = body.expiresAt ? Date.parse(body.expiresAt) : null;
    if (expiresAt !== null && expiresAt <= now) throw new QuellError('validation_failed', 'expiresAt must be in the future');
    const groups = [...new Set(body.deviceGroupIds ?? [])];
    await checkGroups(trx, groups);
    const clash = await repo.activeOf(trx, body.type, value, now);
    if (clash) throw new QuellError('indicator_exists', `Indicator ${clash.id} already ${clash.action}s ${body.type} ${value}`);
    const row: IndicatorsTable = {
      id: ids.next(), type: body.type, value, action: body.action, title: body.title, description: body.description ?? null,
      device_group_ids: JSON.stringify(groups), expires_at: expiresAt, created_by: actor.name, created_at: now, updated_at: now,
    };
    await repo.insert(trx, row);
    await audit.record(trx, actor, { kind: 'indicator.create', targetType: 'indicator', targetId: row.id, after: presentIndicator(row, now) });
    return row;
  }

  /** Runs `change` in one transaction, then tells the agents of a new desired state when it signed one. */
  async function changing<T>(change: (trx: Db) => Promise<{ result: T; rows: IndicatorsTable[] }>): Promise<T> {
    const { result, refreshed } = await store.transaction(async (trx) => {
      const { result, rows } = await change(trx);
      return { result, refreshed: await refreshIfAgentsCare(trx, rows) };
    });
    if (refreshed) deps.publishState?.();
    return result;
  }

  async function find(db: Db, id: string): Promise<IndicatorsTable> {
    const row = await repo.findById(db, id);
    if (!row) throw new QuellError('indicator_not_found', `No such indicator: ${id}`);
    return row;
  }

  async function update(actor: Actor, id: string, body: UpdateIndicatorBody, kind: 'indicator.update' | 'indicator.expire'): Promise<Indicator> {
    requirePermission(actor, 'indicators:manage');
    return changing(async (trx) => {
      const row = await find(trx, id);
      const now = clock.now();
      if (body.deviceGroupIds) await checkGroups(trx, body.deviceGroupIds);
      const patch: Partial<IndicatorsTable> = {
        ...(body.action !== undefined ? { action: body.action } : {}),
        ...(body.title !== undefined ? { title: body.title } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.deviceGroupIds !== undefined ? { device_group_ids: JSON.stringify([...new Set(body.deviceGroupIds)]) } : {}),
        ...(body.expiresAt !== undefined ? { expires_at: body.expiresAt === null ? null : Date.parse(body.expiresAt) } : {}),
        updated_at: now,
      };
      await repo.update(trx, id, patch);
      const after = { ...row, ...patch };
      await audit.record(trx, actor, { kind, targetType: 'indicator', targetId: id, before: presentIndicator(row, now), after: presentIndicator(after, now) });
      return { result: presentIndicator(after, now), rows: [after] };
    });
  }

  return {
    async create(actor: Actor, body: CreateIndicatorBody): Promise<Indicator> {
      requirePermission(actor, 'indicators:manage');
      return presentIndicator(await changing(async (trx) => {
        const row = await insert(trx, actor, body);
        return { result: row, rows: [row] };
      }), clock.now());
    },

    /**
     * Allows a SHA-256 inside the caller's transaction (the false-positive
     * flow): an active allow indicator for it stays as it is; any other
     * active indicator for it (a block) is expired first, which changes what
     * agents enforce — `blockLifted` says so, and the caller calls `announce` after commit.
     */
    async allowIn(trx: Db, actor: Actor, sha256: string, title: string): Promise<{ indicator: Indicator; blockLifted: boolean }> {
      requirePermission(actor, 'indicators:manage');
      const now = clock.now();
      const existing = await repo.activeOf(trx, 'sha256', sha256, now);
      if (existing?.action === 'allow') return { indicator: presentIndicator(existing, now), blockLifted: false };
      if (existing) {
        await repo.update(trx, existing.id, { expires_at: now, updated_at: now });
        await audit.record(trx, actor, { kind: 'indicator.expire', targetType: 'indicator', targetId: existing.id, before: presentIndicator(existing, now), after: presentIndicator({ ...existing, expires_at: now }, now) });
      }
      const row = await insert(trx, actor, { type: 'sha256', value: sha256, action: 'allow', title: title.slice(0, 256) });
      if (existing) await state.write(trx);
      return { indicator: presentIndicator(row, now), blockLifted: existing !== undefined };
    },

    /**
     * Lifts on the endpoints the indicators that expired by time since the
     * desired state was last signed: signs a new version without them (the
     * job calls it). Returns whether it did.
     */
    async liftExpired(): Promise<boolean> {
      const now = clock.now();
      const refreshed = await store.transaction(async (trx) => {
        const signedAt = await state.signedAt(trx);
        if (signedAt === undefined || !await repo.expiredBetween(trx, ENFORCED_INDICATOR_TYPES, signedAt, now)) return false;
        await state.write(trx);
        return true;
      });
      if (refreshed) deps.publishState?.();
      return refreshed;
    },

    /** Tells the agents of a desired state signed in a caller's transaction (after commit). */
    announce: () => deps.publishState?.(),

    async list(actor: Actor, query: ListIndicatorsQuery): Promise<Indicator[]> {
      requirePermission(actor, 'indicators:read');
      const now = clock.now();
      const value = query.value === undefined ? undefined : query.type ? normaliseIndicator(query.type, query.value) : query.value.trim().toLowerCase();
      return (await repo.list(store.db, { ...query, ...(value === undefined ? {} : { value }) }, now, 10_000))
        .flatMap((row) => visibleTo(actor, presentIndicator(row, now)) ?? []);
    },

    /**
     * Where indicators matched, per indicator and device (summed over hours),
     * on the devices the caller may see, most recent first.
     */
    async hits(actor: Actor, query: ListIndicatorHitsQuery): Promise<IndicatorHitRow[]> {
      requirePermission(actor, 'indicators:read');
      const rows = await repo.hitsByDevice(store.db, query, actor.groupIds, 1000);
      return rows.map((row) => presentHits({ ...row, last_hit: row.last_hit ?? '{}' }));
    },

    update: (actor: Actor, id: string, body: UpdateIndicatorBody) => update(actor, id, body, 'indicator.update'),
    /** Expires now; the indicator stays for the record. */
    expire: (actor: Actor, id: string) => update(actor, id, { expiresAt: new Date(clock.now()).toISOString() }, 'indicator.expire'),

    /** The active indicators as CSV, in the columns import reads. */
    async exportCsv(actor: Actor): Promise<string> {
      const items = await this.list(actor, {});
      const rows = items.map((i) => [i.type, i.value, i.action, i.title, i.description, i.deviceGroupIds.join(' '), i.expiresAt].map(csvCell).join(','));
      return [INDICATOR_CSV_COLUMNS.join(','), ...rows].join('\r\n') + '\r\n';
    },

    /**
     * Imports indicators from CSV with a header row naming at least type,
     * value, action and title: all rows or none, and every bad row named
     * by its line.
     */
    async importCsv(actor: Actor, text: string): Promise<Indicator[]> {
      requirePermission(actor, 'indicators:manage');
      let rows: string[][];
      try {
        rows = parseCsv(text);
      } catch (error) {
        throw new QuellError('validation_failed', `The CSV cannot be read: ${(error as Error).message}`);
      }
      const [header, ...data] = rows;
      const column = (name: string) => header?.findIndex((h) => h.trim() === name) ?? -1;
      const missing = ['type', 'value', 'action', 'title'].filter((name) => column(name) < 0);
      if (!header || missing.length > 0) throw new QuellError('validation_failed', `The header row must name ${missing.join(', ') || 'type, value, action, title'}`);
      if (data.length === 0 || data.length > 10_000) throw new QuellError('validation_failed', 'Import 1 to 10,000 indicators at a time');
      const cell = (row: string[], name: string): string | undefined => {
        const value = row[column(name)]?.trim();
        // Export defuses formula cells with a leading quote; import takes the value back.
        return value ? value.replace(/^'(?=[=+\-@])/, '') : undefined;
      };
      const bodies = data.map((row, i): CreateIndicatorBody => {
        const type = cell(row, 'type') as IndicatorType;
        const action = cell(row, 'action') as IndicatorAction;
        const title = cell(row, 'title');
        const expiresAt = cell(row, 'expiresAt');
        const problem = !INDICATOR_TYPES.includes(type) ? `type must be one of ${INDICATOR_TYPES.join(', ')}`
          : !INDICATOR_ACTIONS.includes(action) ? `action must be one of ${INDICATOR_ACTIONS.join(', ')}`
            : !title || title.length > 256 ? 'title is required (up to 256 characters)'
              : expiresAt !== undefined && Number.isNaN(Date.parse(expiresAt)) ? 'expiresAt is not a date' : null;
        if (problem) throw new QuellError('validation_failed', `Line ${i + 2}: ${problem}; nothing was imported`);
        return {
          type, action, title: title!, value: cell(row, 'value') ?? '',
          ...(cell(row, 'description') ? { description: cell(row, 'description')!.slice(0, 4000) } : {}),
          ...(cell(row, 'deviceGroupIds') ? { deviceGroupIds: cell(row, 'deviceGroupIds')!.split(/\s+/) } : {}),
          ...(expiresAt ? { expiresAt: new Date(Date.parse(expiresAt)).toISOString() } : {}),
        };
      });
      const now = clock.now();
      return (await changing(async (trx) => {
        const inserted: IndicatorsTable[] = [];
        for (const [i, body] of bodies.entries()) {
          try {
            inserted.push(await insert(trx, actor, body));
          } catch (error) {
            if (error instanceof QuellError) throw new QuellError(error.code, `Line ${i + 2}: ${error.message}; nothing was imported`);
            throw error;
          }
        }
        return { result: inserted, rows: inserted };
      })).map((row) => presentIndicator(row, now));
    },

    /**
     * The active allow indicator protecting any of these values on a device
     * of `groupId`, if there is one: such an entity is never remediated.
     */
    async allowing(db: Db, values: Array<{ type: IndicatorType; value: string }>, groupId: string | null): Promise<IndicatorsTable | null> {
      const allows = await repo.activeFor(db, values, groupId, clock.now(), ['allow']);
      for (const { type, value } of values) {
        const found = allows.find((row) => row.type === type && row.value === value);
        if (found) return found;
      }
      return null;
    },
  };
}
export type IndicatorsService = ReturnType<typeof createIndicatorsService>;
