import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import {
  ACTION_CATALOGUE, ACTION_SOURCES, ACTION_TYPES, type ActionSource, type ActionStatus, type ActionType, CAPABILITY_MATRIX, type Platform,
} from '@quell/contracts';
import type { ActionsTable } from '../packages/server/src/db/schema.ts';

/** A device the seeded actions point at; created through the devices service beforehand. */
export interface SeedDevice { id: string; name: string; platform: Platform }

export interface SeedPlan {
  /** Rows in the History view (every status but pending_approval). */
  history: number;
  /** Rows waiting for approval, all within the most recent week. */
  pending: number;
  devices: readonly SeedDevice[];
  /** The newest requested_at; rows spread over the 182 days before it. */
  now: number;
}

const DAY = 86_400_000;
const SPAN = 182 * DAY;
const SHA_POOL = 5000;
/** Rows this close to the end may still be queued or running. */
const ACTIVE_TAIL = 2000;
const ANALYSTS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'] as const;

/** Roughly how often each type shows up in a busy tenant's history; undo types are rarer. */
const TYPE_WEIGHTS = {
  isolate_device: 10, release_isolation: 3, contain_device: 4, release_containment: 1, contain_user: 4, release_user: 1,
  restrict_code_execution: 3, remove_code_restriction: 1, quarantine_file: 18, stop_and_quarantine_file: 12, restore_file: 2,
  remove_registry_key: 5, restore_registry_key: 1, stop_service: 4, restore_service: 1, disable_driver: 2, restore_driver: 0.5,
  remove_scheduled_task: 4, restore_scheduled_task: 1, remove_persistence: 0, restore_persistence: 0, run_antivirus_scan: 14, collect_investigation_package: 8, collect_evidence: 6,
} as const satisfies Record<ActionType, number>;

const SOURCE_WEIGHTS = {
  automated_investigation: 45, antivirus: 25, manual: 12, api: 8, advanced_hunting: 5, incident: 5,
} as const satisfies Record<ActionSource, number>;

const HISTORY_STATUS_WEIGHTS: ReadonlyArray<readonly [ActionStatus, number]> = [
  ['completed', 72], ['failed', 7], ['rejected', 6], ['expired', 4], ['cancelled', 4], ['timed_out', 2], ['undone', 3],
];

/**
 * Every column of `actions` with its PostgreSQL array type: a Record over the
 * row type, so a new column does not compile until the loaders know it.
 */
const COLUMN_TYPES = {
  id: 'text', type: 'text', status: 'text', entity_type: 'text', entity_name: 'text', entity_sha256: 'text', entity_path: 'text',
  parameters: 'text', device_id: 'text', device_name: 'text', group_id: 'text', source: 'text', investigation_id: 'text',
  incident_id: 'text', approval_id: 'text', requested_by: 'text', requested_by_user_id: 'text', requested_at: 'bigint', comment: 'text',
  decided_by: 'text', decided_at: 'bigint', decision_comment: 'text', expires_at: 'bigint', updated_at: 'bigint', undo_of: 'text',
  undone_by: 'text', result: 'text', command_jws: 'text', deliver_by: 'bigint', state_version: 'bigint', enforcement: 'text',
  entity_key: 'text',
} as const satisfies Record<keyof ActionsTable, 'text' | 'bigint'>;
const SEED_COLUMNS = Object.keys(COLUMN_TYPES) as Array<keyof ActionsTable>;
const cell = (row: ActionsTable, column: keyof ActionsTable) => row[column] ?? null;

/** Deterministic, so every run seeds the same data. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function weighted<T>(entries: ReadonlyArray<readonly [T, number]>, random: () => number): T {
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  let r = random() * total;
  for (const [value, w] of entries) {
    r -= w;
    if (r < 0) return value;
  }
  return entries[entries.length - 1]![0];
}

/** UUID-shaped and time-ordered like the server's version 7 ids; the row number in the last group keeps them unique. */
function seedId(ms: number, i: number): string {
  const time = ms.toString(16).padStart(12, '0');
  const hex3 = (n: number) => n.toString(16).padStart(3, '0');
  return `${time.slice(0, 8)}-${time.slice(8)}-7${hex3(i & 0xfff)}-8${hex3((i >>> 12) & 0xfff)}-${i.toString(16).padStart(12, '0')}`;
}

