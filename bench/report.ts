import { readFileSync, writeFileSync } from 'node:fs';
import type { FirstPaintResult } from './first-paint.ts';
import type { ExportResult, HistoryLatencyResult, ThroughputResult } from './http.ts';
import type { LifecycleResult } from './lifecycle.ts';

export const TARGETS = { lifecycleRatio: 0.5, historyP99Ms: 20, listRatio: 0.5, listCpuMs: 0.6, exportRssGrowth: 1.2 } as const;

export interface DialectResult {
  dialect: 'sqlite' | 'postgres';
  engineVersion: string;
  lifecycle: LifecycleResult;
  seed: { rows: number; historyRows: number; seconds: number };
  history: HistoryLatencyResult;
  firstPaint: FirstPaintResult;
  list: ThroughputResult;
  hello: ThroughputResult;
  listPaths: number;
  export: ExportResult;
}

export interface Machine { revision: string; date: string; cpus: number; cpuModel: string; memoryGiB: number; node: string; os: string; load: { start: number; end: number } }

export interface RunConfig { connections: number; seconds: number; warmupSeconds: number; rounds: number; pagesPerType: number; types: readonly string[] }

const LABEL = { sqlite: 'SQLite', postgres: 'PostgreSQL' } as const;
const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const mib = (bytes: number) => `${f0(bytes / 1_048_576)} MiB`;
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

export function exportIsFlat(e: ExportResult): boolean {
  return e.rssLastQuarterMax <= e.rssFirstQuarterMax * TARGETS.exportRssGrowth;
}

/** The four headline figures, one row per measure and one column per store. */
export function summaryTable(results: readonly DialectResult[]): string {
  const head = `| measure | target | ${results.map((r) => LABEL[r.dialect]).join(' | ')} |`;
  const rule = `|---|---|${results.map(() => '---|').join('')}`;
  const row = (measure: string, target: string, cell: (r: DialectResult) => string) => `| ${measure} | ${target} | ${results.map(cell).join(' | ')} |`;
  return [
    head,
    rule,
    row('1. lifecycles/s through the service', '', (r) => f0(r.lifecycle.service.perSecond)),
    row('   raw store limit, lifecycles/s', '', (r) => f0(r.lifecycle.baseline.perSecond)),
    row('   **ratio**', `≥ ${TARGETS.lifecycleRatio}`, (r) => `**${f2(r.lifecycle.ratio)}** (${verdict(r.lifecycle.ratio >= TARGETS.lifecycleRatio)})`),
    row(`2. History page at ${f0(results[0]?.seed.rows ?? 0)} actions, p50`, '', (r) => `${f1(r.history.all.p50)} ms`),
    row('   **p99**', `≤ ${TARGETS.historyP99Ms} ms`, (r) => `**${f1(r.history.all.p99)} ms** (${verdict(r.history.all.p99 <= TARGETS.historyP99Ms)})`),
    row('   the console\'s first-paint requests of Pending and History (totals included), **slowest p99**', `≤ ${TARGETS.historyP99Ms} ms`, (r) => {
      const worst = r.firstPaint.paths.find((p) => p.latency.p99 === r.firstPaint.worstP99)!;
      return `**${f1(r.firstPaint.worstP99)} ms** (${verdict(r.firstPaint.worstP99 <= TARGETS.historyP99Ms)}), \`${worst.path.split('?')[0]}\``;
    }),
    row('3. list endpoint, requests/s', '', (r) => f0(r.list.requestsPerSecond)),
    row('   **server CPU per page** (hello-world\'s)', `≤ ${TARGETS.listCpuMs} ms`, (r) => `**${f2(r.list.serverCpuMsPerRequest)} ms** (${verdict(r.list.serverCpuMsPerRequest <= TARGETS.listCpuMs)}) (${f2(r.hello.serverCpuMsPerRequest)} ms)`),
    row('   Fastify hello-world, requests/s', '', (r) => f0(r.hello.requestsPerSecond)),
    row('   **ratio**', `≥ ${TARGETS.listRatio}`, (r) => {
      const ratio = r.list.requestsPerSecond / r.hello.requestsPerSecond;
      return `**${f2(ratio)}** (${verdict(ratio >= TARGETS.listRatio)})`;
    }),
    row('4. CSV export, rows/s', '', (r) => `${f0(r.export.rowsPerSecond)} (${f0(r.export.rows)} rows in ${f1(r.export.seconds)} s)`),
    row('   **peak RSS** (before)', 'constant memory', (r) => `**${mib(r.export.rssPeak)}** (${mib(r.export.rssBefore)}), ${exportIsFlat(r.export) ? 'flat' : '**grows**'}`),
    row('   slowest `GET /healthz` meanwhile', '', (r) => `${f0(r.export.probes.maxMs)} ms`),
  ].join('\n');
}

