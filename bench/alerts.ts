/**
 * `npm run bench` (third part): alerts in and investigations. A real
 * `quell server` on SQLite in its own process, a fresh one for each part.
 * Measures (1) the time from an alert to its own queued quarantine while
 * alerts arrive at 100 per second for a minute, and (2) alerts ingested per
 * second through HTTP, each starting an investigation, against the raw
 * insert rate of the same rows into a store of the same kind in this run.
 * Writes its section of bench/RESULTS.md.
 *
 * BENCH_ALERTS (default 5000) sizes the ingestion run; BENCH_SUSTAIN_SECONDS (default 60) the sustained one.
 */
import { replaceSection } from './report.ts';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createServices, migrate, openStore, systemActor } from '@quell/server';
import { quellCli, startQuellServer } from '@quell/server/testing';
import { cpuMsOf } from './http.ts';

const ALERTS = Number(process.env.BENCH_ALERTS ?? 5000);
const SUSTAIN_SECONDS = Number(process.env.BENCH_SUSTAIN_SECONDS ?? 60);
const RATE = 100;
const CONCURRENCY = 20;
const RESULTS = new URL('./RESULTS.md', import.meta.url).pathname;
const PASSWORD = 'bench password, not secret';
const started = performance.now();
const log = (message: string) => process.stderr.write(`[alerts ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const loadAtStart = loadavg()[0]!;
const TARGETS = { ingestionRatio: 0.25, p99Ms: 500 } as const;
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

/**
 * A fresh `quell server` (production's log level) with 50 devices in a
 * device group on full automation, and an API token to post alerts with.
 */
async function freshServer() {
  const dataDir = mkdtempSync(join(tmpdir(), 'quell-alerts-'));
  const env = { ...process.env, QUELL_DATA_DIR: dataDir, QUELL_PORT: '0', QUELL_ADMIN_PASSWORD: PASSWORD, QUELL_LOG_LEVEL: 'info' };
  const { child, url } = await startQuellServer(env);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  };
  try {
    const token = /\n(qt_\S+)/.exec(quellCli(env)('token', 'create', '--user', 'admin', '--name', 'bench', '--scopes', 'alerts:create,alerts:read,devices:manage,device_groups:manage,actions:read,investigations:read', '--days', '1'))![1]!;
    const api = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
      return response.json() as Promise<{ id: string }>;
    };
    const group = await api('POST', '/api/device-groups', { name: 'bench (full)', rank: 1, automationLevel: 'full' });
    const devices: string[] = [];
    for (let i = 0; i < 50; i++) devices.push((await api('POST', '/api/devices', { name: `bench-${i}`, platform: 'linux', groupId: group.id })).id);
    log(`server at ${url}`);
    return { pid: child.pid!, api, devices, file: join(dataDir, 'quell.sqlite'), stop, remove: async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    } };
  } catch (error) {
    await stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

const alertBody = (deviceId: string, i: number) => ({
  title: 'Process launched from a temp folder', severity: 'high', category: 'execution', detectionSource: 'bench', externalId: `bench-${i}-${randomUUID()}`,
  deviceId, occurredAt: new Date().toISOString(), evidence: [{ kind: 'file', path: `/tmp/.cache/dropper-${i}`, sha256: sha256(`dropper ${i} ${randomUUID()}`) }],
});

/** The same alert rows (and their evidence rows) written straight into a fresh migrated SQLite store: the ceiling for ingestion. */
async function rawInsertsPerSecond(count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'quell-alerts-raw-'));
  const store = openStore({ dialect: 'sqlite', file: join(dir, 'raw.sqlite') });
  try {
    await migrate(store);
    const services = createServices({ store });
    const device = await services.devices.create(systemActor(), { name: 'raw', platform: 'linux' });
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const body = alertBody(device.id, i);
      await store.transaction(async (trx) => {
        const id = randomUUID();
        const now = Date.now();
        await trx.insertInto('alerts').values({
          id, title: body.title, description: null, severity: body.severity, category: body.category, detection_source: body.detectionSource, external_id: body.externalId,
          device_id: device.id, device_name: 'raw', group_id: null, occurred_at: now, received_at: now, status: 'new', classification: null, determination: null,
          updated_at: now, updated_by: null, evidence: JSON.stringify(body.evidence), incident_id: null,
          rule_id: null, mitre_techniques: '[]', mitre_tactics: '[]', origin: null,
        }).execute();
        await trx.insertInto('alert_evidence').values([{ alert_id: id, kind: 'sha256', value: body.evidence[0]!.sha256 }, { alert_id: id, kind: 'path', value: body.evidence[0]!.path }]).execute();
      });
    }
    return count / ((performance.now() - t0) / 1000);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 100 alerts per second for a minute on a fresh server: the time from each alert's arrival to its own queued quarantine. */
async function measureSustained() {
  const server = await freshServer();
  try {
    const load = loadavg()[0]!;
    const cpu = cpuMsOf(server.pid);
    const sent: Array<Promise<unknown>> = [];
    const notTaken: string[] = [];
    const total = RATE * SUSTAIN_SECONDS;
    const s0 = performance.now();
    for (let i = 0; i < total; i++) {
      const due = s0 + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      // A server that falls behind is measured, not crashed into: an alert it did not take in is counted.
      sent.push(server.api('POST', '/api/alerts', alertBody(server.devices[i % server.devices.length]!, i)).catch((error: unknown) => {
        notTaken.push(String((error as Error).cause ?? error));
      }));
      if ((i + 1) % 1000 === 0) log(`sent ${i + 1}/${total}`);
    }
    await Promise.all(sent);
    const sendSeconds = (performance.now() - s0) / 1000;
    log('waiting for the last investigations');
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    const cost = `load ${load.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}; server CPU ${((cpuMsOf(server.pid) - cpu) / total).toFixed(2)} ms per alert`;
    await server.stop();

    // Both times from the server's own store, on its own clock: each alert joined to the quarantine proposed
    // for its own file (its evidence's SHA-256, on its device), and that action's status.
    const store = openStore({ dialect: 'sqlite', file: server.file });
    const rows = await store.db.selectFrom('alerts')
      .innerJoin('alert_evidence', (join) => join.onRef('alert_evidence.alert_id', '=', 'alerts.id').on('alert_evidence.kind', '=', 'sha256'))
      .innerJoin('actions', (join) => join.onRef('actions.entity_sha256', '=', 'alert_evidence.value').onRef('actions.device_id', '=', 'alerts.device_id'))
      .select(['alerts.id', 'alerts.received_at', 'actions.requested_at', 'actions.status', 'actions.type'])
      .where('alerts.detection_source', '=', 'bench').execute();
    await store.close();
    // The devices have no agent: a proposed quarantine waits, queued, for one.
    const own = rows.filter((row) => row.type === 'quarantine_file' && row.status === 'queued');
    const latencies = own.map((row) => row.requested_at - row.received_at).sort((a, b) => a - b);
    const otherStatuses = [...new Set(rows.filter((row) => !own.includes(row)).map((row) => `${row.type} ${row.status}`))];
    log(`${latencies.length} of ${total} alerts reached their own queued quarantine; p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms${otherStatuses.length ? `; also ${otherStatuses.join(', ')}` : ''}`);
    return { total, sendSeconds, notTaken, latencies, cost };
  } finally {
    await server.remove();
  }
}

/** On a fresh server: alerts posted as fast as 20 senders can, each starting an investigation. */
async function measureIngestion() {
  const server = await freshServer();
  try {
    let next = 0;
    const cpu = cpuMsOf(server.pid);
    const i0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < ALERTS) {
        const i = next++;
        await server.api('POST', '/api/alerts', alertBody(server.devices[i % server.devices.length]!, i));
        if ((i + 1) % 1000 === 0) log(`ingested ${i + 1}/${ALERTS}`);
      }
    }));
    const perSecond = ALERTS / ((performance.now() - i0) / 1000);
    const cost = `load ${loadavg()[0]!.toFixed(2)}; server CPU ${((cpuMsOf(server.pid) - cpu) / ALERTS).toFixed(2)} ms per alert while they are posted (their investigations go on after)`;
    return { perSecond, cost };
  } finally {
    await server.remove();
  }
}

const { total, sendSeconds, notTaken, latencies, cost: sustainCpu } = await measureSustained();
const { perSecond: ingestPerSecond, cost: ingestCpu } = await measureIngestion();
const rawPerSecond = await rawInsertsPerSecond(ALERTS);
log(`ingestion ${ingestPerSecond.toFixed(0)} alerts/s; raw insert ${rawPerSecond.toFixed(0)} alerts/s`);

const section = [
  '<!-- alerts:start -->',
  '## Alerts and investigations',
  '',
  `Produced by \`bench/alerts.ts\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; 1-minute load average ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end.`,
  'A real `quell server` on SQLite in its own process, a fresh one for each part; alerts through HTTP with a scoped API token, each naming one file',
  'under /tmp on one of 50 devices of a device group on full automation, so each starts (or joins) an investigation that proposes a queued quarantine.',
  '',
  '| measure | target | result | beside it |',
  '|---|---|---|---|',
  `| alerts ingested through HTTP (${ALERTS.toLocaleString('en')} alerts, ${CONCURRENCY} senders), each correlated and starting an investigation |  | ${ingestPerSecond.toFixed(0)} alerts/s | ${ingestCpu} |`,
  `| raw insert of the same alert and evidence rows into a SQLite store, one transaction each, same run |  | ${rawPerSecond.toFixed(0)} alerts/s |  |`,
  `| **ingestion ratio** (HTTP / raw insert) | ≥ ${TARGETS.ingestionRatio} | **${(ingestPerSecond / rawPerSecond).toFixed(2)}** (${verdict(ingestPerSecond / rawPerSecond >= TARGETS.ingestionRatio)}) | ${ingestCpu} |`,
  `| sustained: ${RATE} alerts/s for ${SUSTAIN_SECONDS} s (sent in ${sendSeconds.toFixed(1)} s) — alerts whose own file's quarantine was proposed, queued | all | ${latencies.length.toLocaleString('en')} of ${total.toLocaleString('en')} (${verdict(latencies.length === total)})${notTaken.length ? `; ${notTaken.length.toLocaleString('en')} not taken in (${[...new Set(notTaken)].slice(0, 2).join('; ')})` : ''} | ${sustainCpu} |`,
  `| alert received → its own quarantine proposed, p50 (${latencies.length.toLocaleString('en')} samples) |  | ${percentile(latencies, 50)} ms | ${sustainCpu} |`,
  `| **alert received → its own quarantine proposed, p99** (${latencies.length.toLocaleString('en')} samples) | ≤ ${TARGETS.p99Ms} ms | **${percentile(latencies, 99)} ms** (${verdict(percentile(latencies, 99) <= TARGETS.p99Ms)}) | ${sustainCpu} |`,
  '',
  'Both times of the latency come from the server\'s own store (alert received_at, action requested_at), each alert joined to the quarantine of its',
  'own file (its evidence\'s SHA-256 on its device), counted only when that action is queued (the devices have no agent). The engine runs as a job that looks',
  'for due investigation steps every 250 ms (125 ms of waiting on average), then runs collect, evidence, verdicts, expand and remediate, each',
  'in its own transaction on the one SQLite connection the HTTP requests also use.',
  '<!-- alerts:end -->',
].join('\n');
replaceSection(RESULTS, 'alerts', section);
process.stdout.write(section + '\n');
