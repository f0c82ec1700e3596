import {
  ACTION_CATALOGUE, type Action, type ActionOrigin, type ActionStatus, type ActionType, DEVICE_OFFLINE_AFTER_MS, type ExportActionsQuery, IN_FORCE_STATUSES, type ListActionsQuery,
  isStatusIn, statusesCountedAs, TOTAL_COUNT_CAP,
} from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { ActionsTable } from '../../db/schema.ts';
import type { Db } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import { deviceHealth } from '../devices/devices.presenter.ts';
import { type Enforcement, enforcementOf } from '../desired-state/desired-state.ts';
import { type ActionsServiceDeps, isFleet } from './actions.core.ts';
import { presentAction, presentDrift, presentTimelineEntry } from './actions.presenter.ts';
import { decodeCursor, encodeCursor, resolveTimeRange } from './actions.query.ts';
import type { ActionFilter, ExportRow, SortColumn } from './actions.repository.ts';

/** A containment in the state agents enforce, or a release that has not failed. */
const enforcedNow = (row: Pick<ActionsTable, 'type' | 'status' | 'undone_by'>): boolean => (row.type === 'release_containment'
  ? isStatusIn(IN_FORCE_STATUSES, row.status)
  : isStatusIn(IN_FORCE_STATUSES, row.status) && row.undone_by === null);

