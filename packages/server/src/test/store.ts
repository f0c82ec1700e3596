import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../db/migrate.ts';
import { type Store, type StoreLocation, openStore } from '../db/store.ts';

/** `QUELL_TEST_DB=postgres` runs the suite on PostgreSQL; the default is SQLite. */
export const TEST_DIALECT = process.env.QUELL_TEST_DB === 'postgres' ? 'postgres' : 'sqlite';
const PG_ADMIN_URL = process.env.QUELL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  location: StoreLocation;
  /** Environment that points the CLI or a child process at the same database. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

/**
 * A fresh, empty database for one test file: a temporary SQLite file, or a
 * new PostgreSQL database that drop() removes. An unreachable PostgreSQL is a
 * failure, never a skip.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (TEST_DIALECT === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'quell-test-'));
    return {
      location: { dialect: 'sqlite', file: join(dir, 'quell.sqlite') },
      env: { QUELL_DATA_DIR: dir },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `quell_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    location: { dialect: 'postgres', url: url.toString() },
    env: { QUELL_DATABASE_URL: url.toString() },
    async drop() {
      const client = new pg.Client({ connectionString: PG_ADMIN_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export async function openMigratedStore(location: StoreLocation): Promise<Store> {
  const store = openStore(location);
  await migrate(store);
  return store;
}
