import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, type TestDatabase, createTestDatabase, openMigratedStore } from '../test/store.ts';
import { type Store, afterCommit } from './store.ts';

describe(`transactions tell others only once they have committed (${TEST_DIALECT})`, () => {
  let db: TestDatabase;
  let store: Store;
  beforeAll(async () => {
    db = await createTestDatabase();
    store = await openMigratedStore(db.location);
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const group = (id: string) => ({ id, name: id, rank: 1, automation_level: 'semi_any_folder', rule: null, created_at: 0 });
  const exists = async (id: string) => (await store.db.selectFrom('device_groups').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;

  it('runs what a transaction hands to afterCommit once it has committed, in order, and sees what it wrote', async () => {
    const told: string[] = [];
    await store.transaction(async (trx) => {
      await trx.insertInto('device_groups').values(group('g-committed')).execute();
      afterCommit(trx, () => told.push('first'));
      afterCommit(trx, () => told.push('second'));
      told.push('body ends');
    });
    expect(told).toEqual(['body ends', 'first', 'second']);
    expect(await exists('g-committed')).toBe(true);
  });

  it('never runs it when the transaction rolls back, and the next transaction starts with nothing to tell', async () => {
    const told: string[] = [];
    await expect(store.transaction(async (trx) => {
      await trx.insertInto('device_groups').values(group('g-rolled-back')).execute();
      afterCommit(trx, () => told.push('rolled back'));
      throw new Error('refused');
    })).rejects.toThrow('refused');
    await store.transaction(async (trx) => {
      afterCommit(trx, () => told.push('next'));
    });
    expect(told).toEqual(['next']);
    expect(await exists('g-rolled-back')).toBe(false);
  });

  it('runs it at once outside a transaction', () => {
    const told: string[] = [];
    afterCommit(store.db, () => told.push('now'));
    expect(told).toEqual(['now']);
  });
});
