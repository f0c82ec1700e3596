/**
 * `npm run bench` (third part): the web console's Action center on 1,000,000
 * actions, in Debian's headless Chromium. A real `quell server` (SQLite) in
 * its own process on a store seeded as bench/run.ts seeds it; the console as
 * `npm run build:console` builds it. Measures the JavaScript the Action center
 * route loads (gzip bytes transferred), the time from navigating to
 * /action-center/history and to /action-center/pending until their first page
 * of rows is painted, next to a static page of the same server measured in the
 * same run, the API requests of that first load on their own, and a bulk
 * approval of a page of 50 as an analyst makes it. Writes its section of
 * bench/RESULTS.md.
 *
 * Smaller runs while working on it: BENCH_HISTORY_ROWS, BENCH_CONSOLE_RUNS
 * (bench/RESULTS.md is then left as it was); BENCH_CONSOLE_DUMP=<file> writes
 * every measured navigation's raw timings there as JSON.
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { type BrowserContext, type CDPSession, type Page, chromium } from 'playwright-core';
import { createServices, migrate, openStore, systemActor } from '@quell/server';
import { canonicalPath, firstPaintRequests } from './first-paint.ts';
import { startQuellServer } from '@quell/server/testing';
import { type SeedDevice, type SeedPlan, seedSqlite } from './seed.ts';
import { createTeardown } from './teardown.ts';

const env = process.env;
const FULL_HISTORY_ROWS = 1_000_000;
const HISTORY_ROWS = Number(env.BENCH_HISTORY_ROWS ?? FULL_HISTORY_ROWS);
/** 1 % of the History, all within the newest week, as bench/run.ts seeds. */
const PENDING_ROWS = Math.floor(HISTORY_ROWS / 100);
const DEVICES = 200;
const FULL_RUNS = 20;
const RUNS = Number(env.BENCH_CONSOLE_RUNS ?? FULL_RUNS);
const API_RUNS = 20;
/** The targets: kB of 1,000 bytes, as the console's build and browser test count them. */
const JS_BUDGET_BYTES = 250_000;
const FIRST_PAGE_TARGET_MS = 500;
/** Select the page, Approve, a comment, confirm. */
const BULK_APPROVE_TARGET_STEPS = 4;
/** The whole run is bounded: past this, everything is torn down and the run fails. */
const DEADLINE_MS = 12 * 60_000;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONSOLE_DIST = join(ROOT, 'packages/console/dist');
const RESULTS = join(ROOT, 'bench/RESULTS.md');
const PASSWORD = 'bench password, not secret';
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SEED_CHILD = '--seed-child';

/** The pages navigated to, and the element whose first appearance means the page shows what it is for. */
const HISTORY = { path: '/action-center/history', selector: 'tr[data-action-id]' };
const PENDING = { path: '/action-center/pending', selector: 'tr[data-action-id]' };
const DOCS = { path: '/api/docs', selector: '.opblock' };
const BARE = { path: '/favicon.svg', selector: 'svg' };
/** Earlier steps of the History tab's first load, each noted when its element first appears. */
const HISTORY_MILESTONES = {
  /** The signed-in shell (header) of the console: the session is known. */
  shell: '[aria-label="Signed in user"]',
  /** The first spinner: the route's, while its code loads (when it was not in by the time the session was known). */
  fallback: '[role="progressbar"]',
  /** The Action center's tabs: the route's page component committed. */
  page: '[role="tablist"]',
} as const;

