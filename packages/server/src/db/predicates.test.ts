import { randomUUID } from 'node:crypto';
import { ACTION_TYPES } from '@quell/contracts';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../test/helper.ts';
import { createDevicesRepository } from '../modules/devices/devices.repository.ts';
import { createDesiredStateRepository } from '../modules/desired-state/desired-state.repository.ts';
import { containmentInForce, pendingApproval } from './predicates.ts';

describe(`what the first paint counts is read through partial indexes of its own (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  /** The plan the store makes for a query, its parameters written in. */
  async function planOf(query: { compile(): { sql: string; parameters: readonly unknown[] } }): Promise<string> {
    const { sql: text, parameters } = query.compile();
    let n = 0;
    const literal = () => `'${String(parameters[n++])}'`;
    if (ctx().store.dialect === 'sqlite') {
      const { rows } = await sql`EXPLAIN QUERY PLAN ${sql.raw(text.replace(/\?/g, literal))}`.execute(ctx().store.db);
      return rows.map((row) => (row as { detail: string }).detail).join('\n');
    }
    const { rows } = await sql`EXPLAIN ${sql.raw(text.replace(/\$\d+/g, literal))}`.execute(ctx().store.db);
    return rows.map((row) => (row as { 'QUERY PLAN': string })['QUERY PLAN']).join('\n');
  }

  it('the containment in force, by the device list and the fleet\'s state; what waits for approval, by the summary and the device list', async () => {
    const { store } = ctx();
    const devices = [await ctx().createDevice(), await ctx().createDevice()];
    const template = await store.db.selectFrom('actions').selectAll().where('id', '=', await ctx().createAction({ deviceId: devices[0]!, status: 'queued' })).executeTakeFirstOrThrow();
    // Thousands of actions of every kind, containments among them, all undone but a few, and some waiting for approval.
    const rows = Array.from({ length: 6000 }, (_, i) => ({
      ...template, id: randomUUID(), device_id: devices[i % 2]!, entity_key: null,
      type: i % 10 === 0 ? 'contain_device' : ACTION_TYPES[i % ACTION_TYPES.length]!,
      ...(i % 600 === 0 ? { status: 'completed', undone_by: null } : i % 50 === 1 ? { status: 'pending_approval', undone_by: null } : { status: 'undone', undone_by: randomUUID() }),
    }));
    for (let i = 0; i < rows.length; i += 500) await store.db.insertInto('actions').values(rows.slice(i, i + 500)).execute();
    await store.refreshStatistics();
    // PostgreSQL's autovacuum would analyse the table in its own time; the test does not wait for it.
    if (store.dialect === 'postgres') await sql`ANALYZE actions`.execute(store.db);

    const devicesRepo = createDevicesRepository();
    const desiredState = createDesiredStateRepository();
    const inForce = rows.filter((row) => row.type === 'contain_device' && row.status === 'completed').map((row) => row.id).sort();
    expect(inForce.length).toBeGreaterThan(0);
    expect((await devicesRepo.containment(store.db, devices)).map((row) => row.id).sort()).toEqual(inForce);
    expect((await desiredState.containmentInForce(store.db)).map((row) => row.id).sort()).toEqual(inForce);
    // Their queries' shapes: these devices' containment, and the whole fleet's.
    const ofDevices = store.db.selectFrom('actions').select(['device_id', 'entity_name', 'id']).where('device_id', 'in', devices).where(containmentInForce);
    expect(await planOf(ofDevices)).toContain('actions_containment_in_force');
    expect(await planOf(store.db.selectFrom('actions').select(['id', 'entity_name']).where(containmentInForce).orderBy('requested_at'))).toContain('actions_containment_in_force');

    const pending = rows.filter((row) => row.status === 'pending_approval');
    const waiting = await devicesRepo.waitingActions(store.db, devices);
    expect(waiting.filter((row) => row.status === 'pending_approval').reduce((sum, row) => sum + Number(row.count), 0)).toBe(pending.length);
    expect(waiting.filter((row) => row.status === 'queued').reduce((sum, row) => sum + Number(row.count), 0)).toBe(1);
    const byType = store.db.selectFrom('actions').select(['type', (eb) => eb.fn.min('requested_at').as('oldest')]).where(pendingApproval).groupBy('type');
    // PostgreSQL, on a table this small, reads the few pending rows through any index on status; SQLite must be shown the way.
    if (store.dialect === 'sqlite') expect(await planOf(byType)).toContain('actions_pending_by_type');
  });
});
