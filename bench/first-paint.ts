/**
 * The API requests the web console sends for the first paint of the Action
 * center's Pending and History tabs, built by the console's own code (its
 * list query with the count of matches, the summary, the session; the
 * devices only once More filters is open), and their latency measured one at a time with the session cookie
 * the console holds. bench/console.ts checks this list against what Chromium
 * really sends.
 */
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { API_PATHS, type ActionView } from '@quell/contracts';
import { listQuery } from '../packages/console/src/action-center/action-filters.ts';
import { withQuery } from '../packages/console/src/api/api-client.ts';
import { type LatencyStats, cpuMsOf, stats } from './http.ts';

/** What a tab of the Action center asks for before its first page of rows shows. */
export function firstPaintRequests(view: ActionView): string[] {
  return [API_PATHS.me, withQuery(API_PATHS.actions, listQuery(view, {}, undefined)), API_PATHS.summary];
}

/** A request's path with its query parameters in one order, to compare requests whatever order their parameters were written in. */
export function canonicalPath(path: string): string {
  const url = new URL(path, 'http://x');
  url.searchParams.sort();
  return url.pathname + url.search;
}

/** Each request of both tabs. */
export const FIRST_PAINT_PATHS = [...new Set([...firstPaintRequests('pending'), ...firstPaintRequests('history')])];

export interface FirstPaintResult {
  paths: Array<{ path: string; latency: LatencyStats; serverCpuMs: number }>;
  /** The slowest p99 of them: what the target judges. */
  worstP99: number;
  load: { start: number; end: number };
}

/** Signs in as the console does and returns the session cookie. */
export async function signIn(baseUrl: string, username: string, password: string): Promise<string> {
  const response = await fetch(baseUrl + API_PATHS.login, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }), signal: AbortSignal.timeout(30_000),
  });
  if (response.status !== 200) throw new Error(`sign-in answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  return response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]).join('; ');
}

/**
 * `samples` sequential requests of each path, one path after another (after an
 * unrecorded warm-up of each), from sending to the last body byte; the server's
 * CPU time per request is read from /proc around each path's run.
 */
export async function benchFirstPaint(server: { quellUrl: string; pid: number }, cookie: string, samples: number): Promise<FirstPaintResult> {
  const get = async (path: string): Promise<number> => {
    const t0 = performance.now();
    const response = await fetch(server.quellUrl + path, { headers: { accept: 'application/json', cookie }, signal: AbortSignal.timeout(30_000) });
    const body = await response.text();
    const ms = performance.now() - t0;
    if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${body.slice(0, 200)}`);
    return ms;
  };
  const start = loadavg()[0]!;
  const paths: FirstPaintResult['paths'] = [];
  for (const path of FIRST_PAINT_PATHS) {
    for (let i = 0; i < 50; i++) await get(path);
    const times: number[] = [];
    const cpuBefore = cpuMsOf(server.pid);
    for (let i = 0; i < samples; i++) times.push(await get(path));
    paths.push({ path, latency: stats(times), serverCpuMs: (cpuMsOf(server.pid) - cpuBefore) / samples });
  }
  return { paths, worstP99: Math.max(...paths.map((p) => p.latency.p99)), load: { start, end: loadavg()[0]! } };
}
