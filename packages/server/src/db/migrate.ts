import { readdirSync, readFileSync } from 'node:fs';
import { upgradeParameters } from '@quell/contracts';
import { sql } from 'kysely';
import type { Db, Store } from './store.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
/** Arbitrary constant: the PostgreSQL advisory lock that lets one replica migrate at a time. */
const MIGRATION_LOCK = 7_261_001;

interface Migration { version: number; name: string; statements: string[] }

/**
 * Changes to data that one SQL text cannot make on both stores, each run
 * after its version's statements, in the same transaction.
 */
const DATA_UPGRADES: Record<number, (trx: Db) => Promise<void>> = { 23: typeActionParameters };

/** Stored action parameters in today's form (see upgradeParameters), a thousand rows at a time. */
async function typeActionParameters(trx: Db): Promise<void> {
  for (let after = ''; ;) {
    const rows = await trx.selectFrom('actions').select(['id', 'parameters']).where('id', '>', after).orderBy('id').limit(1000).execute();
    for (const row of rows) {
      const upgraded = JSON.stringify(upgradeParameters(JSON.parse(row.parameters)));
      if (upgraded !== JSON.stringify(JSON.parse(row.parameters))) await trx.updateTable('actions').set({ parameters: upgraded }).where('id', '=', row.id).execute();
    }
    if (rows.length < 1000) return;
    after = rows.at(-1)!.id;
  }
}

export function loadMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((file) => /^\d{4}_.+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file,
      statements: splitStatements(readFileSync(new URL(file, MIGRATIONS_DIR), 'utf8')),
    }));
}

/** Migration files hold no semicolons inside statements, so a `;` at a line end ends a statement. */
function splitStatements(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n')
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Applies every migration not yet applied, in order, each in its own transaction. Safe to run from several processes at once.
 * `through` stops after that version: a test of a migration builds the data it meets first.
 */
export async function migrate(store: Store, options: { through?: number } = {}): Promise<number[]> {
  await sql`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`.execute(store.db);
  const applied: number[] = [];
  for (const migration of loadMigrations().filter((m) => m.version <= (options.through ?? Infinity))) {
    const done = await store.transaction(async (trx) => {
      if (store.dialect === 'postgres') await sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`.execute(trx);
      const existing = await trx.selectFrom('schema_migrations').select('version').where('version', '=', migration.version).executeTakeFirst();
      if (existing) return false;
      for (const statement of migration.statements) await sql.raw(statement).execute(trx);
      await DATA_UPGRADES[migration.version]?.(trx);
      await trx.insertInto('schema_migrations').values({ version: migration.version, name: migration.name, applied_at: Date.now() }).execute();
      return true;
    });
    if (done) applied.push(migration.version);
  }
  return applied;
}
