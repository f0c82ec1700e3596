/**
 * `npm run bench`: the four benchmarks of the action center, on SQLite and on
 * PostgreSQL, each figure next to the reference it is judged against, all
 * measured in this run. Prints a summary table and rewrites bench/RESULTS.md
 * (only for a full-size run of both stores).
 *
 * Smaller runs while working on it: BENCH_DIALECTS=sqlite, BENCH_HISTORY_ROWS,
 * BENCH_LIFECYCLES, BENCH_PAGES, BENCH_FIRST_PAINT_SAMPLES. Needs PostgreSQL at BENCH_PG_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres) with the right to create databases.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { ActionType } from '@quell/contracts';
import { type Actor, type Store, createServices, migrate, openStore, systemActor } from '@quell/server';
import { createBenchDatabase } from './database.ts';
import { benchFirstPaint, signIn } from './first-paint.ts';
import { type BenchServer, benchExport, benchHistoryLatency, benchThroughputPair, startBenchServer } from './http.ts';
import { benchLifecycles } from './lifecycle.ts';
import { type DialectResult, type Machine, type RunConfig, keptNotes, resultsMarkdown, summaryTable } from './report.ts';
import { type SeedDevice, seedPostgres, seedSqlite } from './seed.ts';
import { createTeardown } from './teardown.ts';

type Dialect = 'sqlite' | 'postgres';

const FULL_HISTORY_ROWS = 1_000_000;
const env = process.env;
const DIALECTS = (env.BENCH_DIALECTS ?? 'sqlite,postgres').split(',').map((d) => d.trim()) as Dialect[];
const HISTORY_ROWS = Number(env.BENCH_HISTORY_ROWS ?? FULL_HISTORY_ROWS);
/** 1 % of the History, all within the newest week (10,000 at full size). */
const PENDING_ROWS = Math.floor(HISTORY_ROWS / 100);
const DEVICES = 200;
/** Sized so the whole run stays well under ten minutes on two cores. */
const LIFECYCLES: Record<Dialect, number> = {
  sqlite: Number(env.BENCH_LIFECYCLES ?? 2000),
  postgres: Number(env.BENCH_LIFECYCLES ?? 1000),
};
const WARMUP_LIFECYCLES = 100;
/** Requests of each path the console sends for its first paint: a p99 needs at least 2,000. */
const FIRST_PAINT_SAMPLES = Number(env.BENCH_FIRST_PAINT_SAMPLES ?? 2000);
/** Common types: each has well over 50 × 50 History rows at full size. */
const LATENCY_TYPES = [
  'isolate_device', 'contain_device', 'contain_user', 'restrict_code_execution', 'quarantine_file', 'stop_and_quarantine_file',
  'remove_registry_key', 'stop_service', 'remove_scheduled_task', 'run_antivirus_scan', 'collect_investigation_package', 'release_isolation',
] as const satisfies readonly ActionType[];
/** Walked before measuring, so that no measured page is one the warm-up already fetched. */
const WARMUP_TYPES = ['disable_driver', 'restore_file', 'release_containment'] as const satisfies readonly ActionType[];
const CONFIG: RunConfig = { connections: 10, seconds: 5, warmupSeconds: 2, rounds: 2, pagesPerType: Number(env.BENCH_PAGES ?? 50), types: LATENCY_TYPES };
/** The whole run is bounded: past this, everything is torn down and the run fails. */
const DEADLINE_MS = 20 * 60_000;
const BENCH_PASSWORD = 'bench password, not secret';

const started = performance.now();
const log = (message: string) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);

const { owe, runToEnd } = createTeardown(log, DEADLINE_MS);

async function engineVersion(store: Store): Promise<string> {
  const query = store.dialect === 'sqlite' ? sql<{ v: string }>`select sqlite_version() as v` : sql<{ v: string }>`select current_setting('server_version') as v`;
  const { rows } = await query.execute(store.db);
  return `${store.dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'} ${rows[0]?.v ?? '?'}`;
}

