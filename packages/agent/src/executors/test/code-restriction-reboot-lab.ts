import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemRunner } from '../../runner.ts';
import { executionContext } from './recording-runner.ts';
import { type CodeRestrictionSnapshot, parseMountinfo, removeCodeRestriction, restrictCodeExecutionIn, topmostAt } from '../restrict-code.linux.ts';

/**
 * Undo of a code restriction across a reboot, for real: each phase runs in
 * a private mount namespace of its own, and a new namespace is what a reboot
 * looks like to the mounts (new mount ids, tmpfs made afresh, bind mounts
 * gone, files on disk kept). restrict-code.linux.test.ts runs
 *
 *   unshare -m --propagation private node --import tsx code-restriction-reboot-lab.ts PHASE BASE [REPORT FORMAT]
 *
 * - `first`: sets up the device under BASE, restricts, and prints the
 *   snapshot (through JSON, as the journal keeps it), the same record as the
 *   previous version wrote it (mount ids and mountinfo lines), and the ids.
 * - `after-reboot REPORT new|legacy`: takes the `first` report from the
 *   file REPORT, makes sure the mounts get ids the first boot did not use,
 *   sets the device up again, restricts again as the agent does at start
 *   (throwing that snapshot away), then undoes the original action with the
 *   snapshot from the first boot in the given format.
 * - `legacy-same-boot`: restricts and undoes with the previous version's
 *   record without a reboot in between.
 */

const [phase, base = '', reportFile, format] = process.argv.slice(2);
if (!phase || !base) throw new Error('usage: code-restriction-reboot-lab.ts first|after-reboot|legacy-same-boot BASE [REPORT new|legacy]');

const restrictContext = () => executionContext(systemRunner, { type: 'restrict_code_execution', entity: { name: 'device' } });
const removeContext = (snapshot: unknown) =>
  executionContext(systemRunner, { type: 'remove_code_restriction', entity: { name: 'device' } }, { priorSnapshot: JSON.parse(JSON.stringify(snapshot)) });

const mountinfo = (): string => readFileSync('/proc/self/mountinfo', 'utf8');
const mount = (...args: string[]): void => void execFileSync('mount', args);

const dirs = {
  tmpfs: join(base, 'tmpfs'),
  plain: join(base, 'plain'),
  nosuidNoatime: join(base, 'nosuid-noatime'),
  locked: join(base, 'locked'),
  missing: join(base, 'missing'),
};
type Name = keyof typeof dirs;
const names = Object.keys(dirs) as Name[];
const runnable = ['tmpfs', 'plain', 'nosuidNoatime'] as const;
const directories = names.map((name) => dirs[name]);

/** What every boot does: the tmpfs mounts come up fresh (and empty); the plain directory is just a directory on disk. */
function bootDevice(): void {
  for (const dir of [dirs.tmpfs, dirs.plain, dirs.nosuidNoatime, dirs.locked]) mkdirSync(dir, { recursive: true });
  mount('-t', 'tmpfs', '-o', 'size=4m,mode=1777', 'quelltest', dirs.tmpfs);
  mount('-t', 'tmpfs', '-o', 'size=4m,mode=1777,nosuid,noatime', 'quelltest', dirs.nosuidNoatime);
  mount('-t', 'tmpfs', '-o', 'size=4m,mode=1777,noexec,nosuid,nodev', 'quelltest', dirs.locked);
  for (const name of runnable) {
    const script = join(dirs[name], 'dropped.sh');
    if (!existsSync(script)) writeFileSync(script, '#!/bin/sh\necho ran\n');
    chmodSync(script, 0o755);
  }
}

