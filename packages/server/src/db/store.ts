import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, type RawBuilder, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

export type Dialect = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;

export interface Store {
  readonly dialect: Dialect;
  readonly db: Db;
  /**
   * Runs `fn` in one transaction. On SQLite it is BEGIN IMMEDIATE, so two
   * processes on one file serialise instead of failing on a lock upgrade.
   * What `fn` hands to afterCommit runs once it has committed.
   */
  transaction<T>(fn: (trx: Db) => Promise<T>): Promise<T>;
  /**
   * Brings the query planner's statistics up to date. SQLite keeps none until asked, and without them
   * picks indexes by guesswork; PostgreSQL's autovacuum keeps its own, so there this does nothing.
   */
  refreshStatistics(): Promise<void>;
  close(): Promise<void>;
}

/** The callbacks each open transaction runs once it commits (and drops if it rolls back). */
const AFTER_COMMIT = new WeakMap<Db, Array<() => void>>();

/**
 * Runs `callback` once the transaction `trx` has committed — telling agents
 * of a command that may still be rolled back would have them ask for one
 * that is not there. Outside a transaction (`store.db`) it runs at once.
 */
export function afterCommit(trx: Db, callback: () => void): void {
  const callbacks = AFTER_COMMIT.get(trx);
  if (callbacks) callbacks.push(callback);
  else callback();
}

/** A dialect's transaction, with the callbacks afterCommit collected run after it commits. */
async function withAfterCommit<T>(run: (inside: (trx: Db) => Promise<T>) => Promise<T>, fn: (trx: Db) => Promise<T>): Promise<T> {
  const callbacks: Array<() => void> = [];
  let used: Db | null = null;
  let result: T;
  try {
    result = await run((trx) => {
      used = trx;
      AFTER_COMMIT.set(trx, callbacks);
      return fn(trx);
    });
  } finally {
    // SQLite hands every transaction the same connection object: the next one starts with none.
    if (used !== null) AFTER_COMMIT.delete(used);
  }
  for (const callback of callbacks) callback();
  return result;
}

/**
 * The condition that keeps rows to an actor's device groups (`column` holds
 * the group id); a null scope is every group, an empty one none at all.
 */
export function groupScope(column: string, groupIds: readonly string[] | null): RawBuilder<boolean> {
  if (groupIds === null) return sql<boolean>`1 = 1`;
  if (groupIds.length === 0) return sql<boolean>`1 = 0`;
  return sql<boolean>`${sql.ref(column)} in (${sql.join(groupIds)})`;
}

export type StoreLocation = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

// int8 (counts, epoch-ms times) arrives as a string by default; every such value here fits a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export function openStore(location: StoreLocation): Store {
  return location.dialect === 'sqlite' ? openSqlite(location.file) : openPostgres(location.url);
}

function openSqlite(file: string): Store {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const database = new BetterSqlite3(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 10000');
  database.pragma('foreign_keys = ON');
  // Kysely prepares every query afresh; the same few dozen statements run over and over, so keep them prepared.
  const statements = new Map<string, BetterSqlite3.Statement>();
  const cached = {
    prepare(query: string): BetterSqlite3.Statement {
      let statement = statements.get(query);
      if (!statement) {
        if (statements.size >= 1000) statements.clear();
        statement = database.prepare(query);
        statements.set(query, statement);
      }
      return statement;
    },
    close: () => database.close(),
  };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cached }) });
  return {
    dialect: 'sqlite',
    db,
    transaction: (fn) => withAfterCommit((inside) => db.connection().execute(async (conn) => {
      // The SQLite driver has one connection guarded by a mutex: holding it
      // keeps every other query of this process out until we commit.
      await sql`begin immediate`.execute(conn);
      try {
        const result = await inside(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (error) {
        await sql`rollback`.execute(conn);
        throw error;
      }
    }), fn),
    async refreshStatistics() {
      // A sample of each index (about a thousand rows) is enough for the planner and takes milliseconds on a large store.
      await sql`PRAGMA analysis_limit = 1000`.execute(db);
      await sql`ANALYZE`.execute(db);
    },
    close: () => db.destroy(),
  };
}

function openPostgres(url: string): Store {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle connection the server ends (a restart, a failover, an administrator) is an 'error'
  // event on the pool; unheard, it would take the process down. The pool drops that connection
  // and the next query opens a new one.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    dialect: 'postgres',
    db,
    transaction: (fn) => withAfterCommit((inside) => db.transaction().execute(inside), fn),
    refreshStatistics: async () => {},
    close: () => db.destroy(),
  };
}
