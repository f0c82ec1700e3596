import { execFileSync, fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon, { type RequestSpec, type Result } from 'autocannon';
import type { StoreLocation } from '@quell/server';
import type { ChildMessage, ParentMessage } from './server.ts';

export interface BenchServer {
  pid: number;
  quellUrl: string;
  helloUrl: string;
  close(): Promise<void>;
}

/** Starts bench/server.ts in a child process on the given database and waits until both apps listen. */
export async function startBenchServer(location: StoreLocation, timeoutMs = 60_000): Promise<BenchServer> {
  const child = fork(fileURLToPath(new URL('./server.ts', import.meta.url)), [JSON.stringify(location)], {
    execArgv: process.execArgv,
    // Its log lines (production's, at info) are written and dropped.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<ChildMessage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench server did not start within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code} before it was ready`)));
    child.once('message', (message: ChildMessage) => {
      clearTimeout(timer);
      resolve(message);
    });
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return {
    pid: child.pid!,
    quellUrl: ready.quellUrl,
    helloUrl: ready.helloUrl,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ cmd: 'close' } satisfies ParentMessage);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Nearest-rank percentile of already sorted samples. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export interface LatencyStats { requests: number; p50: number; p99: number; max: number; mean: number }

export function stats(samples: readonly number[]): LatencyStats {
  const sorted = [...samples].sort((a, b) => a - b);
  return { requests: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? Number.NaN, mean: sorted.reduce((s, x) => s + x, 0) / sorted.length };
}

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time a process has used so far, user and system, in ms, from /proc (10 ms resolution: read it over many requests). */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th of them.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

export interface HistoryLatencyResult {
  all: LatencyStats;
  firstPages: LatencyStats;
  laterPages: LatencyStats;
  /** Paths seen during the walk (first pages and a sample of cursor pages), replayed by the throughput run. */
  paths: string[];
  /** The server's CPU time over the measured walk, per request, in ms. */
  serverCpuMsPerRequest: number;
}

const historyPath = (type: string) => `/api/actions?view=history&type=${type}&sort=requestedAt&order=desc&limit=50`;

/**
 * Sequential requests, one at a time over a kept-alive connection: for each
 * type, its first History page and then `pagesPerType - 1` more pages
 * following nextCursor. Time is measured from sending to the last body byte.
 */
export async function benchHistoryLatency(server: Pick<BenchServer, 'quellUrl' | 'pid'>, token: string, types: readonly string[], warmupTypes: readonly string[], pagesPerType: number): Promise<HistoryLatencyResult> {
  const baseUrl = server.quellUrl;
  const headers = { authorization: `Bearer ${token}` };
  const get = async (path: string): Promise<{ ms: number; items: number; nextCursor: string | null }> => {
    const t0 = performance.now();
    const response = await fetch(baseUrl + path, { headers, signal: AbortSignal.timeout(30_000) });
    const body = (await response.json()) as { items?: unknown[]; nextCursor?: string | null };
    const ms = performance.now() - t0;
    if (response.status !== 200 || !Array.isArray(body.items)) throw new Error(`GET ${path} answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
    return { ms, items: body.items.length, nextCursor: body.nextCursor ?? null };
  };

  // Warm-up, not recorded, on other types than the measured ones so no measured
  // page is one the warm-up fetched: JIT of both the first-page and the cursor path.
  for (const type of warmupTypes) {
    let path = historyPath(type);
    for (let page = 0; page < 20; page++) {
      const { nextCursor } = await get(path);
      if (nextCursor === null) break;
      path = `${historyPath(type)}&cursor=${encodeURIComponent(nextCursor)}`;
    }
  }

  const first: number[] = [];
  const later: number[] = [];
  const paths: string[] = [];
  const cpuBefore = cpuMsOf(server.pid);
  for (const type of types) {
    let path = historyPath(type);
    paths.push(path);
    for (let page = 0; page < pagesPerType; page++) {
      const { ms, items, nextCursor } = await get(path);
      (page === 0 ? first : later).push(ms);
      if (items !== 50 || nextCursor === null) throw new Error(`${type}: page ${page + 1} held ${items} rows; seed more rows of this type`);
      path = `${historyPath(type)}&cursor=${encodeURIComponent(nextCursor)}`;
      if (page % 5 === 4) paths.push(path);
    }
  }
  const serverCpuMsPerRequest = (cpuMsOf(server.pid) - cpuBefore) / (first.length + later.length);
  return { all: stats([...first, ...later]), firstPages: stats(first), laterPages: stats(later), paths, serverCpuMsPerRequest };
}

export interface ThroughputResult {
  /** Mean over the rounds. */
  requestsPerSecond: number;
  perRound: number[];
  /** Means over the rounds of autocannon's latency percentiles, in ms. */
  latencyP50: number;
  latencyP99: number;
  total: number;
  non2xx: number;
  errors: number;
  /** The server process's CPU time over the measured rounds, per request answered, in ms. */
  serverCpuMsPerRequest: number;
}

export interface ThroughputTarget { url: string; headers?: Record<string, string>; requests?: RequestSpec[] }

/**
 * autocannon against two targets with the same settings: an unrecorded
 * warm-up of each, then `rounds` alternating measured runs (a, b, a, b, …) so
 * that whatever else the machine does weighs on both alike.
 */
export async function benchThroughputPair(a: ThroughputTarget, b: ThroughputTarget, options: { connections: number; seconds: number; warmupSeconds: number; rounds: number; serverPid: number }): Promise<[ThroughputResult, ThroughputResult]> {
  const settings = (target: ThroughputTarget) => ({
    url: target.url, connections: options.connections, timeout: 10, headers: target.headers ?? {}, ...(target.requests ? { requests: target.requests } : {}),
  });
  for (const target of [a, b]) await autocannon({ ...settings(target), duration: options.warmupSeconds });
  const runs: [Result[], Result[]] = [[], []];
  const cpuMs: [number, number] = [0, 0];
  const measured = async (index: 0 | 1, target: ThroughputTarget): Promise<void> => {
    const before = cpuMsOf(options.serverPid);
    runs[index].push(await autocannon({ ...settings(target), duration: options.seconds }));
    cpuMs[index] += cpuMsOf(options.serverPid) - before;
  };
  for (let round = 0; round < options.rounds; round++) {
    await measured(0, a);
    await measured(1, b);
  }
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;
  const summarise = (results: Result[], cpu: number): ThroughputResult => ({
    requestsPerSecond: mean(results.map((r) => r.requests.average)),
    perRound: results.map((r) => r.requests.average),
    latencyP50: mean(results.map((r) => r.latency.p50)),
    latencyP99: mean(results.map((r) => r.latency.p99)),
    total: results.reduce((sum, r) => sum + r['2xx'] + r.non2xx, 0),
    non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
    errors: results.reduce((sum, r) => sum + r.errors + r.timeouts, 0),
    serverCpuMsPerRequest: cpu / results.reduce((sum, r) => sum + r['2xx'] + r.non2xx, 0),
  });
  return [summarise(runs[0], cpuMs[0]), summarise(runs[1], cpuMs[1])];
}

export interface ExportResult {
  rows: number;
  bytes: number;
  seconds: number;
  rowsPerSecond: number;
  rssBefore: number;
  rssPeak: number;
  /** Highest RSS in the first and in the last quarter of the export: about equal when memory stays flat. */
  rssFirstQuarterMax: number;
  rssLastQuarterMax: number;
  /** GET /healthz sent one after another while the export streams: does the server still answer others? */
  probes: { count: number; maxMs: number };
}

/** VmRSS and VmHWM (peak) of a process in bytes, from /proc: true even while its event loop is busy. */
function readRss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Streams the whole History as CSV, counting bytes and lines as they arrive.
 * Meanwhile the server's RSS is sampled from /proc every 100 ms (its peak
 * counter reset just before), and /healthz is probed one request at a time.
 */
export async function benchExport(server: BenchServer, token: string): Promise<ExportResult> {
  writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
  const rssBefore = readRss(server.pid).rss;
  const t0 = performance.now();
  const samples: Array<[number, number]> = [];
  const sampler = setInterval(() => samples.push([performance.now() - t0, readRss(server.pid).rss]), 100);
  let exporting = true;
  const probeMs: number[] = [];
  let probeError: unknown = null;
  const probing = (async () => {
    while (exporting) {
      const started = performance.now();
      const response = await fetch(`${server.quellUrl}/healthz`, { signal: AbortSignal.timeout(10 * 60_000) });
      await response.arrayBuffer();
      probeMs.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })().catch((error: unknown) => {
    probeError = error;
  });
  try {
    const response = await fetch(`${server.quellUrl}/api/actions/export.csv`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10 * 60_000) });
    if (response.status !== 200 || response.body === null) throw new Error(`export answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
    let bytes = 0;
    let lines = 0;
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      for (let at = value.indexOf(10); at !== -1; at = value.indexOf(10, at + 1)) lines++;
    }
    const elapsedMs = performance.now() - t0;
    const { hwm } = readRss(server.pid);
    const quarter = elapsedMs / 4;
    const maxWithin = (from: number, to: number) => Math.max(0, ...samples.filter(([at]) => at >= from && at <= to).map(([, rss]) => rss));
    const rows = lines - 1;
    exporting = false;
    await probing;
    if (probeError !== null) throw new Error('a /healthz probe failed during the export', { cause: probeError });
    return {
      rows,
      bytes,
      seconds: elapsedMs / 1000,
      rowsPerSecond: rows / (elapsedMs / 1000),
      rssBefore,
      rssPeak: Math.max(hwm, ...samples.map(([, rss]) => rss)),
      rssFirstQuarterMax: maxWithin(0, quarter),
      rssLastQuarterMax: maxWithin(3 * quarter, elapsedMs),
      probes: { count: probeMs.length, maxMs: Math.max(...probeMs) },
    };
  } finally {
    exporting = false;
    clearInterval(sampler);
  }
}
