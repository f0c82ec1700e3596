/**
 * `npm test`: the whole suite as two Vitest runs side by side, after the
 * machine has been provisioned once (vitest.global-setup.ts):
 *
 * - `host`: the agent's suites and the console in Chromium, one file at a
 *   time (they share this host's network namespaces, routes and containers);
 * - `isolated`: everything else (each file has its own database and port),
 *   one file at a time beside it, so the two runs keep to the machine's two cores.
 *
 * Each line of output is prefixed with its run's name. Options are passed to
 * both runs; `--outputFile.json=<file>` receives both runs' reports merged.
 * With a file filter (any argument that is not an option) it is one plain
 * `vitest run` of the files named.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import setup from '../vitest.global-setup.ts';

const VITEST = new URL('../node_modules/vitest/vitest.mjs', import.meta.url).pathname;
const PROJECTS = ['host', 'isolated'] as const;
const JSON_OUTPUT = '--outputFile.json=';

const args = process.argv.slice(2);

if (args.some((arg) => !arg.startsWith('-'))) {
  const { status } = spawnSync(process.execPath, [VITEST, 'run', ...args], { stdio: 'inherit' });
  process.exit(status ?? 1);
}

setup();
const jsonFile = args.find((arg) => arg.startsWith(JSON_OUTPUT))?.slice(JSON_OUTPUT.length);
const reportOf = (project: string) => `${jsonFile}.${project}.json`;

/** One project's run, its output prefixed line by line; resolves to its exit code. */
function run(project: (typeof PROJECTS)[number]): Promise<number> {
  const projectArgs = args.map((arg) => (arg.startsWith(JSON_OUTPUT) ? `${JSON_OUTPUT}${reportOf(project)}` : arg));
  const child = spawn(process.execPath, [VITEST, 'run', '--project', project, ...projectArgs], {
    // The global setup ran above; the isolated project takes one worker beside the host's one.
    env: { ...process.env, QUELL_TEST_PROVISIONED: '1', QUELL_TEST_ISOLATED_WORKERS: '1', ...(process.stdout.isTTY ? { FORCE_COLOR: '1' } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `${project.padEnd(8)} │ `;
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]] as const) {
    createInterface({ input: stream }).on('line', (line) => out.write(`${prefix}${line}\n`));
  }
  return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
}

const codes = await Promise.all(PROJECTS.map(run));

if (jsonFile !== undefined) {
  // Counts add up, files follow one another: the shape one run's report has.
  const reports = PROJECTS.map((project) => JSON.parse(readFileSync(reportOf(project), 'utf8')) as Record<string, unknown>);
  const merged: Record<string, unknown> = { ...reports[0] };
  for (const key of Object.keys(merged).filter((k) => k.startsWith('num'))) merged[key] = reports.reduce((sum, r) => sum + Number(r[key] ?? 0), 0);
  merged.success = reports.every((r) => r.success === true);
  merged.startTime = Math.min(...reports.map((r) => Number(r.startTime)));
  merged.testResults = reports.flatMap((r) => r.testResults as unknown[]);
  writeFileSync(jsonFile, JSON.stringify(merged));
  for (const project of PROJECTS) rmSync(reportOf(project), { force: true });
}

process.exit(codes.some((code) => code !== 0) ? 1 : 0);
