import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { type Actor, type Services, systemActor } from '@quell/server';
import type { ActionsTable } from '../packages/server/src/db/schema.ts';
import { type Ids, uuidIds } from '../packages/server/src/infra.ts';

export const STEPS = ['create', 'approve', 'deliver', 'complete'] as const;
export type Step = (typeof STEPS)[number];

export interface LifecycleResult {
  n: number;
  service: { seconds: number; perSecond: number; meanStepMs: Record<Step, number> };
  baseline: { seconds: number; perSecond: number };
  ratio: number;
  /** SQL statements sent to the driver per step, BEGIN and COMMIT included. */
  statements: { service: Record<Step, number>; baselinePerLifecycle: number };
}

const ROUNDS = 4;
const zeroSteps = (): Record<Step, number> => ({ create: 0, approve: 0, deliver: 0, complete: 0 });

/**
 * One action through every step the product takes it: an investigation
 * proposes it, an analyst approves it, the agent takes it and reports success.
 * Each call is its own transaction, as in production. Returns the action id.
 */
async function serviceLifecycle(services: Services, analyst: Actor, deviceId: string, stepMs: Record<Step, number>): Promise<string> {
  const agent = systemActor('agent');
  let t = performance.now();
  const lap = (step: Step) => {
    const now = performance.now();
    stepMs[step] += now - t;
    t = now;
  };
  const action = await services.actions.create(systemActor('Automation'), {
    type: 'isolate_device', deviceId, entity: { name: 'bench-host' }, source: 'automated_investigation', status: 'pending_approval',
  });
  lap('create');
  await services.actions.approve(analyst, { ids: [action.id] });
  lap('approve');
  await services.actions.recordDelivery(agent, action.id);
  lap('deliver');
  await services.actions.recordResult(agent, action.id, { outcome: 'completed', output: 'done' });
  lap('complete');
  return action.id;
}

/**
 * The raw store limit: the row the service wrote (`done`, a completed action
 * from the warm-up, copied with a fresh id) inserted as it stood when
 * proposed, then moved through the same three status changes with the same
 * values (compare-and-set on the old status), each as one autocommit
 * statement through the same Kysely driver. No reads, no timeline, no audit,
 * no signing.
 */
async function baselineLifecycle(services: Services, ids: Ids, done: ActionsTable): Promise<void> {
  const db = services.store.db;
  const id = ids.next();
  const now = Date.now();
  await db.insertInto('actions').values({
    ...done, id, status: 'pending_approval', requested_at: now, updated_at: now, decided_by: null, decided_at: null, decision_comment: null,
    command_jws: null, deliver_by: null, state_version: null, enforcement: null, result: null,
  }).execute();
  await db.updateTable('actions')
    .set({ status: 'queued', decided_by: done.decided_by, decided_at: Date.now(), decision_comment: done.decision_comment, command_jws: done.command_jws ?? null, deliver_by: done.deliver_by ?? null, updated_at: Date.now() })
    .where('id', '=', id).where('status', '=', 'pending_approval').execute();
  await db.updateTable('actions').set({ status: 'in_progress', updated_at: Date.now() }).where('id', '=', id).where('status', '=', 'queued').execute();
  await db.updateTable('actions').set({ status: 'completed', result: done.result, updated_at: Date.now() })
    .where('id', '=', id).where('status', '=', 'in_progress').execute();
}

/** The methods through which each driver executes a statement, whoever prepared it and however it is cached. */
function executionPoints(dialect: 'sqlite' | 'postgres'): Array<{ proto: Record<string, unknown>; method: string }> {
  if (dialect === 'postgres') return [{ proto: pg.Client.prototype as unknown as Record<string, unknown>, method: 'query' }];
  const scratch = new BetterSqlite3(':memory:');
  try {
    const proto = Object.getPrototypeOf(scratch.prepare('select 1')) as Record<string, unknown>;
    return ['run', 'get', 'all', 'iterate'].map((method) => ({ proto, method }));
  } finally {
    scratch.close();
  }
}