function entityFor(type: ActionType, device: SeedDevice, k: number, shas: readonly string[]): Pick<ActionsTable, 'entity_type' | 'entity_name' | 'entity_sha256' | 'entity_path'> {
  const entityType = ACTION_CATALOGUE[type].entityType;
  const base = { entity_type: entityType, entity_sha256: null, entity_path: null };
  switch (entityType) {
    case 'device': return { ...base, entity_name: device.name };
    case 'user': return { ...base, entity_name: `user${k % 3000}@corp.example` };
    case 'ip': return { ...base, entity_name: `10.${k % 200}.${(k >>> 3) % 250}.${(k >>> 7) % 250}` };
    case 'file': {
      const n = k % shas.length;
      const windows = device.platform === 'windows';
      return {
        ...base,
        entity_name: `payload-${n}.${windows ? 'exe' : 'bin'}`,
        entity_sha256: shas[n]!,
        entity_path: windows ? `C:\\Users\\user${n % 500}\\Downloads\\payload-${n}.exe` : `/home/user${n % 500}/Downloads/payload-${n}.bin`,
      };
    }
    case 'registry_key': return { ...base, entity_name: `HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\entry${k % 400}` };
    case 'service': return { ...base, entity_name: `svc-${k % 300}` };
    case 'driver': return { ...base, entity_name: `drv${k % 200}.sys` };
    case 'scheduled_task': return { ...base, entity_name: `\\Microsoft\\Windows\\task-${k % 300}` };
    default: return { ...base, entity_name: `${entityType}-${k % 1000}` };
  }
}

/**
 * The seeded History: `history` non-pending rows and `pending` pending ones,
 * in requested_at order (so the time-suffixed indexes fill mostly at their
 * ends, as in a live system). Pending rows are every 4th row of the newest tail.
 */
export function* seedRows(plan: SeedPlan): Generator<ActionsTable> {
  const random = mulberry32(0x5eed);
  const total = plan.history + plan.pending;
  const pendingWindow = Math.min(total, plan.pending * 4);
  const start = plan.now - SPAN;
  const shas = Array.from({ length: SHA_POOL }, (_, n) => createHash('sha256').update(`quell-bench-file-${n}`).digest('hex'));
  const typeEntries = ACTION_TYPES.map((t) => [t, TYPE_WEIGHTS[t]] as const);
  const sourceEntries = ACTION_SOURCES.map((s) => [s, SOURCE_WEIGHTS[s]] as const);
  const clampNow = (ms: number) => Math.min(ms, plan.now);

  for (let i = 0; i < total; i++) {
    const requestedAt = start + Math.floor((i * SPAN) / total);
    const id = seedId(requestedAt, i);
    const device = plan.devices[Math.floor(random() * plan.devices.length)]!;
    let type = weighted(typeEntries, random);
    while (CAPABILITY_MATRIX[type][device.platform] !== 'supported') type = weighted(typeEntries, random);
    const source = weighted(sourceEntries, random);
    const manual = source === 'manual';
    const automated = source === 'automated_investigation' || source === 'antivirus';
    const requestedBy = automated ? 'Automation' : ANALYSTS[Math.floor(random() * ANALYSTS.length)]!;
    const pending = i >= total - pendingWindow && (total - 1 - i) % 4 === 0;

    let status: ActionStatus;
    if (pending) status = 'pending_approval';
    else if (i >= total - ACTIVE_TAIL && random() < 0.5) status = random() < 0.6 ? 'queued' : 'in_progress';
    else status = weighted(HISTORY_STATUS_WEIGHTS, random);
    if (manual && (status === 'rejected' || status === 'expired')) status = 'completed';
    if (status === 'undone' && ACTION_CATALOGUE[type].undoType === null) status = 'completed';
    // Containment lasts while the contained device is dealt with: released within a week, as analysts do. (Never
    // released, the seed would leave tens of thousands of addresses contained at once.)
    if (type === 'contain_device' && status === 'completed' && requestedAt < plan.now - 7 * DAY) status = 'undone';

    let decidedBy: string | null = null;
    let decidedAt: number | null = null;
    let decisionComment: string | null = null;
    if (!pending) {
      if (manual) {
        decidedBy = requestedBy;
        decidedAt = requestedAt;
      } else if (status === 'expired') {
        decidedBy = 'System';
        decidedAt = clampNow(requestedAt + 7 * DAY);
        decisionComment = 'No decision before the deadline';
      } else {
        decidedBy = random() < 0.3 ? 'Automation' : ANALYSTS[Math.floor(random() * ANALYSTS.length)]!;
        decidedAt = clampNow(requestedAt + Math.floor(random() * 4 * 3_600_000));
        if (status === 'rejected') decisionComment = 'False positive';
      }
    }
    // Every action that reached the queue carries its signed command.
    const commanded = status === 'queued' || status === 'in_progress' || status === 'completed' || status === 'failed' || status === 'timed_out' || status === 'undone';
    const queuedAt = decidedAt ?? requestedAt;
    const entity = entityFor(type, device, Math.floor(random() * 1_000_000), shas);
    const result = status === 'completed' || status === 'undone' ? '{"output":"done"}' : status === 'failed' ? '{"error":"The agent reported a failure"}' : null;

    yield {
      id,
      type,
      status,
      ...entity,
      parameters: '{}',
      device_id: device.id,
      device_name: device.name,
      group_id: null,
      source,
      investigation_id: source === 'automated_investigation' ? String(Math.floor(i / 5)) : null,
      incident_id: source === 'incident' ? `INC-${Math.floor(i / 20)}` : null,
      approval_id: manual ? null : `AP-${id.slice(-12)}`,
      requested_by: requestedBy,
      requested_by_user_id: null,
      requested_at: requestedAt,
      comment: random() < 0.1 ? 'Seen during incident triage' : null,
      decided_by: decidedBy,
      decided_at: decidedAt,
      decision_comment: decisionComment,
      expires_at: pending ? requestedAt + 7 * DAY : null,
      updated_at: decidedAt === null ? requestedAt : clampNow(decidedAt + Math.floor(random() * 30 * 60_000)),
      undo_of: null,
      undone_by: null,
      result,
      command_jws: commanded ? commandShaped(id, device.id, type, entity, queuedAt) : null,
      deliver_by: commanded ? queuedAt + 7 * DAY : null,
      state_version: null,
      enforcement: null,
      // Random entities repeat on a device: seeded history is not held to one open action per entity.
      entity_key: null,
    };
  }
}

