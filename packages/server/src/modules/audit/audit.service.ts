import { createHash } from 'node:crypto';
import { ACTION_CATALOGUE, type ActionType, type AuditEntry, type AuditVerification, type ListAuditQuery, roleAtLeast } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import type { AuditLogTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import type { Clock } from '../../infra.ts';
import { agentDeviceOf, presentAuditEntry } from './audit.presenter.ts';
import type { AuditReader, AuditRepository } from './audit.repository.ts';

export interface AuditRecord {
  kind: string;
  targetType: string;
  targetId: string | null;
  before?: unknown;
  after?: unknown;
  /**
   * What the entry concerns besides its target's device groups (which are
   * looked up): a device's previous group, the device of an agent speaking
   * of an action that is not its own. Their groups scope who may read it.
   */
  concerns?: { groupIds?: ReadonlyArray<string | null>; deviceIds?: readonly string[] };
  /** The target's device groups when the caller holds them already (an action's row): then they are not looked up. */
  targetGroupIds?: ReadonlyArray<string | null>;
}

/** The whole verification, for the CLI and for readers who may see every entry. */
export type ChainVerification = Required<AuditVerification>;

/**
 * Who reads what: unscoped Security Administrators and up, everything;
 * anyone else, their own acts and entries about devices, limited for a
 * scoped user to entries whose device groups all lie in their scope.
 * Entries that concern no device (users, tokens, settings, sign-ins) are
 * for unscoped Security Administrators and up only.
 */
export function auditReader(actor: Actor): AuditReader {
  return { userId: actor.userId, deviceless: actor.groupIds === null && roleAtLeast(actor.role, 'security_admin'), groupIds: actor.groupIds };
}

const GENESIS = '0'.repeat(64);

/**
 * What the hash covers: everything the entry says. Who may read it (its
 * device groups, the acting user's id) is not said by it and stays outside.
 */
type ChainedFields = Omit<AuditLogTable, 'hash' | 'group_ids' | 'actor_user_id'>;

/** The hash that links an entry to the one before it; any edit to any field it covers changes it. */
export function chainHash(row: ChainedFields): string {
  const canonical = JSON.stringify([
    row.prev_hash, row.seq, row.at, row.actor, row.source_ip, row.kind, row.target_type, row.target_id, row.before_json, row.after_json,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

export function createAuditService(deps: { store: Store; repo: AuditRepository; clock: Clock }) {
  const { store, repo, clock } = deps;

  /** The sorted device groups an entry concerns ([] for devices in no group), or null when it concerns no device. */
  async function groupsConcerned(trx: Db, record: AuditRecord): Promise<string[] | null> {
    const target = record.targetGroupIds ?? await repo.targetGroups(trx, record.targetType, record.targetId);
    const { groupIds = [], deviceIds = [] } = record.concerns ?? {};
    if (target === null && groupIds.length === 0 && deviceIds.length === 0) return null;
    const all = [...(target ?? []), ...groupIds, ...(await repo.deviceGroups(trx, deviceIds))];
    return [...new Set(all.filter((id): id is string => id !== null))].sort();
  }

  /** Names, by `type:id`, of the targets of these entries and of the devices of the agents that acted: one query per kind present. */
  async function namesOf(db: Db, rows: readonly AuditLogTable[]): Promise<Map<string, string>> {
    const ids = (type: string): string[] => [...new Set(rows.filter((r) => r.target_type === type && r.target_id !== null).map((r) => r.target_id!))];
    const names = new Map<string, string>();
    const put = async (type: string, list: string[], read: (list: string[]) => Promise<Array<{ id: string; name: string }>>): Promise<void> => {
      if (list.length > 0) for (const { id, name } of await read(list)) names.set(`${type}:${id}`, name);
    };
    const devices = [...ids('device'), ...rows.flatMap((r) => agentDeviceOf(r.actor) ?? [])];
    await put('device', devices, (list) => repo.targetNames(db, 'device', list));
    await put('action', ids('action'), async (list) => (await repo.actionsNamed(db, list))
      .map((a) => ({ id: a.id, name: `${ACTION_CATALOGUE[a.type as ActionType]?.label ?? a.type} of ${a.entity_name} on ${a.device_name}` })));
    await put('investigation', ids('investigation'), async (list) => (await repo.investigationsNamed(db, list))
      .map((i) => ({ id: i.id, name: `Investigation on ${i.device_name}` })));
    await put('indicator', ids('indicator'), async (list) => (await repo.indicatorsNamed(db, list))
      .map((i) => ({ id: i.id, name: `${i.type} ${i.value}` })));
    for (const type of ['alert', 'incident', 'user', 'device_group', 'token', 'enrolment_token'] as const) {
      await put(type, ids(type), (list) => repo.targetNames(db, type, list));
    }
    return names;
  }

  return {
    /** Appends to the chain inside the caller's transaction, so the entry and the change it records commit together. */
    async record(trx: Db, actor: Actor, record: AuditRecord): Promise<void> {
      const groupIds = await groupsConcerned(trx, record);
      const head = await repo.lockedHead(trx);
      const row: ChainedFields = {
        seq: head.seq + 1,
        at: clock.now(),
        // Stored text must read back exactly as hashed: a lone UTF-16 surrogate (say, in a user name typed at sign-in) would not survive UTF-8.
        actor: actor.name.toWellFormed(),
        source_ip: actor.sourceIp,
        kind: record.kind,
        target_type: record.targetType,
        target_id: record.targetId,
        before_json: record.before === undefined ? null : JSON.stringify(record.before),
        after_json: record.after === undefined ? null : JSON.stringify(record.after),
        prev_hash: head.hash,
      };
      await repo.insert(trx, {
        ...row, hash: chainHash(row), group_ids: groupIds === null ? null : JSON.stringify(groupIds), actor_user_id: actor.userId,
      });
    },

    /** Convenience for events that change nothing else (a sign-in, a failed sign-in). */
    async recordAlone(actor: Actor, record: AuditRecord): Promise<void> {
      await store.transaction((trx) => this.record(trx, actor, record));
    },

    async list(actor: Actor, query: ListAuditQuery): Promise<{ items: AuditEntry[]; nextBefore: number | null }> {
      requirePermission(actor, 'audit:read');
      const limit = query.limit ?? 100;
      const rows = await repo.list(store.db, {
        ...query,
        from: query.from ? Date.parse(query.from) : undefined,
        to: query.to ? Date.parse(query.to) : undefined,
        limit,
      }, auditReader(actor));
      const names = await namesOf(store.db, rows);
      return { items: rows.map((row) => presentAuditEntry(row, names)), nextBefore: rows.length === limit ? rows[rows.length - 1]!.seq : null };
    },

    /**
     * Walks the whole chain: every seq present and consecutive from 1, every
     * entry linked to its predecessor's hash, every hash matching its content.
     */
    async verify(onProgress?: (checked: number) => void): Promise<ChainVerification> {
      let previous = { seq: 0, hash: GENESIS };
      let checked = 0;
      for (;;) {
        const rows = await repo.range(store.db, previous.seq, 5000);
        if (rows.length === 0) break;
        for (const row of rows) {
          const bad = (reason: string): ChainVerification => ({ ok: false, checked, firstBadSeq: row.seq, reason });
          if (row.seq !== previous.seq + 1) return { ok: false, checked, firstBadSeq: previous.seq + 1, reason: `entry ${previous.seq + 1} is missing` };
          if (row.prev_hash !== previous.hash) return bad(`entry ${row.seq} does not link to entry ${previous.seq}`);
          const { hash, ...rest } = row;
          if (chainHash(rest) !== hash) return bad(`entry ${row.seq} was altered after it was written`);
          previous = { seq: row.seq, hash };
          checked++;
        }
        onProgress?.(checked);
      }
      const recorded = await repo.recordedHead(store.db);
      if (recorded !== null && (recorded.seq !== previous.seq || recorded.hash !== previous.hash)) {
        return { ok: false, checked, firstBadSeq: previous.seq + 1, reason: `the log ends at entry ${previous.seq} but entry ${recorded.seq} was written` };
      }
      return { ok: true, checked, firstBadSeq: null, reason: null };
    },

    /**
     * The chain is always verified whole; a scoped reader is told only
     * whether it holds, never the position, count or reason, which would
     * speak of other groups' entries.
     */
    async verifyFor(actor: Actor): Promise<AuditVerification> {
      requirePermission(actor, 'audit:read');
      const result = await this.verify();
      return actor.groupIds === null ? result : { ok: result.ok };
    },
  };
}
export type AuditService = ReturnType<typeof createAuditService>;
