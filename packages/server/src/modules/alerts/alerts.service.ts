import type { Alert, AlertOrigin, CreateAlertBody, Evidence, FalsePositiveBody, IngestedAlert, ListAlertsQuery, UpdateAlertBody } from '@quell/contracts';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import type { ActionsTable, AlertEvidenceTable, AlertsTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import { presentAction } from '../actions/actions.presenter.ts';
import type { ActionsService } from '../actions/actions.service.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { DevicesRepository } from '../devices/devices.repository.ts';
import { resolveHost } from '../devices/host-resolution.ts';
import type { IndicatorsService } from '../indicators/indicators.service.ts';
import { type MappedAlert, checkDocumentShape } from './alert-mapping.ts';
import { presentAlert } from './alerts.presenter.ts';
import type { AlertsRepository } from './alerts.repository.ts';
import { type EcsDocument, fromEcs } from './ecs.ts';
import { type WazuhAlert, fromWazuh } from './wazuh.ts';

/** The values an alert is found by across alerts and devices: hashes, paths, names, addresses. */
export function evidenceKeys(evidence: readonly Evidence[]): Array<Pick<AlertEvidenceTable, 'kind' | 'value'>> {
  const keys = evidence.flatMap((e): Array<[string, string | undefined]> => {
    switch (e.kind) {
      case 'file': return [['sha256', e.sha256?.toLowerCase()], ['sha1', e.sha1?.toLowerCase()], ['md5', e.md5?.toLowerCase()], ['path', e.path]];
      case 'process': return [['process', e.name], ['sha256', e.sha256?.toLowerCase()], ['sha1', e.sha1?.toLowerCase()], ['md5', e.md5?.toLowerCase()], ['path', e.path]];
      case 'registry_key': return [['registry_key', e.key]];
      case 'ip': return [['ip', e.address]];
      case 'url': return [['url', e.url]];
      default: return [[e.kind, e.name]];
    }
  });
  const unique = new Map(keys.filter((k): k is [string, string] => k[1] !== undefined).map(([kind, value]) => [`${kind}\u0000${value}`, { kind, value }]));
  return [...unique.values()];
}

const encodeCursor = (row: AlertsTable): string => Buffer.from(JSON.stringify([row.received_at, row.id])).toString('base64url');
function decodeCursor(cursor: string): [number, string] {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(parsed) && parsed.length === 2 && Number.isSafeInteger(parsed[0]) && typeof parsed[1] === 'string' && /^[\w-]{1,64}$/.test(parsed[1])) return [parsed[0], parsed[1]];
  } catch {
    // falls through to the refusal
  }
  throw new QuellError('invalid_cursor', 'The cursor is not one this server issued');
}

/**
 * Alerts from detection sources (an API token, the Wazuh mapping, the
 * agents' antivirus): stored once with their evidence, listed and read
 * within the reader's device groups, and triaged by analysts.
 */