/** What the console and the API read of actions: the Pending and History lists, the export, one action in full, the dashboard. */
export function createActionReadModel(deps: ActionsServiceDeps) {
  const { store, repo, devices, clock } = deps;

  function toFilter(actor: Actor, query: ExportActionsQuery & { view?: ListActionsQuery['view'] }): ActionFilter {
    const { from, to } = resolveTimeRange(query, clock.now());
    return {
      view: query.view, from, to, type: query.type, source: query.source, entityType: query.entityType,
      // Rejected finds the expired too: an expiry is the system's rejection.
      ...(query.status !== undefined ? { statuses: statusesCountedAs(query.status) } : {}),
      deviceId: query.deviceId, investigationId: query.investigationId, incidentId: query.incidentId, decidedBy: query.decidedBy, entity: query.entity, groupIds: actor.groupIds,
    };
  }
  const sortColumn = (sort: ListActionsQuery['sort']): SortColumn => (sort === 'updatedAt' ? 'updated_at' : 'requested_at');

  /** Where an action came from: the alerts that started its investigation, and their incidents (the action's own first). */
  async function originOf(row: ActionsTable): Promise<ActionOrigin> {
    const alerts = row.investigation_id === null ? [] : await repo.alertsOf(store.db, row.investigation_id);
    const incidentIds = [...new Set([row.incident_id, ...alerts.map((a) => a.incident_id)].filter((id) => id !== null))];
    return { alerts: alerts.map((a) => ({ id: a.id, title: a.title, incidentId: a.incident_id })), incidentIds };
  }
  /**
   * An effect in force is only as true as its agent's last check: while the
   * agent is out of contact (stopped, or the device off or cut off), it is
   * said to be unverified since the agent was last heard from.
   */
  async function unverifiedFor(row: ActionsTable): Promise<{ since: string | null; reason: string } | null> {
    const effect = ACTION_CATALOGUE[row.type as ActionType].lasting;
    if (row.status !== 'completed' || effect === null) return null;
    const device = await devices.findDevice(store.db, row.device_id);
    if (!device || deviceHealth(device, clock.now()) !== 'offline') return null;
    const since = device.last_seen_at === null ? null : new Date(device.last_seen_at).toISOString();
    return { since, reason: `The device's agent has not been in contact since ${since ?? 'it enrolled'}: whether the ${effect} still holds is unverified since then` };
  }
  /** Why a queued action has not reached its device yet, in words an analyst can act on. */
  async function waitingFor(row: ActionsTable, enforcement: Enforcement | null): Promise<{ reason: string; deviceLastSeenAt: string | null; deliverBy: string | null } | null> {
    if (row.status !== 'queued') return null;
    if (enforcement) {
      const deliverBy = row.deliver_by === null ? null : new Date(row.deliver_by).toISOString();
      const reason = enforcement.waitingOnline > 0
        ? `Waiting for ${enforcement.waitingOnline} online agents to apply it`
        : `Waiting for a managed agent to come online and apply it${deliverBy ? `; times out ${deliverBy}` : ''}`;
      return { reason, deviceLastSeenAt: null, deliverBy };
    }
    const device = await devices.findDevice(store.db, row.device_id);
    if (!device) return null;
    const health = deviceHealth(device, clock.now());
    if (health === 'online') return null;
    const lastSeen = device.last_seen_at === null ? null : new Date(device.last_seen_at).toISOString();
    const deliverBy = row.deliver_by === null ? null : new Date(row.deliver_by).toISOString();
    const reason = health === 'unmanaged'
      ? 'Waiting for an agent: the device has none enrolled'
      : `Waiting for device, last seen ${lastSeen ?? 'never'}${deliverBy ? `; times out ${deliverBy}` : ''}`;
    return { reason, deviceLastSeenAt: lastSeen, deliverBy };
  }
  return {
    /** What was last decided or done about an entity on a device, once no action on it is open (a rejection is remembered). */
    lastClosedIn: (trx: Db, deviceId: string, types: readonly ActionType[], key: string) => repo.lastClosed(trx, deviceId, types, key),
    /** Of these devices, those where the file is quarantined now. */
    quarantinedOnIn: (trx: Db, sha256: string, deviceIds: readonly string[]) => repo.quarantinedOn(trx, sha256, deviceIds),

    async list(actor: Actor, query: ListActionsQuery): Promise<{ items: Action[]; nextCursor: string | null; total: number | null; totalIsLowerBound: boolean }> {
      requirePermission(actor, 'actions:read');
      const filter = toFilter(actor, query);
      const column = sortColumn(query.sort);
      const order = query.order ?? 'desc';
      const limit = query.limit ?? 50;
      const after = query.cursor === undefined ? null : decodeCursor(query.cursor, column, order);
      const rows = await repo.page(store.db, filter, { column, order, after, limit });
      const last = rows.length === limit ? rows[rows.length - 1] : undefined;
      const counted = query.withTotal ? await repo.countUpTo(store.db, filter, TOTAL_COUNT_CAP + 1) : null;
      return {
        items: rows.map(presentAction),
        nextCursor: last ? encodeCursor(column, order, last[column], last.id) : null,
        total: counted === null ? null : Math.min(counted, TOTAL_COUNT_CAP),
        totalIsLowerBound: counted !== null && counted > TOTAL_COUNT_CAP,
      };
    },

    /** History rows in export order, a page at a time, so memory stays flat whatever the size. */
    async *exportRows(actor: Actor, query: ExportActionsQuery): AsyncGenerator<ExportRow> {
      requirePermission(actor, 'actions:read');
      const filter = toFilter(actor, { ...query, view: 'history' });
      const column = sortColumn(query.sort);
      const order = query.order ?? 'desc';
      let after: { value: number; id: string } | null = null;
      for (;;) {
        const rows = await repo.exportPage(store.db, filter, { column, order, after, limit: 2000 });
        yield* rows;
        if (rows.length < 2000) return;
        // SQLite answers synchronously: without this pause a long export would hold the event loop
        // and every other request (health checks included) would wait until it ends.
        await new Promise((resolve) => setImmediate(resolve));
        const last = rows[rows.length - 1]!;
        after = { value: last[column], id: last.id };
      }
    },

    async get(actor: Actor, id: string) {
      requirePermission(actor, 'actions:read');
      const row = await repo.findById(store.db, id);
      if (!row || !inScope(actor, row.group_id)) throw new QuellError('action_not_found', `No such action: ${id}`);
      // Agents' reports speak of the latest state: they tell about a containment while it is in force; after, its record stands.
      const enforcement = !isFleet(row) || row.state_version === null ? null
        : enforcedNow(row) ? await enforcementOf(store.db, row, clock.now() - DEVICE_OFFLINE_AFTER_MS)
          : row.enforcement === null ? null : (JSON.parse(row.enforcement) as Enforcement);
      return {
        action: presentAction(row), timeline: (await repo.events(store.db, id)).map(presentTimelineEntry), waiting: await waitingFor(row, enforcement), enforcement,
        unverified: await unverifiedFor(row),
        drift: (await repo.drifts(store.db, id)).map(presentDrift),
        origin: await originOf(row),
      };
    },

    async summary(actor: Actor) {
      requirePermission(actor, 'actions:read');
      const now = clock.now();
      const pending = await repo.pendingByType(store.db, actor.groupIds);
      const oldest = pending.length === 0 ? null : Math.min(...pending.map((p) => p.oldest));
      const offline = await repo.queuedOffline(store.db, now - DEVICE_OFFLINE_AFTER_MS, actor.groupIds);
      return {
        queuedOffline: { ...offline, lastSeenAt: offline.lastSeenAt === null ? null : new Date(offline.lastSeenAt).toISOString() },
        pendingByType: pending.map((p) => ({ type: p.type as ActionType, count: p.count })),
        pendingTotal: pending.reduce((sum, p) => sum + p.count, 0),
        oldestPendingAt: oldest === null ? null : new Date(oldest).toISOString(),
        oldestPendingAgeSeconds: oldest === null ? null : Math.floor((now - oldest) / 1000),
      };
    },

    async activity(actor: Actor) {
      requirePermission(actor, 'actions:read');
      const since = Math.floor(clock.now() / 86_400_000 - 29) * 86_400_000;
      const perDay = await repo.statusPerDay(store.db, since, actor.groupIds);
      const rejected = statusesCountedAs('rejected') as readonly string[];
      const total = (counted: (status: string) => boolean): number => perDay.filter((d) => counted(d.status)).reduce((sum, d) => sum + d.count, 0);
      return {
        byStatusPerDay: perDay.map((d) => ({ day: new Date(d.day * 86_400_000).toISOString().slice(0, 10), status: d.status as ActionStatus, count: d.count })),
        rejectedLast30Days: total((status) => rejected.includes(status)),
        expiredLast30Days: total((status) => status === 'expired'),
      };
    },
  };
}