const COMMAND_HEADER = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'b'.repeat(43), typ: 'quell-command+jws' })).toString('base64url');

/**
 * A compact JWS of the size and shape the server stores for a queued action
 * (real header and payload fields, 64-byte signature). Nothing verifies it
 * here; it only gives seeded rows their true width, which the History reads.
 */
function commandShaped(actionId: string, deviceId: string, type: ActionType, entity: Pick<ActionsTable, 'entity_name' | 'entity_sha256' | 'entity_path'>, queuedAt: number): string {
  const payload = {
    v: 1, actionId, deviceId, type,
    entity: { name: entity.entity_name, ...(entity.entity_sha256 ? { sha256: entity.entity_sha256 } : {}), ...(entity.entity_path ? { path: entity.entity_path } : {}) },
    parameters: {}, undoOf: null, exp: Math.floor(queuedAt / 1000) + 7 * 86_400, iat: Math.floor(queuedAt / 1000), nonce: actionId.slice(-22),
  };
  const signature = createHash('sha512').update(actionId).digest('base64url').slice(0, 86);
  return `${COMMAND_HEADER}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
}

/** Bulk-loads with a plain better-sqlite3 connection: prepared inserts, 50,000 rows per transaction. */
export function seedSqlite(file: string, plan: SeedPlan): number {
  const db = new BetterSqlite3(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('cache_size = -262144');
    const insert = db.prepare(`INSERT INTO actions (${SEED_COLUMNS.join(', ')}) VALUES (${SEED_COLUMNS.map(() => '?').join(', ')})`);
    const insertBatch = db.transaction((rows: ActionsTable[]) => {
      for (const row of rows) insert.run(SEED_COLUMNS.map((c) => cell(row, c)));
    });
    let batch: ActionsTable[] = [];
    let count = 0;
    for (const row of seedRows(plan)) {
      batch.push(row);
      if (batch.length === 50_000) {
        insertBatch(batch);
        count += batch.length;
        batch = [];
      }
    }
    insertBatch(batch);
    count += batch.length;
    db.exec('ANALYZE');
    db.pragma('wal_checkpoint(TRUNCATE)');
    return count;
  } finally {
    db.close();
  }
}

/**
 * Bulk-loads with one pg client: 10,000 rows per `INSERT … SELECT FROM unnest(…)`,
 * building the next batch while the previous one is in flight. Ends with
 * VACUUM (ANALYZE), the state autovacuum brings a table to after a bulk insert.
 */
export async function seedPostgres(url: string, plan: SeedPlan): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('SET synchronous_commit = off');
    const casts = SEED_COLUMNS.map((c, k) => `$${k + 1}::${COLUMN_TYPES[c]}[]`);
    const text = `INSERT INTO actions (${SEED_COLUMNS.join(', ')}) SELECT * FROM unnest(${casts.join(', ')})`;
    let inFlight: Promise<unknown> = Promise.resolve();
    let columns: unknown[][] = SEED_COLUMNS.map(() => []);
    let size = 0;
    let count = 0;
    const flush = async () => {
      const values = columns;
      columns = SEED_COLUMNS.map(() => []);
      count += size;
      size = 0;
      await inFlight;
      inFlight = client.query(text, values);
      // Awaited at the next flush; this only keeps a failure from counting as unhandled meanwhile.
      inFlight.catch(() => undefined);
    };
    for (const row of seedRows(plan)) {
      SEED_COLUMNS.forEach((c, k) => columns[k]!.push(cell(row, c)));
      if (++size === 10_000) await flush();
    }
    if (size > 0) await flush();
    await inFlight;
    await client.query('VACUUM (ANALYZE) actions');
    return count;
  } finally {
    await client.end();
  }
}