function details(r: DialectResult, config: RunConfig): string {
  const l = r.lifecycle;
  const s = l.statements.service;
  const statementsTotal = s.create + s.approve + s.deliver + s.complete;
  return `### ${LABEL[r.dialect]} (${r.engineVersion})

**Lifecycles.** ${f0(l.n)} sequential lifecycles each way after a warm-up, in 4 alternating rounds.
Service: ${f1(l.service.seconds)} s, ${f0(l.service.perSecond)}/s; mean per step: create ${f2(l.service.meanStepMs.create)} ms,
approve ${f2(l.service.meanStepMs.approve)} ms, deliver ${f2(l.service.meanStepMs.deliver)} ms, complete ${f2(l.service.meanStepMs.complete)} ms.
Raw store: ${f1(l.baseline.seconds)} s, ${f0(l.baseline.perSecond)}/s. Ratio ${f2(l.ratio)}.
Statements handed to the driver per lifecycle (BEGIN/COMMIT included): service ${statementsTotal}
(create ${s.create}, approve ${s.approve}, deliver ${s.deliver}, complete ${s.complete}); raw store ${l.statements.baselinePerLifecycle}.

**Seed.** ${f0(r.seed.rows)} actions (${f0(r.seed.historyRows)} in History) loaded in ${f1(r.seed.seconds)} s, then analysed.

**History page.** ${r.history.all.requests} sequential requests (${config.types.length} types × ${config.pagesPerType} pages):
all p50 ${f1(r.history.all.p50)} ms, p99 ${f1(r.history.all.p99)} ms, max ${f1(r.history.all.max)} ms, mean ${f1(r.history.all.mean)} ms;
first pages p50 ${f1(r.history.firstPages.p50)} / p99 ${f1(r.history.firstPages.p99)} ms;
cursor pages p50 ${f1(r.history.laterPages.p50)} / p99 ${f1(r.history.laterPages.p99)} ms;
server CPU ${f2(r.history.serverCpuMsPerRequest)} ms per request (from /proc, over the measured walk).

**The console's first-paint requests** (what the Pending and History tabs ask for before their rows show, as the console's code builds them),
${r.firstPaint.paths[0]?.latency.requests ?? 0} sequential requests of each with a signed-in session's cookie; load average ${f2(r.firstPaint.load.start)} at the start, ${f2(r.firstPaint.load.end)} at the end:
${r.firstPaint.paths.map((p) => `\`GET ${p.path}\` p50 ${f1(p.latency.p50)} ms, p99 ${f1(p.latency.p99)} ms, max ${f1(p.latency.max)} ms; server CPU ${f2(p.serverCpuMs)} ms per request`).join(';\n')}.

**Requests/s.** ${config.connections} connections; ${config.rounds} alternating rounds of ${config.seconds} s each after a ${config.warmupSeconds} s warm-up.
List (${r.listPaths} History URLs in rotation): ${f0(r.list.requestsPerSecond)} req/s (rounds: ${r.list.perRound.map(f0).join(', ')}), latency p50 ${f1(r.list.latencyP50)} ms / p99 ${f1(r.list.latencyP99)} ms,
${f0(r.list.total)} responses, ${r.list.non2xx} non-2xx, ${r.list.errors} errors; server CPU ${f2(r.list.serverCpuMsPerRequest)} ms per request (from /proc, over the measured rounds).
Hello-world: ${f0(r.hello.requestsPerSecond)} req/s (rounds: ${r.hello.perRound.map(f0).join(', ')}), p50 ${f1(r.hello.latencyP50)} ms / p99 ${f1(r.hello.latencyP99)} ms, ${r.hello.non2xx} non-2xx, ${r.hello.errors} errors; server CPU ${f2(r.hello.serverCpuMsPerRequest)} ms per request.

**CSV export.** ${f0(r.export.rows)} rows, ${mib(r.export.bytes)} in ${f1(r.export.seconds)} s = ${f0(r.export.rowsPerSecond)} rows/s.
Server RSS: ${mib(r.export.rssBefore)} before, peak ${mib(r.export.rssPeak)}; highest in the first quarter of the export
${mib(r.export.rssFirstQuarterMax)}, in the last quarter ${mib(r.export.rssLastQuarterMax)}.
\`GET /healthz\` during the export: ${r.export.probes.count} probes, slowest ${f0(r.export.probes.maxMs)} ms.
`;
}

/** Everything below this line in RESULTS.md is written by hand and kept when the benchmark rewrites the file. */
export const NOTES_MARKER = '<!-- Notes below this line are kept when npm run bench rewrites this file. -->';

export function keptNotes(previous: string): string {
  const at = previous.indexOf(NOTES_MARKER);
  return at === -1 ? '' : previous.slice(at + NOTES_MARKER.length).trim();
}