async function benchDialect(dialect: Dialect): Promise<DialectResult> {
  log(`${dialect}: creating a throwaway database`);
  const database = await createBenchDatabase(dialect);
  const drop = owe(() => database.drop());
  try {
    const store = openStore(database.location);
    const closeStore = owe(() => store.close());
    await migrate(store);
    const version = await engineVersion(store);
    const services = createServices({ store });
    const admin = systemActor('bench setup');

    const devices: SeedDevice[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const platform = i % 10 < 6 ? 'windows' : i % 10 < 9 ? 'linux' : 'macos';
      const device = await services.devices.create(admin, { name: `host-${String(i).padStart(3, '0')}`, platform });
      devices.push({ id: device.id, name: device.name, platform });
    }
    const user = await services.users.create(admin, { username: 'analyst', role: 'security_operator', password: BENCH_PASSWORD });
    const analyst: Actor = { kind: 'user', userId: user.id, name: user.username, role: 'security_operator', scopes: null, groupIds: null, sourceIp: null };
    const { secret: token } = await services.tokens.create(admin, { name: 'bench', scopes: ['actions:read'], expiresInDays: 1 }, { userId: user.id, role: 'security_operator', scopes: null });

    // Dirty pages left by earlier phases would otherwise be flushed during the timed commits.
    spawnSync('sync', { timeout: 60_000 });
    log(`${dialect}: ${LIFECYCLES[dialect]} lifecycles through the service vs the raw store`);
    const lifecycle = await benchLifecycles(services, { analyst, devices, n: LIFECYCLES[dialect], warmup: WARMUP_LIFECYCLES });
    const statements = Object.values(lifecycle.statements.service).reduce((sum, n) => sum + n, 0);
    log(`${dialect}: service ${lifecycle.service.perSecond.toFixed(0)}/s (${statements} statements), raw ${lifecycle.baseline.perSecond.toFixed(0)}/s (${lifecycle.statements.baselinePerLifecycle}), ratio ${lifecycle.ratio.toFixed(2)}`);
    await store.db.deleteFrom('action_events').execute();
    await store.db.deleteFrom('actions').execute();
    await closeStore();

    log(`${dialect}: seeding ${HISTORY_ROWS + PENDING_ROWS} actions`);
    const plan = { history: HISTORY_ROWS, pending: PENDING_ROWS, devices, now: Date.now() };
    const t0 = performance.now();
    const rows = database.location.dialect === 'sqlite' ? seedSqlite(database.location.file, plan) : await seedPostgres(database.location.url, plan);
    const seed = { rows, historyRows: HISTORY_ROWS, seconds: (performance.now() - t0) / 1000 };
    log(`${dialect}: seeded in ${seed.seconds.toFixed(1)} s`);

    const server: BenchServer = await startBenchServer(database.location);
    const stopServer = owe(() => server.close());
    try {
      log(`${dialect}: History page latency`);
      const history = await benchHistoryLatency(server, token, LATENCY_TYPES, WARMUP_TYPES, CONFIG.pagesPerType);
      log(`${dialect}: p50 ${history.all.p50.toFixed(1)} ms, p99 ${history.all.p99.toFixed(1)} ms, server CPU ${history.serverCpuMsPerRequest.toFixed(2)} ms per request`);

      log(`${dialect}: the console's first-paint requests, ${FIRST_PAINT_SAMPLES} of each`);
      const firstPaint = await benchFirstPaint(server, await signIn(server.quellUrl, 'analyst', BENCH_PASSWORD), FIRST_PAINT_SAMPLES);
      for (const p of firstPaint.paths) log(`${dialect}: ${p.path} p50 ${p.latency.p50.toFixed(1)} ms, p99 ${p.latency.p99.toFixed(1)} ms, server CPU ${p.serverCpuMs.toFixed(2)} ms`);

      log(`${dialect}: requests/s, list endpoint then hello-world`);
      const [list, hello] = await benchThroughputPair(
        { url: server.quellUrl, headers: { authorization: `Bearer ${token}` }, requests: history.paths.map((path) => ({ method: 'GET', path })) },
        { url: server.helloUrl },
        { ...CONFIG, serverPid: server.pid },
      );
      if (list.non2xx > 0 || list.errors > 0 || hello.non2xx > 0 || hello.errors > 0) throw new Error(`throughput runs had failures: list ${JSON.stringify(list)}, hello ${JSON.stringify(hello)}`);
      log(`${dialect}: list ${list.requestsPerSecond.toFixed(0)} req/s (server CPU ${list.serverCpuMsPerRequest.toFixed(3)} ms per request), hello ${hello.requestsPerSecond.toFixed(0)} req/s (${hello.serverCpuMsPerRequest.toFixed(3)} ms)`);

      log(`${dialect}: CSV export of the whole History`);
      const exported = await benchExport(server, token);
      if (exported.rows !== HISTORY_ROWS) throw new Error(`the export held ${exported.rows} rows, expected ${HISTORY_ROWS}`);
      log(`${dialect}: ${exported.rowsPerSecond.toFixed(0)} rows/s, peak RSS ${(exported.rssPeak / 1_048_576).toFixed(0)} MiB`);

      return { dialect, engineVersion: version, lifecycle, seed, history, firstPaint, list, hello, listPaths: history.paths.length, export: exported };
    } finally {
      await stopServer();
    }
  } finally {
    await drop();
  }
}

/** The commit measured, and whether the working tree held changes on top of it. */
function revision(): string {
  const git = (...args: string[]) => spawnSync('git', args, { encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  return git('status', '--porcelain', '--untracked-files=no') === '' ? head : `${head} with uncommitted changes`;
}

function machine(loadAtStart: number): Machine {
  return {
    revision: revision(),
    load: { start: loadAtStart, end: loadavg()[0]! },
    date: new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC',
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
    memoryGiB: totalmem() / 1024 ** 3,
    node: process.version,
    os: `${osType()} ${release()}`,
  };
}

const loadAtStart = loadavg()[0]!;
await runToEnd(async () => {
  const results: DialectResult[] = [];
  for (const dialect of DIALECTS) results.push(await benchDialect(dialect));
  const host = machine(loadAtStart);
  process.stdout.write(`\n${host.cpus} CPUs, ${host.memoryGiB.toFixed(1)} GiB, Node ${host.node}, ${host.date}\n\n${summaryTable(results)}\n`);
  const full = HISTORY_ROWS === FULL_HISTORY_ROWS && DIALECTS.includes('sqlite') && DIALECTS.includes('postgres') && env.BENCH_LIFECYCLES === undefined && env.BENCH_PAGES === undefined && env.BENCH_FIRST_PAINT_SAMPLES === undefined;
  if (full) {
    const file = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
    const previous = existsSync(file) ? readFileSync(file, 'utf8') : '';
    writeFileSync(file, resultsMarkdown(host, CONFIG, results, keptNotes(previous)));
    process.stdout.write(`\nWrote ${file}\n`);
  } else {
    process.stdout.write('\nNot a full-size run of both stores: bench/RESULTS.md left as it was.\n');
  }
});