function tryRun(dir: string): string {
  try {
    return execFileSync(join(dir, 'dropped.sh'), { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}
const attempts = () => Object.fromEntries(runnable.map((name) => [name, tryRun(dirs[name])]));

/** The mounts at each directory by what a reboot keeps: root, source, type and per-mount options, bottom first. */
const state = () => {
  const mounts = parseMountinfo(mountinfo());
  const at = (dir: string) => mounts.filter((m) => m.mountPoint === dir).map(({ root, source, fsType, options }) => ({ root, source, fsType, options }));
  return Object.fromEntries(names.map((name) => [name, at(dirs[name])])) as Record<Name, ReturnType<typeof at>>;
};
/** The kernel's id of the topmost mount at each directory. */
const ids = () => {
  const mounts = parseMountinfo(mountinfo());
  return Object.fromEntries(names.map((name) => [name, topmostAt(mounts, dirs[name])?.id ?? null])) as Record<Name, number | null>;
};

/** The record as the previous version wrote it: the restricted mount by id, the mountinfo lines found at the directory. */
function legacySnapshot(snapshot: CodeRestrictionSnapshot, before: string, restricted: string) {
  const prior = parseMountinfo(before);
  const after = parseMountinfo(restricted);
  return {
    directories: snapshot.directories.map((d) => ({
      directory: d.directory,
      outcome: d.outcome,
      mountId: d.mount ? topmostAt(after, d.directory)!.id : null,
      priorOptions: d.mount?.priorOptions ?? null,
      priorLines: prior.filter((m) => m.mountPoint === d.directory).map((m) => m.line),
    })),
  };
}

async function restrictAndKeep() {
  bootDevice();
  const before = mountinfo();
  const stateBefore = state();
  const restricted = await restrictCodeExecutionIn(directories)(restrictContext());
  const snapshot = JSON.parse(JSON.stringify(restricted.snapshot)) as CodeRestrictionSnapshot;
  return { before, stateBefore, snapshot, legacy: legacySnapshot(snapshot, before, mountinfo()), idsRestricted: ids(), runsRestricted: attempts() };
}

export interface FirstBootReport {
  dirs: Record<Name, string>;
  stateBefore: ReturnType<typeof state>;
  snapshot: CodeRestrictionSnapshot;
  legacy: unknown;
  idsRestricted: Record<Name, number | null>;
  runsRestricted: Record<string, string>;
}

async function firstBoot(): Promise<FirstBootReport> {
  const { stateBefore, snapshot, legacy, idsRestricted, runsRestricted } = await restrictAndKeep();
  return { dirs, stateBefore, snapshot, legacy, idsRestricted, runsRestricted };
}

async function afterReboot() {
  if (!reportFile || (format !== 'new' && format !== 'legacy')) throw new Error('after-reboot needs the first boot report and new|legacy');
  const first = JSON.parse(readFileSync(reportFile, 'utf8')) as FirstBootReport;
  // The kernel hands out the lowest free mount id, so a fresh namespace reuses the first boot's ids.
  // Mounts kept until ids beyond those are reached make this boot's mounts differ, as after a real reboot.
  const highest = Math.max(...Object.values(first.idsRestricted).filter((id): id is number => id !== null));
  const filler = join(base, 'filler');
  mkdirSync(filler, { recursive: true });
  let fillers = 0;
  for (let id = 0; id <= highest && fillers < 10_000; fillers++) {
    mount('-t', 'tmpfs', '-o', 'size=4k', 'quellfiller', filler);
    id = topmostAt(parseMountinfo(mountinfo()), filler)!.id;
  }

  bootDevice();
  const stateBefore = state();
  const idsBefore = ids();
  const runsBefore = attempts();
  // As the agent does at start for a restriction still in force: restrict again, keep only the original's snapshot.
  const reapplied = await restrictCodeExecutionIn(directories)(restrictContext());
  const idsReapplied = ids();
  const stateReapplied = state();
  const runsReapplied = attempts();

  let undoOutput = '';
  let undoError = '';
  try {
    undoOutput = (await removeCodeRestriction(removeContext(format === 'new' ? first.snapshot : first.legacy))).output;
  } catch (error) {
    undoError = (error as Error).message;
  }
  return { fillers, stateBefore, idsBefore, runsBefore, reappliedOutput: reapplied.output, idsReapplied, stateReapplied, runsReapplied, undoOutput, undoError, stateAfterUndo: state(), runsAfterUndo: attempts() };
}

async function legacySameBoot() {
  const { before, legacy, runsRestricted } = await restrictAndKeep();
  const undone = await removeCodeRestriction(removeContext(legacy));
  return { legacy, runsRestricted, undoOutput: undone.output, unchanged: mountinfo() === before, runsAfterUndo: attempts() };
}

const phases: Record<string, () => Promise<unknown>> = { 'first': firstBoot, 'after-reboot': afterReboot, 'legacy-same-boot': legacySameBoot };
const run = phases[phase];
if (!run) throw new Error(`unknown phase ${phase}`);
process.stdout.write(`${JSON.stringify(await run())}\n`);