/**
 * Counts the statements the driver executes while `fn` runs, BEGIN and
 * COMMIT included, by wrapping the driver's execution methods for that
 * time. Only used for the untimed breakdown.
 */
async function countStatements(dialect: 'sqlite' | 'postgres', fn: () => Promise<void>): Promise<number> {
  let count = 0;
  const points = executionPoints(dialect).map((point) => ({ ...point, original: point.proto[point.method] as (...args: unknown[]) => unknown }));
  for (const { proto, method, original } of points) {
    proto[method] = function (this: unknown, ...args: unknown[]) {
      count++;
      return original.apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const { proto, method, original } of points) proto[method] = original;
  }
  return count;
}

export async function benchLifecycles(services: Services, options: { analyst: Actor; devices: ReadonlyArray<{ id: string }>; n: number; warmup: number }): Promise<LifecycleResult> {
  const { analyst, devices, n, warmup } = options;
  const ids = uuidIds(services.clock);
  const device = (i: number) => devices[i % devices.length]!;
  const ignored = zeroSteps();

  let lastId = '';
  for (let i = 0; i < warmup; i++) lastId = await serviceLifecycle(services, analyst, device(i).id, ignored);
  const done = await services.store.db.selectFrom('actions').selectAll().where('id', '=', lastId).executeTakeFirstOrThrow();
  for (let i = 0; i < warmup; i++) await baselineLifecycle(services, ids, done);

  // Alternating rounds, so that a drift in the machine (disk flush latency
  // above all) weighs on both sides alike.
  const stepMs = zeroSteps();
  let baselineMs = 0;
  let serviceMs = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const from = Math.floor((round * n) / ROUNDS);
    const to = Math.floor(((round + 1) * n) / ROUNDS);
    let t0 = performance.now();
    for (let i = from; i < to; i++) await baselineLifecycle(services, ids, done);
    baselineMs += performance.now() - t0;
    t0 = performance.now();
    for (let i = from; i < to; i++) await serviceLifecycle(services, analyst, device(i).id, stepMs);
    serviceMs += performance.now() - t0;
  }
  const baselineSeconds = baselineMs / 1000;
  const serviceSeconds = serviceMs / 1000;

  // Untimed: where the statements go, one lifecycle step by step.
  const perStep = zeroSteps();
  const agent = systemActor('agent');
  const dialect = services.store.dialect;
  let actionId = '';
  perStep.create = await countStatements(dialect, async () => {
    actionId = (await services.actions.create(systemActor('Automation'), {
      type: 'isolate_device', deviceId: device(0).id, entity: { name: 'bench-host' }, source: 'automated_investigation', status: 'pending_approval',
    })).id;
  });
  perStep.approve = await countStatements(dialect, async () => void (await services.actions.approve(analyst, { ids: [actionId] })));
  perStep.deliver = await countStatements(dialect, async () => void (await services.actions.recordDelivery(agent, actionId)));
  perStep.complete = await countStatements(dialect, async () => void (await services.actions.recordResult(agent, actionId, { outcome: 'completed', output: 'done' })));
  const baselinePerLifecycle = await countStatements(dialect, () => baselineLifecycle(services, ids, done));

  const meanStepMs = zeroSteps();
  for (const step of Object.keys(stepMs) as Step[]) meanStepMs[step] = stepMs[step] / n;
  const servicePerSecond = n / serviceSeconds;
  const baselinePerSecond = n / baselineSeconds;
  return {
    n,
    service: { seconds: serviceSeconds, perSecond: servicePerSecond, meanStepMs },
    baseline: { seconds: baselineSeconds, perSecond: baselinePerSecond },
    ratio: servicePerSecond / baselinePerSecond,
    statements: { service: perStep, baselinePerLifecycle },
  };
}
