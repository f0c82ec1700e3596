import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { StoreLocation } from '@quell/server';

/** PostgreSQL for the benchmarks, with the right to create databases. */
const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchDatabase { location: StoreLocation; drop(): Promise<void> }

/** A throwaway database: a SQLite file in a temporary folder, or a new PostgreSQL database. */
export async function createBenchDatabase(dialect: StoreLocation['dialect']): Promise<BenchDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'quell-bench-'));
    return { location: { dialect, file: join(dir, 'quell.sqlite') }, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `quell_bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return { location: { dialect, url: url.toString() }, drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