const started = performance.now();
const log = (message: string) => process.stderr.write(`[console ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);

const { owe, runToEnd } = createTeardown(log, DEADLINE_MS);

// ---------------------------------------------------------------------------
// Statistics and formatting

/** Nearest-rank percentile, as bench/http.ts computes it. */
function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
interface Spread { p50: number; p95: number; max: number }
const spread = (samples: readonly number[]): Spread => ({ p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), max: Math.max(...samples) });
/** NaN (a step the page no longer has, e.g. after a change to the console) reads as n/a. */
const ms = (value: number) => (Number.isNaN(value) ? 'n/a' : `${value.toFixed(0)} ms`);
const ms1 = (value: number) => (Number.isNaN(value) ? 'n/a' : `${value.toFixed(1)} ms`);
const kB = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`;
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

// ---------------------------------------------------------------------------
// The console build

interface ConsoleBuild {
  /** How the dist that the server serves came to be. */
  origin: string;
  /** The build's own figures (vite plugin quell-route-sizes), when this run built it. */
  routeKb: number | null;
  entryKb: number | null;
}

/** index.html and every script and stylesheet it names are there. */
function distComplete(): boolean {
  const index = join(CONSOLE_DIST, 'index.html');
  if (!existsSync(index)) return false;
  const assets = [...readFileSync(index, 'utf8').matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
  return assets.length > 0 && assets.every((asset) => existsSync(join(CONSOLE_DIST, asset)));
}

/**
 * `npm run build:console`, as a deployment builds it. The console's sources may
 * be mid-edit by someone else: a failed build is retried, and after the last
 * try the dist already there is used if it is whole.
 */
async function buildConsole(): Promise<ConsoleBuild> {
  let lastError = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const result = spawnSync('npm', ['run', 'build:console'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env: { ...env, NODE_ENV: 'production' } });
    const output = `${result.stdout ?? ''}\n${result.stderr ?? ''}`;
    if (result.status === 0 && distComplete()) {
      const route = /action-center route, initial JS: ([\d.]+) kB gzip/.exec(output);
      const entry = /entry: ([\d.]+) kB gzip/.exec(output);
      return { origin: 'built by `npm run build:console` at the start of this run', routeKb: route ? Number(route[1]) : null, entryKb: entry ? Number(entry[1]) : null };
    }
    lastError = output.split('\n').filter((line) => /error|Error|failed/.test(line)).slice(0, 3).join(' / ') || `exit ${result.status}`;
    log(`console build attempt ${attempt} failed: ${lastError}`);
    if (attempt < 3) await new Promise((resolve) => setTimeout(resolve, 20_000));
  }
  if (!distComplete()) throw new Error(`the console does not build (${lastError}) and packages/console/dist is not whole`);
  log('using the console dist already in packages/console/dist');
  return { origin: `the dist already in packages/console/dist: \`npm run build:console\` failed three times in this run (${lastError})`, routeKb: null, entryKb: null };
}

// ---------------------------------------------------------------------------
// The seeded store

/** Bulk-loads in a child process, so that this one can report progress meanwhile. */
async function seedInChild(file: string, plan: SeedPlan): Promise<number> {
  const child = fork(fileURLToPath(import.meta.url), [SEED_CHILD, file], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = owe(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const total = plan.history + plan.pending;
  const progress = setInterval(() => {
    const done = rowsSoFar(file);
    if (done !== null) log(`seeded ${done.toLocaleString('en')} of ${total.toLocaleString('en')} actions (${((done / total) * 100).toFixed(0)} %)`);
  }, 5000);
  try {
    child.send(plan);
    return await new Promise<number>((resolve, reject) => {
      child.once('message', (message: { rows: number }) => resolve(message.rows));
      child.once('exit', (code) => reject(new Error(`the seeding process exited with ${code}`)));
    });
  } finally {
    clearInterval(progress);
    await stop();
  }
}

/** Rows committed so far, read from another connection (WAL lets it read while the loader writes). */
function rowsSoFar(file: string): number | null {
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    return (db.prepare('SELECT max(rowid) AS n FROM actions').get() as { n: number | null }).n ?? 0;
  } catch {
    return null;
  } finally {
    db?.close();
  }
}

/** Migrates, creates the devices through the service (as bench/run.ts does), then seeds the actions. */
async function seedStore(file: string): Promise<{ rows: number; seconds: number }> {
  const store = openStore({ dialect: 'sqlite', file });
  const devices: SeedDevice[] = [];
  try {
    await migrate(store);
    const services = createServices({ store });
    const admin = systemActor('bench setup');
    for (let i = 0; i < DEVICES; i++) {
      const platform = i % 10 < 6 ? 'windows' : i % 10 < 9 ? 'linux' : 'macos';
      const device = await services.devices.create(admin, { name: `host-${String(i).padStart(3, '0')}`, platform });
      devices.push({ id: device.id, name: device.name, platform });
    }
  } finally {
    await store.close();
  }
  log(`seeding ${(HISTORY_ROWS + PENDING_ROWS).toLocaleString('en')} actions (bench/seed.ts)`);
  const t0 = performance.now();
  const rows = await seedInChild(file, { history: HISTORY_ROWS, pending: PENDING_ROWS, devices, now: Date.now() });
  const seconds = (performance.now() - t0) / 1000;
  log(`seeded ${rows.toLocaleString('en')} actions in ${seconds.toFixed(1)} s`);
  return { rows, seconds };
}

// ---------------------------------------------------------------------------
// The server

interface QuellServer { url: string; child: ChildProcess }

/** `quell server` in its own process, as an operator starts it, on the seeded data dir. */
async function startQuell(dataDir: string): Promise<QuellServer> {
  const { child, url } = await startQuellServer({ ...env, QUELL_DATA_DIR: dataDir, QUELL_PORT: '0', QUELL_ADMIN_PASSWORD: PASSWORD, QUELL_LOG_LEVEL: 'warn' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  owe(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  });
  return { url, child };
}

/** The console the server holds in memory (read at its start): index.html and every asset it names answer 200. */
async function servedBuild(url: string): Promise<string> {
  const response = await fetch(url + HISTORY.path);
  const html = await response.text();
  if (response.status !== 200 || !html.includes('<div id="root">')) throw new Error(`the server does not serve the console (${response.status}): ${html.slice(0, 200)}`);
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
  for (const asset of assets) {
    const status = (await fetch(url + asset)).status;
    if (status !== 200) throw new Error(`the console's ${asset} answers ${status}`);
  }
  return /src="\/assets\/([^"]+\.js)"/.exec(html)?.[1] ?? 'unknown';
}

// ---------------------------------------------------------------------------
// In the browser

interface ResourceEntry { name: string; initiatorType: string; startTime: number; responseEnd: number; transferSize: number; encodedBodySize: number; decodedBodySize: number }
interface FrameScript { invokerType: string; sourceURL: string; startTime: number; duration: number; forcedStyleAndLayoutDuration: number }
/** A long animation frame (over 50 ms), with the scripts that ran in it. */
interface LongFrame { startTime: number; duration: number; styleAndLayoutStart: number; scripts: FrameScript[] }
interface PageMark {
  /** ms from navigation start until the element first was in the DOM. */
  dom: number;
  /** ms from navigation start until the frame after that (requestAnimationFrame, then a task). */
  painted: number;
  matches: number;
  /** Everything fetched before the element appeared. */
  resources: ResourceEntry[];
  frames: LongFrame[];
  /** ms from navigation start until each of HISTORY_MILESTONES first was in the DOM. */
  reached: Partial<Record<keyof typeof HISTORY_MILESTONES, number>>;
  navigation: { responseEnd: number } | null;
  /** Everything fetched by the time the first load's requests all ended (History cold runs only). */
  resourcesAfter?: ResourceEntry[];
}

/**
 * Injected into every document before its own scripts (through the DevTools
 * protocol, so the console's strict CSP does not apply to it): records when
 * the page's element first appears and what had been fetched by then. It only
 * watches the three paths measured here. The page's code is plain JavaScript
 * in a string because the root tsconfig has no DOM types.
 */
const WATCH_SCRIPT = `(() => {
  const selector = ${JSON.stringify({ [HISTORY.path]: HISTORY.selector, [PENDING.path]: PENDING.selector, [DOCS.path]: DOCS.selector, [BARE.path]: BARE.selector })}[location.pathname];
  if (!selector || window !== window.top) return;
  const milestones = location.pathname.startsWith('/action-center/') ? ${JSON.stringify(HISTORY_MILESTONES)} : {};
  const reached = {};
  const resources = () => performance.getEntriesByType('resource').map((e) => ({
    name: e.name, initiatorType: e.initiatorType, startTime: e.startTime, responseEnd: e.responseEnd,
    transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize,
  }));
  // Not 'buffered': with it Chromium 156 silently reports nothing. Nothing is missed: this runs before the page's own scripts.
  const frames = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        frames.push({
          startTime: e.startTime, duration: e.duration, styleAndLayoutStart: e.styleAndLayoutStart,
          scripts: e.scripts.map((s) => ({ invokerType: s.invokerType, sourceURL: s.sourceURL, startTime: s.startTime, duration: s.duration, forcedStyleAndLayoutDuration: s.forcedStyleAndLayoutDuration })),
        });
      }
    }).observe({ type: 'long-animation-frame' });
  } catch {}
  let seen = false;
  const observer = new MutationObserver(() => {
    for (const [name, css] of Object.entries(milestones)) if (!(name in reached) && document.querySelector(css)) reached[name] = performance.now();
    if (seen || !document.querySelector(selector)) return;
    seen = true;
    observer.disconnect();
    const dom = performance.now();
    const matches = document.querySelectorAll(selector).length;
    const before = resources();
    const nav = performance.getEntriesByType('navigation')[0];
    requestAnimationFrame(() => setTimeout(() => {
      window.__quellBench = {
        dom, painted: performance.now(), matches, resources: before, frames, reached,
        navigation: nav ? { responseEnd: nav.responseEnd } : null,
      };
    }, 0));
  });
  observer.observe(document, { childList: true, subtree: true });
})();`;

interface Browser { context: BrowserContext; page: Page; cdp: CDPSession; version: string }

async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'quell-console-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1440, height: 900 } });
  owe(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  await context.addInitScript({ content: WATCH_SCRIPT });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
  const cdp = await context.newCDPSession(page);
  const { product } = (await cdp.send('Browser.getVersion')) as { product: string };
  return { context, page, cdp, version: product.replace(/^(Headless)?Chrome\//, 'Chromium ') };
}

/**
 * One measured navigation from about:blank: with `cold`, the browser's HTTP
 * cache (and the V8 code cache kept in it) is emptied first, as on a first
 * visit; the session cookie stays.
 */
async function measure(browser: Browser, url: string, cold: boolean): Promise<PageMark> {
  const { page, cdp } = browser;
  await page.goto('about:blank');
  if (cold) await cdp.send('Network.clearBrowserCache');
  await page.goto(url, { waitUntil: 'commit' });
  // A function, not a string: a string predicate is run through eval, which the console's CSP refuses.
  const handle = await page.waitForFunction(() => (globalThis as { __quellBench?: unknown }).__quellBench, undefined, { timeout: 30_000, polling: 25 });
  return (await handle.jsonValue()) as PageMark;
}

/** Waits for the first load's other request (the pending summary) to end, and returns every resource entry. */
async function firstLoadSettled(page: Page): Promise<ResourceEntry[]> {
  // No named helpers inside: tsx would wrap them in a __name() call that does not exist in the page.
  const handle = await page.waitForFunction((paths) => {
    const entries = (performance.getEntriesByType('resource') as unknown as ResourceEntry[]).map((e) => ({
      name: e.name, initiatorType: e.initiatorType, startTime: e.startTime, responseEnd: e.responseEnd,
      transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize,
    }));
    return paths.every((path) => entries.some((e) => new URL(e.name).pathname === path)) ? entries : null;
  }, ['/api/actions/summary'], { timeout: 30_000, polling: 25 });
  return (await handle.jsonValue()) as ResourceEntry[];
}

/**
 * Approves a first Pending page of 50 as an analyst does, counting the user's
 * actions: select the page, Approve, a comment, confirm; then waits for the
 * message that says what was done. A decision covers one action type, so the
 * page is the Pending tab of the most frequent type (`?type=`, as its filter
 * or a shared link sets it). Run last: it changes the store.
 */
async function bulkApprove(browser: Browser, url: string): Promise<{ type: string; steps: number; labels: string[]; approved: number; outcomeMs: number }> {
  const { page } = browser;
  const summary = (await (await page.request.get(`${url}/api/actions/summary`)).json()) as { pendingByType: Array<{ type: string; count: number }> };
  const type = summary.pendingByType.reduce((most, t) => (t.count > most.count ? t : most)).type;
  await page.goto(`${url}${PENDING.path}?type=${type}`);
  await page.locator(PENDING.selector).first().waitFor();
  const dialog = page.getByRole('dialog').filter({ has: page.getByLabel('Comment') });
  const steps: Array<[string, () => Promise<void>]> = [
    ['select the page', () => page.getByRole('checkbox', { name: /^Select all .* on this page$/ }).check()],
    ['Approve (50)', () => page.getByRole('button', { name: 'Approve (50)' }).click()],
    ['a comment', () => dialog.getByLabel('Comment').fill('Bulk approval, bench')],
    ['confirm', () => dialog.getByRole('button', { name: 'Approve', exact: true }).click()],
  ];
  for (const [, step] of steps) await step();
  const confirmed = performance.now();
  const outcome = await page.getByRole('status', { name: 'Decision outcome' }).textContent({ timeout: 60_000 });
  const outcomeMs = performance.now() - confirmed;
  return { type, steps: steps.length, labels: steps.map(([label]) => label), approved: Number(/^Approved (\d+) /.exec(outcome ?? '')?.[1] ?? 0), outcomeMs };
}

async function signIn(browser: Browser, url: string): Promise<void> {
  const { page } = browser;
  await page.goto(url + HISTORY.path);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator(HISTORY.selector).first().waitFor({ timeout: 60_000 });
}

/** The first load's time line, from the page's own Navigation, Resource and Long Animation Frame Timing. */
interface Timeline {
  htmlReceived: number;
  jsLoaded: number;
  meAnswered: number;
  routeChunkLoaded: number;
  shellInDom: number;
  fallbackInDom: number;
  pageInDom: number;
  listSent: number;
  listAnswered: number;
  summaryAnswered: number;
  rowsInDom: number;
  painted: number;
  listInBrowser: number;
  /** Main thread before the rows appeared, in long animation frames (over 50 ms each). */
  longFrames: number;
  longFrameMs: number;
  scriptMs: number;
  moduleEvaluationMs: number;
  styleAndLayoutMs: number;
}

function timelineOf(mark: PageMark, origin: string): Timeline {
  const all = mark.resourcesAfter ?? mark.resources;
  const find = (test: (path: string) => boolean): ResourceEntry | undefined => all.find((r) => r.name.startsWith(origin) && test(r.name.slice(origin.length)));
  const end = (entry: ResourceEntry | undefined) => entry?.responseEnd ?? Number.NaN;
  const list = find((path) => path.startsWith('/api/actions?') && path.includes('view=history'));
  const scripts = mark.resources.filter((r) => r.name.endsWith('.js'));
  const frames = mark.frames.filter((f) => f.startTime < mark.dom);
  const ran = frames.flatMap((f) => f.scripts).filter((s) => s.startTime < mark.dom);
  const sum = (values: number[]) => values.reduce((total, x) => total + x, 0);
  return {
    htmlReceived: mark.navigation?.responseEnd ?? Number.NaN,
    jsLoaded: Math.max(...scripts.map((r) => r.responseEnd)),
    meAnswered: end(find((path) => path === '/api/auth/me')),
    routeChunkLoaded: end(find((path) => path.startsWith('/assets/action-center.page'))),
    shellInDom: mark.reached.shell ?? Number.NaN,
    fallbackInDom: mark.reached.fallback ?? Number.NaN,
    pageInDom: mark.reached.page ?? Number.NaN,
    listSent: list?.startTime ?? Number.NaN,
    listAnswered: end(list),
    summaryAnswered: end(find((path) => path.startsWith('/api/actions/summary'))),
    rowsInDom: mark.dom,
    painted: mark.painted,
    listInBrowser: list ? list.responseEnd - list.startTime : Number.NaN,
    longFrames: frames.length,
    longFrameMs: sum(frames.map((f) => f.duration)),
    scriptMs: sum(ran.map((s) => s.duration)),
    moduleEvaluationMs: sum(ran.filter((s) => s.invokerType === 'module-script').map((s) => s.duration)),
    styleAndLayoutMs: sum(frames.map((f) => (f.styleAndLayoutStart > 0 ? f.startTime + f.duration - f.styleAndLayoutStart : 0))) + sum(ran.map((s) => s.forcedStyleAndLayoutDuration)),
  };
}

const median = (samples: readonly number[]) => percentile(samples.filter((x) => !Number.isNaN(x)), 0.5);

// ---------------------------------------------------------------------------
// The API on its own

/** The server process's CPU time so far (user and system), in ms, from /proc. */
function serverCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(stat[11]) + Number(stat[12])) * 10;
}

/** Each request alone, sequentially, with the browser's session cookie: time to the last body byte, and the server's CPU per request. */
async function apiAlone(url: string, paths: readonly string[], cookie: string, pid: number): Promise<Map<string, Spread & { cpuMs: number }>> {
  const results = new Map<string, Spread & { cpuMs: number }>();
  for (const path of paths) {
    const once = async (): Promise<number> => {
      const t0 = performance.now();
      const response = await fetch(url + path, { headers: { accept: 'application/json', cookie }, signal: AbortSignal.timeout(30_000) });
      const body = await response.text();
      const elapsed = performance.now() - t0;
      if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${body.slice(0, 200)}`);
      return elapsed;
    };
    await once();
    const samples: number[] = [];
    const cpuBefore = serverCpuMs(pid);
    for (let i = 0; i < API_RUNS; i++) samples.push(await once());
    results.set(path, { ...spread(samples), cpuMs: (serverCpuMs(pid) - cpuBefore) / API_RUNS });
  }
  return results;
}

// ---------------------------------------------------------------------------

function revision(): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  return git('status', '--porcelain', '--untracked-files=no') === '' ? head : `${head} with uncommitted changes`;
}

function writeSection(section: string): void {
  const current = readFileSync(RESULTS, 'utf8');
  const marked = /<!-- console:start -->[\s\S]*<!-- console:end -->/;
  writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, () => section) : `${current.trimEnd()}\n\n${section}\n`);
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!;
  log('building the console');
  const build = await buildConsole();
  if (build.routeKb !== null) log(`the build reports ${build.routeKb} kB gzip for the Action center route`);

  const dataDir = mkdtempSync(join(tmpdir(), 'quell-console-bench-'));
  owe(async () => rmSync(dataDir, { recursive: true, force: true }));
  const seed = await seedStore(join(dataDir, 'quell.sqlite'));

  const server = await startQuell(dataDir);
  const entryFile = await servedBuild(server.url);
  log(`server at ${server.url}, console ${entryFile}`);

  const browser = await launchBrowser();
  log(`${browser.version}: signing in as admin`);
  await signIn(browser, server.url);

  // Warm-up round, not recorded; it also shows which API requests the first load makes.
  const apiRequests: string[] = [];
  const onRequest = (request: { url(): string }) => {
    const path = request.url().slice(server.url.length);
    if (request.url().startsWith(server.url) && path.startsWith('/api/')) apiRequests.push(path);
  };
  browser.page.on('request', onRequest);
  const warmUp = await measure(browser, server.url + HISTORY.path, true);
  browser.page.off('request', onRequest);
  if (warmUp.matches === 0) throw new Error('the History tab showed no rows');
  const listPath = apiRequests.find((path) => path.startsWith('/api/actions?'));
  if (!listPath) throw new Error(`the console requested no History page; it requested ${apiRequests.join(', ')}`);
  log(`first load requests: ${apiRequests.join(', ')}`);
  // bench/run.ts measures these requests on both stores as bench/first-paint.ts builds them: they must be what the console sends.
  const expected = firstPaintRequests('history');
  const asSet = (paths: readonly string[]) => [...new Set(paths.map(canonicalPath))].sort().join(' ');
  if (asSet(apiRequests) !== asSet(expected)) {
    throw new Error(`the console's first load requested ${apiRequests.join(', ')}; bench/first-paint.ts has ${expected.join(', ')}: bring it up to date`);
  }
  await measure(browser, server.url + HISTORY.path, false);
  await measure(browser, server.url + DOCS.path, true);
  await measure(browser, server.url + DOCS.path, false);
  await measure(browser, server.url + BARE.path, true);

  const samples = {
    historyCold: [] as PageMark[], historyWarm: [] as PageMark[], pendingCold: [] as PageMark[], pendingWarm: [] as PageMark[],
    docsCold: [] as PageMark[], docsWarm: [] as PageMark[], bare: [] as PageMark[],
  };
  let pagerText: string | null = null;
  /** The server's CPU time spent on each tab's navigations (the first load's every request), cold and warm. */
  const cpu = { history: 0, pending: 0 };
  const pid = server.child.pid!;
  const timed = async <T>(tab: keyof typeof cpu, work: () => Promise<T>): Promise<T> => {
    const before = serverCpuMs(pid);
    const result = await work();
    cpu[tab] += serverCpuMs(pid) - before;
    return result;
  };
  for (let run = 1; run <= RUNS; run++) {
    samples.docsCold.push(await measure(browser, server.url + DOCS.path, true));
    samples.docsWarm.push(await measure(browser, server.url + DOCS.path, false));
    samples.bare.push(await measure(browser, server.url + BARE.path, true));
    const cold = await timed('history', async () => {
      const mark = await measure(browser, server.url + HISTORY.path, true);
      mark.resourcesAfter = await firstLoadSettled(browser.page);
      return mark;
    });
    samples.historyCold.push(cold);
    const rows = await browser.page.locator(HISTORY.selector).count();
    if (rows !== 50) throw new Error(`run ${run}: the first page holds ${rows} rows, not 50`);
    if (run === RUNS) pagerText = await browser.page.getByText(/^1–50 of /).first().textContent();
    samples.historyWarm.push(await timed('history', () => measure(browser, server.url + HISTORY.path, false)));
    samples.pendingCold.push(await timed('pending', () => measure(browser, server.url + PENDING.path, true)));
    const pendingRows = await browser.page.locator(PENDING.selector).count();
    if (pendingRows !== 50) throw new Error(`run ${run}: the first Pending page holds ${pendingRows} rows, not 50`);
    samples.pendingWarm.push(await timed('pending', () => measure(browser, server.url + PENDING.path, false)));
    log(`run ${run}/${RUNS}: History ${ms(cold.painted)} cold, ${ms(samples.historyWarm.at(-1)!.painted)} warm; Pending ${ms(samples.pendingCold.at(-1)!.painted)} cold; /api/docs ${ms(samples.docsCold.at(-1)!.painted)} cold`);
  }
  const loadAfterRuns = loadavg()[0]!;
  const beside = (tab: keyof typeof cpu) => `load ${loadAfterRuns.toFixed(2)}; server CPU ${(cpu[tab] / (2 * RUNS)).toFixed(1)} ms per navigation (all its API requests)`;
  if (env.BENCH_CONSOLE_DUMP) writeFileSync(env.BENCH_CONSOLE_DUMP, JSON.stringify(samples, null, 1));
  const historyTotal = Number(/of ([\d,]+)/.exec(pagerText ?? '')?.[1]?.replaceAll(',', '') ?? 0);

  // The JS the Action center route loaded before its first page showed, on a cold first navigation.
  const jsOf = (mark: PageMark) => mark.resources.filter((r) => r.name.startsWith(`${server.url}/assets/`) && r.name.endsWith('.js'));
  const jsSets = samples.historyCold.map(jsOf);
  const js = jsSets.reduce((largest, set) => (set.reduce((s, r) => s + r.encodedBodySize, 0) > largest.reduce((s, r) => s + r.encodedBodySize, 0) ? set : largest));
  const jsGzip = js.reduce((sum, r) => sum + r.encodedBodySize, 0);
  const jsRaw = js.reduce((sum, r) => sum + r.decodedBodySize, 0);
  const jsWire = js.reduce((sum, r) => sum + r.transferSize, 0);
  // The server gzips files over 1 kB only (console.routes.ts).
  const allCompressed = js.every((r) => r.decodedBodySize <= 1024 || r.encodedBodySize < r.decodedBodySize);
  const jsFiles = js.map((r) => `${r.name.slice(`${server.url}/assets/`.length)} ${kB(r.encodedBodySize)}`).join(', ');
  const warmJsWire = samples.historyWarm.map((m) => jsOf(m).reduce((sum, r) => sum + r.transferSize, 0));

  const painted = (marks: PageMark[]) => spread(marks.map((m) => m.painted));
  const historyCold = painted(samples.historyCold);
  const historyWarm = painted(samples.historyWarm);
  const historyColdDom = spread(samples.historyCold.map((m) => m.dom));
  const pendingCold = painted(samples.pendingCold);
  const pendingWarm = painted(samples.pendingWarm);
  const docsCold = painted(samples.docsCold);
  const docsWarm = painted(samples.docsWarm);
  const bare = painted(samples.bare);
  const timelines = samples.historyCold.map((m) => timelineOf(m, server.url));
  const t = (key: keyof Timeline) => median(timelines.map((x) => x[key]));
  const listInBrowser = spread(timelines.map((x) => x.listInBrowser));
  // The route's spinner shows only when its code was not in by the time the session was known.
  const spinners = timelines.filter((x) => x.fallbackInDom < x.pageInDom);
  const spinnerWait = median(spinners.map((x) => x.pageInDom - x.fallbackInDom));

  log('API requests of the first load, each on its own');
  const cookie = (await browser.context.cookies(server.url)).map((c) => `${c.name}=${c.value}`).join('; ');
  const uniqueApi = [...new Set(apiRequests)];
  // The same page without its count, to show what counting the matches costs.
  const uncounted = new URL(listPath, server.url);
  uncounted.searchParams.delete('withTotal');
  const uncountedPath = uncounted.pathname + uncounted.search;
  const api = await apiAlone(server.url, [...uniqueApi, uncountedPath], cookie, server.child.pid!);
  const loadAfterApi = loadavg()[0]!;
  const perRequest = (path: string) => `; load ${loadAfterApi.toFixed(2)}, server CPU ${ms1(api.get(path)!.cpuMs)} per request`;
  const listAlone = api.get(listPath)!;
  const listUncounted = api.get(uncountedPath)!;
  log('a bulk approval of the first Pending page, as an analyst makes it');
  const bulk = await bulkApprove(browser, server.url);
  const loadAtEnd = loadavg()[0]!;

  const jsOk = jsGzip <= JS_BUDGET_BYTES;
  const pageOk = historyCold.p95 <= FIRST_PAGE_TARGET_MS;
  const pendingOk = pendingCold.p95 <= FIRST_PAGE_TARGET_MS;
  const bulkOk = bulk.steps <= BULK_APPROVE_TARGET_STEPS && bulk.approved === 50;
  const row = (label: string, target: string, result: string) => `| ${label} | ${target} | ${result} |`;
  const p50p95 = (s: Spread) => `${ms(s.p50)} / ${ms(s.p95)}`;
  const section = [
    '<!-- console:start -->',
    '## Web console: the Action center on 1,000,000 actions (headless Chromium)',
    '',
    `Produced by \`bench/console.ts\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${browser.version} (Debian's \`${CHROMIUM}\`, headless).`,
    `1-minute load average ${loadAtStart.toFixed(2)} when the run started, ${loadAtEnd.toFixed(2)} when it ended. Code: ${revision()}; console \`${entryFile}\`, ${build.origin}.`,
    `A real \`quell server\` on SQLite in its own process, seeded with ${seed.rows.toLocaleString('en')} actions (${HISTORY_ROWS.toLocaleString('en')} in History; bench/seed.ts as bench/run.ts uses it, 200 devices) in ${seed.seconds.toFixed(0)} s;`,
    `Chromium signed in as \`admin\` over loopback, no network throttling, viewport 1440×900. ${RUNS} runs after a warm-up round; every navigation starts from about:blank.`,
    '',
    '| measure | target | result |',
    '|---|---|---|',
    row(`**initial JS of the Action center route**: gzip bytes transferred on a cold first navigation to \`${HISTORY.path}\`, until its first page showed (${js.length} files)`, '≤ 250 kB', `**${kB(jsGzip)}** (${verdict(jsOk)})`),
    row('   the same scripts uncompressed; on the wire with headers', '', `${kB(jsRaw)}; ${kB(jsWire)}${allCompressed ? '' : ' (**not all were gzip-encoded**)'}`),
    row('   the build\'s own figure (vite plugin `quell-route-sizes`)', '', build.routeKb === null ? 'not built in this run' : `${build.routeKb.toFixed(1)} kB (entry alone ${build.entryKb?.toFixed(1) ?? '?'} kB)`),
    row(`History first page painted (${HISTORY.selector} in the DOM, then the next frame), **cold** browser cache, p50`, '', ms(historyCold.p50)),
    row('   **p95**', `≤ ${FIRST_PAGE_TARGET_MS} ms`, `**${ms(historyCold.p95)}** (${verdict(pageOk)}); max ${ms(historyCold.max)}; ${beside('history')}`),
    row('   rows in the DOM (before that frame), p50 / p95', '', p50p95(historyColdDom)),
    row('History first page painted, **warm** cache (scripts from the HTTP cache), p50 / p95', '', `${p50p95(historyWarm)} (JS over the wire: ${kB(Math.max(...warmJsWire))})`),
    row(`Pending first page painted (${PENDING.selector} in the DOM, then the next frame), **cold** browser cache, p50`, '', ms(pendingCold.p50)),
    row('   **p95**', `≤ ${FIRST_PAGE_TARGET_MS} ms`, `**${ms(pendingCold.p95)}** (${verdict(pendingOk)}); max ${ms(pendingCold.max)}; ${beside('pending')}`),
    row('Pending first page painted, **warm** cache, p50 / p95', '', p50p95(pendingWarm)),
    row(`**bulk approval of a page of 50** pending actions (the Pending tab of one type, \`?type=${bulk.type}\`): ${bulk.labels.join(', ')}`, `≤ ${BULK_APPROVE_TARGET_STEPS} user actions`, `**${bulk.steps}** (${verdict(bulkOk)}); ${bulk.approved} approved, said in ${ms(bulk.outcomeMs)} after the last step`),
    row(`baseline: Swagger UI at \`${DOCS.path}\` of the same server until its operations (\`${DOCS.selector}\`) are painted, cold cache, p50 / p95`, '', p50p95(docsCold)),
    row('   warm cache, p50 / p95', '', p50p95(docsWarm)),
    row('**ratio** History first page / Swagger UI, p50, cold · warm', '', `**${(historyCold.p50 / docsCold.p50).toFixed(2)}** · **${(historyWarm.p50 / docsWarm.p50).toFixed(2)}**`),
    row(`bare navigation: \`${BARE.path}\` (a static file of the same server) until painted, cold, p50 / p95`, '', p50p95(bare)),
    row(`\`GET ${listPath}\` on its own (the page the console asks for; Node, session cookie, ${API_RUNS} sequential), p50 / p95`, '', `${ms1(listAlone.p50)} / ${ms1(listAlone.p95)}${perRequest(listPath)}`),
    row(`   the same page without its count (\`GET ${uncountedPath}\`), p50 / p95`, '', `${ms1(listUncounted.p50)} / ${ms1(listUncounted.p95)}${perRequest(uncountedPath)}`),
    row('   the counted request within the cold page loads (browser resource timing, alongside the requests below), p50 / p95', '', `${ms1(listInBrowser.p50)} / ${ms1(listInBrowser.p95)}`),
    ...uniqueApi.filter((path) => path !== listPath).map((path) => row(`\`GET ${path}\` on its own, p50 / p95`, '', `${ms1(api.get(path)!.p50)} / ${ms1(api.get(path)!.p95)}${perRequest(path)}`)),
    '',
    `**Where the time goes** (median of the ${RUNS} cold runs, ms from navigation start, from the page's own Navigation and Resource Timing):`,
    `HTML received ${ms(t('htmlReceived'))} → \`/api/auth/me\` answered ${ms(t('meAnswered'))} → signed-in shell in the DOM ${ms(t('shellInDom'))}`,
    `→ route chunk \`action-center.page\` loaded ${ms(t('routeChunkLoaded'))} (all scripts ${ms(t('jsLoaded'))}) → Action center page committed ${ms(t('pageInDom'))} (its code is preloaded alongside the session: ${spinners.length === 0 ? 'in no run did the route show its spinner' : `in ${spinners.length} of ${RUNS} runs it was still loading when the session was known, and the route's spinner showed for ${ms(spinnerWait)}`}) → History page requested ${ms(t('listSent'))}, answered ${ms(t('listAnswered'))}`,
    `(summary answered ${ms(t('summaryAnswered'))}) → rows in the DOM ${ms(t('rowsInDom'))} → painted ${ms(t('painted'))}.`,
    `Long animation frames (over 50 ms each) before the rows appeared: ${t('longFrames').toFixed(0)}, ${ms(t('longFrameMs'))} in all; in them script ${ms(t('scriptMs'))}`,
    `(module evaluation ${ms(t('moduleEvaluationMs'))}, the rest callbacks and promise jobs: React rendering), style and layout ${ms(t('styleAndLayoutMs'))}.`,
    `Scripts loaded before the first page showed: ${jsFiles}. The pager then read “${pagerText ?? '?'}”${historyTotal > HISTORY_ROWS ? ' (more than were seeded: the server\'s expiry job moved pending actions past their deadline into History)' : ''}.`,
    '',
    'The time is measured in the page: a script injected before the page\'s own (through the DevTools protocol, outside its CSP) watches the DOM',
    `and notes \`performance.now()\` (from navigation start) when the first \`${HISTORY.selector}\` row appears, then again after the next animation`,
    'frame. *Cold* empties Chromium\'s HTTP cache (which also holds V8\'s code cache) before the navigation, as on a first visit; the session cookie',
    'stays, so the console goes straight to the tab. Each round runs the Swagger UI page cold and warm, the bare file, then the History tab',
    'cold and warm, then the Pending tab cold and warm. The JS figure is the sum of `encodedBodySize` (the gzip body as received) of every script loaded before the rows appeared.',
    '<!-- console:end -->',
  ].join('\n');

  process.stdout.write(`\n${section}\n`);
  if (HISTORY_ROWS === FULL_HISTORY_ROWS && RUNS >= FULL_RUNS) {
    writeSection(section);
    process.stdout.write(`\nWrote its section of ${RESULTS}\n`);
  } else {
    process.stdout.write('\nNot a full-size run: bench/RESULTS.md left as it was.\n');
  }
}

if (process.argv[2] === SEED_CHILD) {
  // The seeding process: one plan in, the row count out.
  process.once('message', (plan: SeedPlan) => {
    const rows = seedSqlite(process.argv[3]!, plan);
    process.send!({ rows }, () => process.exit(0));
  });
} else {
  await runToEnd(main);
}
