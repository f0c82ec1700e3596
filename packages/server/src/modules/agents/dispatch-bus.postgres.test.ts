import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from '../../test/index.ts';
import { type DispatchBus, createDispatchBus } from './dispatch-bus.ts';

/** Replicas on one PostgreSQL database tell each other of new commands and states through LISTEN/NOTIFY. */
describe('the dispatch bus between replicas (postgres)', () => {
  let db: TestDatabase;
  const buses: DispatchBus[] = [];
  const errors: unknown[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const bus of buses) await bus.close();
    await db.drop();
  });
  const open = async () => {
    const bus = await createDispatchBus(db.location, (error) => errors.push(error));
    buses.push(bus);
    const heard: string[][] = [];
    let states = 0;
    bus.subscribe((ids) => heard.push(ids));
    bus.onState(() => states++);
    return { bus, heard, states: () => states };
  };
  const until = async (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  it('carries device ids and new states from one replica to every other, in messages NOTIFY can hold', async () => {
    const a = await open();
    const b = await open();
    const ids = Array.from({ length: 450 }, (_, i) => `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`);
    a.bus.publish(ids);
    a.bus.publishState();
    await until('both replicas to hear every id and the state', () => b.heard.flat().length === 450 && a.heard.flat().length === 450 && b.states() === 1);
    expect(b.heard.flat().sort()).toEqual(ids);
    expect(b.heard.length).toBe(3);
  });

  it('listens again when its connection drops, and hears what is said afterwards', async () => {
    const listener = await open();
    const speaker = await open();
    const admin = new pg.Client({ connectionString: db.location.dialect === 'postgres' ? db.location.url : '' });
    await admin.connect();
    try {
      const { rowCount } = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN quell_dispatch'");
      expect(rowCount).toBeGreaterThanOrEqual(2);
    } finally {
      await admin.end();
    }
    await until('a replica to hear again', () => {
      speaker.bus.publish(['after-the-drop']);
      return listener.heard.some((ids) => ids.includes('after-the-drop'));
    });
    expect(errors.length).toBeGreaterThan(0);
  });
});