export function resultsMarkdown(machine: Machine, config: RunConfig, results: readonly DialectResult[], notes: string): string {
  const seeded = results[0]?.seed ?? { rows: 0, historyRows: 0 };
  return `# Benchmarks

Produced by \`npm run bench\` (bench/run.ts), which writes this file. Figures
are from one run; every ratio compares two measurements taken in that same run
on the same machine.

**Machine:** ${machine.cpus} CPUs (${machine.cpuModel}), ${f1(machine.memoryGiB)} GiB memory, Node ${machine.node}, ${machine.os}.
1-minute load average ${f2(machine.load.start)} when the run started, ${f2(machine.load.end)} when it ended.
**Date:** ${machine.date}. **Code:** ${machine.revision}.

## Summary

${summaryTable(results)}

## What is measured

Each store gets a fresh database (a temporary SQLite file in WAL mode, or a
temporary PostgreSQL database on 127.0.0.1), migrated with the real migrations
and removed at the end.

1. **Lifecycles.** Sequentially, through the service layer (\`createServices\`):
   \`actions.create\` (an automated investigation proposes \`isolate_device\`,
   pending approval) → \`actions.approve\` (an analyst) → \`actions.recordDelivery\`
   → \`actions.recordResult\` (completed). Each call is its own transaction and
   does what production does: checks, the row, its timeline event, its
   hash-chained audit entry, and whatever else the service does on that step.
   The **raw store limit** writes the same rows with the same Kysely instance
   and driver: a completed action written by the service during the warm-up is
   copied with a fresh id and inserted as it stood when proposed, then three
   \`UPDATE … SET <the columns the step sets> WHERE id = ? AND status = ?\`
   bring it to queued, in progress and completed with the same values — each
   statement in autocommit, so one commit per state change on both sides. It
   is what the store can do for one action's four state changes with no reads,
   no timeline, no audit and no computation. Both run on the freshly migrated
   database (200 devices) after a warm-up, in 4 alternating rounds, after a
   \`sync\` so that no earlier write is flushed during the timed commits; their
   rows are deleted before seeding. The statement counts come from one more,
   untimed, lifecycle.
2. **History page.** The database is seeded directly with SQL (not through the
   service): ${f0(seeded.historyRows)} non-pending actions plus ${f0(seeded.rows - seeded.historyRows)} pending ones, spread over
   182 days, 21 types, 6 sources and 200 devices. Rows that reached the queue
   carry a command of the size and shape the service stores (a compact JWS,
   not validly signed: nothing reads it here, but the row width counts).
   SQLite is loaded with prepared inserts in 50,000-row transactions, then
   \`ANALYZE\`; PostgreSQL with \`INSERT … SELECT FROM unnest(…)\` in 10,000-row
   batches, then \`VACUUM (ANALYZE)\`, the state autovacuum leaves after a bulk
   load. The server runs in a child process
   (\`bench/server.ts\`: the real app from \`buildApp\`, listening on 127.0.0.1,
   logging as production does: JSON lines at \`info\`, written to /dev/null),
   authenticated with a bearer token of a security operator. The client sends
   \`GET /api/actions?view=history&type=<type>&sort=requestedAt&order=desc&limit=50\`
   one request at a time: for each of ${config.types.length} types the first page and then
   ${config.pagesPerType - 1} more pages following \`nextCursor\`. Latency is from
   sending to the last body byte. Before that, first and cursor pages of three
   other types warm the server up, so no measured page is one already fetched.
   Then **the console's first-paint requests**: the paths bench/first-paint.ts
   builds with the console's own code for the Pending and History tabs with no
   filter (the session, the first page with its count of matches, the
   summary, the devices; bench/console.ts checks them against what Chromium
   sends), each sent alone and in sequence with the cookie of a signed-in
   security operator, after 50 unrecorded ones.
3. **Requests/s.** autocannon in the parent process, ${config.connections} connections,
   against the list endpoint (rotating over the first pages and a sample of the
   cursor pages seen in step 2, with the bearer token) and against a Fastify
   hello-world route (\`{"hello":"world"}\`) served by the same child process on
   another loopback port: a ${config.warmupSeconds} s warm-up of each, then ${config.rounds} rounds of
   ${config.seconds} s each, alternating list and hello-world; the figure is the mean.
4. **CSV export.** \`GET /api/actions/export.csv\` with no filter (the whole
   History, ${f0(seeded.historyRows)} rows), read as a stream by the parent, which counts
   bytes and lines. The server's RSS is read from \`/proc/<pid>/status\` every
   100 ms (\`VmRSS\`), and the peak is the kernel's high-water mark (\`VmHWM\`,
   reset just before the export) — from outside the process, because a timer
   inside it does not run while the export keeps its event loop busy. Memory
   counts as constant when the highest RSS in the last quarter of the export is
   within ${Math.round((TARGETS.exportRssGrowth - 1) * 100)} % of the highest in the first quarter. Meanwhile the parent sends
   \`GET /healthz\` one at a time, 250 ms apart, to see whether the server still
   answers other requests.

## Details

${results.map((r) => details(r, config)).join('\n')}
${NOTES_MARKER}

${notes}
`;
}

/** Puts `section` (which begins with `<!-- name:start -->` and ends with `<!-- name:end -->`) in place of the section of that name in `file`, or at its end. */
export function replaceSection(file: string, name: string, section: string): void {
  const current = readFileSync(file, 'utf8');
  const marked = new RegExp(`<!-- ${name}:start -->[\\s\\S]*<!-- ${name}:end -->`);
  writeFileSync(file, marked.test(current) ? current.replace(marked, () => section) : `${current.trimEnd()}\n\n${section}\n`);
}