export function createAlertsService(deps: {
  store: Store; repo: AlertsRepository; devices: DevicesRepository; audit: AuditService; clock: Clock; ids: Ids; actions: ActionsService; indicators: IndicatorsService;
  /** Told of each new alert, in order, inside the transaction that stores it (incidents gather it, investigations start there). */
  onCreated?: Array<(trx: Db, alert: AlertsTable) => Promise<void>>;
}) {
  const { store, repo, devices, audit, clock, ids } = deps;

  async function findVisible(db: Db, actor: Actor, id: string): Promise<AlertsTable> {
    const row = await repo.findById(db, id);
    if (!row || !inScope(actor, row.group_id)) throw new QuellError('alert_not_found', `No such alert: ${id}`);
    return row;
  }

  /** Inserts a new alert with its evidence inside `trx` and tells those who follow alerts (incidents, investigations). */
  async function insertIn(trx: Db, actor: Actor, body: CreateAlertBody, origin: AlertOrigin | null = null): Promise<{ alert: Alert; created: true }> {
    const device = await devices.findDevice(trx, body.deviceId);
    if (!device || !inScope(actor, device.group_id)) throw new QuellError('device_not_found', `No such device: ${body.deviceId}`);
    const now = clock.now();
    const row: AlertsTable = {
      id: ids.next(), title: body.title, description: body.description ?? null, severity: body.severity, category: body.category,
      detection_source: body.detectionSource, external_id: body.externalId ?? null, device_id: device.id, device_name: device.name, group_id: device.group_id,
      occurred_at: Date.parse(body.occurredAt), received_at: now, status: 'new', classification: null, determination: null,
      updated_at: now, updated_by: null, evidence: JSON.stringify(body.evidence), incident_id: null,
      rule_id: body.ruleId ?? null, mitre_techniques: JSON.stringify(body.mitreTechniques ?? []), mitre_tactics: JSON.stringify(body.mitreTactics ?? []),
      origin: origin === null ? null : JSON.stringify(origin),
    };
    await repo.insert(trx, row, evidenceKeys(body.evidence));
    await audit.record(trx, actor, { kind: 'alert.create', targetType: 'alert', targetId: row.id, after: { title: row.title, severity: row.severity, deviceId: row.device_id, detectionSource: row.detection_source } });
    for (const told of deps.onCreated ?? []) await told(trx, row);
    return { alert: presentAlert(row), created: true };
  }

  return {
    /** Stores an alert; the same externalId from the same source again returns the stored alert (`created: false`). */
    async create(actor: Actor, body: CreateAlertBody): Promise<{ alert: Alert; created: boolean }> {
      requirePermission(actor, 'alerts:create');
      const existing = async () => body.externalId === undefined ? undefined
        : repo.findByExternalId(store.db, body.detectionSource, body.externalId);
      const before = await existing();
      if (before && inScope(actor, before.group_id)) return { alert: presentAlert(before), created: false };
      if (before) throw new QuellError('validation_failed', `externalId ${body.externalId} is already used by another alert from ${body.detectionSource}`);
      try {
        return await store.transaction(async (trx) => {
          return await insertIn(trx, actor, body);
        });
      } catch (error) {
        // Two deliveries of one alert at once: the loser of the unique index returns the winner's alert.
        const winner = await existing();
        if (!winner) throw error;
        if (!inScope(actor, winner.group_id)) throw new QuellError('validation_failed', `externalId ${body.externalId} is already used by another alert from ${body.detectionSource}`);
        return { alert: presentAlert(winner), created: false };
      }
    },

    /**
     * An alert raised as part of something else's transaction (a scan's
     * findings with its result): stored with it or not at all; the same
     * externalId from the same source again is left as it is.
     */
    async createIn(trx: Db, actor: Actor, body: CreateAlertBody): Promise<void> {
      requirePermission(actor, 'alerts:create');
      const existing = body.externalId === undefined ? undefined
        : await repo.findByExternalId(trx, body.detectionSource, body.externalId);
      if (!existing) await insertIn(trx, actor, body);
    },

    /** A Wazuh alert (alerts.json), on the device its agent, name or address stands for — a new unmanaged one if none. */
    createFromWazuh(actor: Actor, alert: WazuhAlert): Promise<{ alert: IngestedAlert; created: boolean }> {
      return ingest(actor, alert, () => fromWazuh(alert));
    },

    /** An Elastic Common Schema alert or event (Elastic Security, Elastic Defend, Winlogbeat's Sysmon), likewise. */
    createFromEcs(actor: Actor, document: EcsDocument): Promise<{ alert: IngestedAlert; created: boolean }> {
      return ingest(actor, document, () => fromEcs(document));
    },

    async list(actor: Actor, query: ListAlertsQuery): Promise<{ items: Alert[]; nextCursor: string | null }> {
      requirePermission(actor, 'alerts:read');
      const limit = query.limit ?? 50;
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const rows = await repo.page(store.db, {
        groupIds: actor.groupIds, status: query.status, severity: query.severity, deviceId: query.deviceId,
        ...(after ? { after: { receivedAt: after[0], id: after[1] } } : {}),
      }, limit);
      return { items: rows.map(presentAlert), nextCursor: rows.length === limit ? encodeCursor(rows[rows.length - 1]!) : null };
    },

    get: async (actor: Actor, id: string): Promise<Alert> => {
      requirePermission(actor, 'alerts:read');
      return presentAlert(await findVisible(store.db, actor, id));
    },

    /** Triage: status, classification and determination, each change in the audit log with its comment. */
    update: (actor: Actor, id: string, body: UpdateAlertBody): Promise<Alert> => store.transaction((trx) => updateIn(trx, actor, id, body)),

    /**
     * A false positive in one flow, all or nothing: the alert is resolved as
     * a false positive, what it led to is undone (the antivirus quarantine it
     * reports, or its investigations' completed quarantines of its files —
     * with `all_instances` every other quarantine of those files too), and
     * each file it names gets an allow indicator.
     */
    async falsePositive(actor: Actor, id: string, body: FalsePositiveBody) {
      requirePermission(actor, 'alerts:manage');
      const comment = body.comment ?? 'False positive';
      const result = await store.transaction(async (trx) => {
        const alert = presentAlert(await findVisible(trx, actor, id));
        const hashes = [...new Set(alert.evidence.flatMap((e) => (e.kind === 'file' || e.kind === 'process') && e.sha256 ? [e.sha256.toLowerCase()] : []))];
        let undone: ActionsTable[] = [];
        if (body.undo !== 'none' && hashes.length > 0) {
          const done = await repo.completedActionsOf(trx, { id, externalId: alert.externalId }, hashes);
          if (done.length > 0) undone = await deps.actions.undoIn(trx, actor, done, comment, body.undo === 'all_instances');
        }
        const allowed = [];
        let blockLifted = false;
        for (const sha256 of body.allowIndicator ? hashes : []) {
          const allow = await deps.indicators.allowIn(trx, actor, sha256, `False positive: ${alert.title}`);
          allowed.push(allow.indicator);
          blockLifted ||= allow.blockLifted;
        }
        const resolved = await updateIn(trx, actor, id, { status: 'resolved', classification: 'false_positive', comment });
        return { resolved, undone, allowed, blockLifted };
      });
      if (result.blockLifted) deps.indicators.announce();
      return { alert: result.resolved, undone: result.undone.map(presentAction), indicators: result.allowed };
    },
  };

  /**
   * An alert in another engine's format: checked for shape, mapped, and
   * stored with the device it resolves to (found or created) in one
   * transaction, so a refused alert leaves no device behind. A redelivery
   * (same engine, same alert id) returns the stored alert.
   */
  async function ingest(actor: Actor, document: unknown, map: () => MappedAlert): Promise<{ alert: IngestedAlert; created: boolean }> {
    requirePermission(actor, 'alerts:create');
    checkDocumentShape(document);
    const mapped = map();
    if (Number.isNaN(Date.parse(mapped.alert.occurredAt))) throw new QuellError('validation_failed', `the alert's time ${mapped.alert.occurredAt.slice(0, 64)} is not a date`);
    const { externalId, detectionSource } = mapped.alert;
    const stored = async (): Promise<{ alert: IngestedAlert; created: false } | undefined> => {
      if (externalId === undefined) return undefined;
      const row = await repo.findByExternalId(store.db, detectionSource, externalId);
      if (!row) return undefined;
      if (!inScope(actor, row.group_id)) throw new QuellError('validation_failed', `externalId ${externalId} is already used by another alert from ${detectionSource}`);
      const device = await devices.findDevice(store.db, row.device_id);
      return { alert: { ...presentAlert(row), device: { id: row.device_id, name: row.device_name, managed: device?.agent_facts != null, created: false, matchedBy: 'already_stored' } }, created: false };
    };
    const before = await stored();
    if (before) return before;
    try {
      return await store.transaction(async (trx) => {
        const device = await resolveHost(trx, ids, clock.now(), mapped.host);
        const { alert } = await insertIn(trx, actor, { ...mapped.alert, deviceId: device.id }, mapped.origin);
        if (device.created) {
          await audit.record(trx, actor, { kind: 'device.discover', targetType: 'device', targetId: device.id, after: { name: device.name, discoveredFrom: mapped.host.source, alertId: alert.id } });
        }
        return { alert: { ...alert, device }, created: true };
      });
    } catch (error) {
      // Two deliveries of one alert at once: the loser of the unique index returns the winner's alert.
      const winner = await stored().catch(() => undefined);
      if (winner) return winner;
      throw error;
    }
  }

  async function updateIn(trx: Db, actor: Actor, id: string, body: UpdateAlertBody): Promise<Alert> {
    requirePermission(actor, 'alerts:manage');
    const row = await findVisible(trx, actor, id);
    const patch: Partial<AlertsTable> = {
      ...(body.status !== undefined ? { status: body.status } : {}),
      ...(body.classification !== undefined ? { classification: body.classification } : {}),
      ...(body.determination !== undefined ? { determination: body.determination } : {}),
      updated_at: clock.now(),
      updated_by: actor.name,
    };
    await repo.update(trx, id, patch);
    const after = { ...row, ...patch };
    await audit.record(trx, actor, {
      kind: 'alert.update', targetType: 'alert', targetId: id,
      before: { status: row.status, classification: row.classification, determination: row.determination },
      after: { status: after.status, classification: after.classification, determination: after.determination, ...(body.comment ? { comment: body.comment } : {}) },
    });
    return presentAlert(after);
  }
}
export type AlertsService = ReturnType<typeof createAlertsService>;
