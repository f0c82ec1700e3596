import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import { normalize } from 'node:path';
import { mustRun } from '../runner.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/**
 * Restrict code execution: the directories any user can write to are
 * mounted `noexec,nosuid,nodev`, so a program dropped there cannot be run.
 *
 * - A directory that is its own mount point is remounted with only its
 *   per-mount flags changed (`mount -o remount,bind,…`): the file system's own
 *   options (tmpfs size, ext4 settings) are never touched.
 * - A directory that is not a mount point is first bind-mounted onto itself,
 *   which gives it a mount of its own to carry the flags; the record says so
 *   and removal unmounts exactly that bind mount again.
 * - A directory already carrying all three flags is left alone and removal
 *   does not touch it either; one that does not exist is skipped.
 * - Every option list passed to mount(8) is complete, with explicit `exec`,
 *   `suid`, `dev`, `rw` and the atime mode: mount merges the options a mount
 *   already has into a remount, so leaving one out would silently keep it.
 * - Prior state comes from /proc/self/mountinfo and so does verification:
 *   after restricting, each directory's topmost mount carries the flags; after
 *   removal, every mount is back to its exact prior option string and any
 *   bind mount made here is gone.
 * - If one directory fails, those already restricted are put back before the
 *   error is reported, so a failed action leaves nothing behind without a record.
 *
 * Not covered yet, and said so in the output: mounts below these
 * directories keep their own flags, scripts run through an interpreter
 * (`sh file`, `python3 file`) still run, and allowing only approved binaries
 * everywhere is a later step.
 */

/** The directories every user can write to on a Linux endpoint. */
export const USER_WRITABLE_DIRECTORIES: readonly string[] = ['/tmp', '/var/tmp', '/dev/shm', '/home'];

const RESTRICTING_FLAGS = ['noexec', 'nosuid', 'nodev'] as const;
/** Each per-mount flag with the word that clears it; mount keeps a flag that a remount does not clear. */
const FLAG_PAIRS: readonly (readonly [string, string])[] = [['noexec', 'exec'], ['nosuid', 'suid'], ['nodev', 'dev'], ['nodiratime', 'diratime']];

export interface MountEntry {
  id: number;
  parentId: number;
  root: string;
  mountPoint: string;
  /** Per-mount options (field 6): ro/rw, nosuid, nodev, noexec, atime mode. */
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
  line: string;
}

/** What was done to one directory; removal reads only this. */
export interface DirectoryRestriction {
  directory: string;
  outcome: 'remounted' | 'bind_mounted' | 'already_restricted' | 'missing';
  /** The mount whose flags were changed: the directory's own, or the bind mount made here. */
  mountId: number | null;
  /** The per-mount options of that mount before it was restricted (for a bind mount, the ones it was made with). */
  priorOptions: string | null;
  /** The mountinfo lines at this mount point before anything was done, compared again after removal. */
  priorLines: string[];
}

export interface CodeRestrictionSnapshot { directories: DirectoryRestriction[] }

/** Mount points in mountinfo escape space, tab, newline and backslash as octal. */
const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const separator = line.indexOf(' - ');
    if (separator < 0) continue;
    const fields = line.slice(0, separator).split(' ');
    const [fsType = '', source = '', superOptions = ''] = line.slice(separator + 3).split(' ');
    if (fields.length < 6) continue;
    entries.push({
      id: Number(fields[0]), parentId: Number(fields[1]), root: unescape(fields[3]!), mountPoint: unescape(fields[4]!),
      options: fields[5]!, fsType, source: unescape(source), superOptions, line,
    });
  }
  return entries;
}

const readMounts = (): MountEntry[] => parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));

/** The mount a path lookup at `directory` lands on: the one at that point that nothing else is stacked on. */
export function topmostAt(mounts: readonly MountEntry[], directory: string): MountEntry | undefined {
  const here = mounts.filter((m) => m.mountPoint === directory);
  return here.find((m) => !here.some((other) => other.parentId === m.id));
}

const tokens = (options: string): Set<string> => new Set(options.split(','));
const isRestricted = (options: string): boolean => RESTRICTING_FLAGS.every((flag) => tokens(options).has(flag));

/** A complete option list for `mount -o remount,bind,…` that leaves the mount with exactly `wanted`. */
export function exactOptions(wanted: Set<string>): string[] {
  const list = [wanted.has('ro') ? 'ro' : 'rw'];
  for (const [set, clear] of FLAG_PAIRS) list.push(wanted.has(set) ? set : clear);
  // mountinfo shows no atime word for strictatime.
  list.push(wanted.has('noatime') ? 'noatime' : wanted.has('relatime') ? 'relatime' : 'strictatime');
  if (wanted.has('nosymfollow')) list.push('nosymfollow');
  return list;
}

async function remount(ctx: ExecutionContext, directory: string, wanted: Set<string>): Promise<void> {
  await mustRun(ctx.runner, 'mount', ['-o', ['remount', 'bind', ...exactOptions(wanted)].join(','), '--', directory]);
}

function checkedDirectories(directories: readonly string[]): string[] {
  for (const directory of directories) {
    if (!directory.startsWith('/') || normalize(directory) !== directory || (directory.endsWith('/') && directory !== '/')) {
      throw new ExecutionError(`not a plain absolute directory: ${JSON.stringify(directory)}`);
    }
  }
  return [...directories];
}

async function restrictOne(ctx: ExecutionContext, requested: string): Promise<DirectoryRestriction> {
  const stat = lstatSync(requested, { throwIfNoEntry: false });
  if (!stat) return { directory: requested, outcome: 'missing', mountId: null, priorOptions: null, priorLines: [] };
  // Mount points are listed by their real path; a symlinked /var/tmp is restricted where it really is.
  const directory = realpathSync(requested);
  if (!lstatSync(directory).isDirectory()) throw new ExecutionError(`${requested} is not a directory`);
  const before = readMounts();
  const priorLines = before.filter((m) => m.mountPoint === directory).map((m) => m.line);
  const own = topmostAt(before, directory);

  if (own && isRestricted(own.options)) return { directory, outcome: 'already_restricted', mountId: own.id, priorOptions: own.options, priorLines };

  let target = own;
  if (!own) {
    await mustRun(ctx.runner, 'mount', ['--bind', '--', directory, directory]);
    const known = new Set(before.map((m) => m.id));
    target = topmostAt(readMounts().filter((m) => !known.has(m.id)), directory);
    if (!target) throw new ExecutionError(`the bind mount of ${directory} onto itself does not show in /proc/self/mountinfo`);
  }
  const record: DirectoryRestriction = { directory, outcome: own ? 'remounted' : 'bind_mounted', mountId: target!.id, priorOptions: target!.options, priorLines };
  try {
    await remount(ctx, directory, new Set([...tokens(target!.options), ...RESTRICTING_FLAGS]));
    const now = topmostAt(readMounts(), directory);
    if (now?.id !== record.mountId || !isRestricted(now.options)) {
      throw new ExecutionError(`${directory} is not mounted ${RESTRICTING_FLAGS.join(',')} after remounting it (${now?.options ?? 'no mount'})`);
    }
  } catch (error) {
    await unrestrictOne(ctx, record).catch(() => {});
    throw error;
  }
  return record;
}

/** Puts one directory back as the record describes and returns what is wrong, if anything. */
async function unrestrictOne(ctx: ExecutionContext, record: DirectoryRestriction): Promise<string | null> {
  const { directory, mountId, priorOptions } = record;
  if (record.outcome === 'missing' || record.outcome === 'already_restricted') return null;
  const mounts = readMounts();
  const ours = mounts.find((m) => m.id === mountId);
  const top = topmostAt(mounts, directory);

  if (record.outcome === 'bind_mounted') {
    if (ours) {
      if (top?.id !== mountId) return `${directory}: something was mounted over the bind mount made by the restriction; it was left in place`;
      const plain = await ctx.runner.run('umount', ['--', directory]);
      // Busy (a process has its working directory inside): detach now, the kernel frees it when they leave.
      if (plain.code !== 0) await mustRun(ctx.runner, 'umount', ['-l', '--', directory]);
    }
    const after = readMounts();
    if (after.some((m) => m.id === mountId)) return `${directory}: the bind mount is still there`;
    const lines = after.filter((m) => m.mountPoint === directory).map((m) => m.line);
    if (lines.join('\n') !== record.priorLines.join('\n')) return `${directory}: the mounts there are not as before:\n${lines.join('\n')}`;
    return null;
  }

  if (!ours || priorOptions === null) return `${directory}: the mount restricted before (id ${mountId}) is no longer there; nothing to put back`;
  if (top?.id !== mountId) return `${directory}: another mount now covers the restricted one; it was left alone`;
  await remount(ctx, directory, tokens(priorOptions));
  const now = readMounts().find((m) => m.id === mountId);
  if (now?.options !== priorOptions) return `${directory}: mounted ${now?.options ?? '(gone)'}, not ${priorOptions} as before`;
  return null;
}

const CAVEATS = 'Programs placed there can no longer be executed; scripts run through an interpreter (sh file, python3 file) still run, mounts below these directories keep their own flags, and allowing only approved binaries everywhere is not implemented yet.';

function summary(record: DirectoryRestriction): string {
  switch (record.outcome) {
    case 'remounted': return `${record.directory} remounted noexec,nosuid,nodev (was ${record.priorOptions})`;
    case 'bind_mounted': return `${record.directory} bind-mounted onto itself and made noexec,nosuid,nodev`;
    case 'already_restricted': return `${record.directory} already noexec,nosuid,nodev, left as it was`;
    case 'missing': return `${record.directory} does not exist, skipped`;
  }
}

/** The executor for a given list of directories; the agent uses USER_WRITABLE_DIRECTORIES. */
export function restrictCodeExecutionIn(directories: readonly string[]): Executor {
  const wanted = checkedDirectories(directories);
  return async (ctx) => {
    const done: DirectoryRestriction[] = [];
    try {
      for (const directory of wanted) done.push(await restrictOne(ctx, directory));
    } catch (error) {
      for (const record of [...done].reverse()) await unrestrictOne(ctx, record).catch(() => null);
      throw new ExecutionError(`restricting code execution failed, and what was already restricted was put back: ${(error as Error).message}`, { cause: error });
    }
    if (!done.some((r) => r.outcome !== 'missing')) throw new ExecutionError(`none of ${wanted.join(', ')} exists on this device`);
    const snapshot: CodeRestrictionSnapshot = { directories: done };
    return { output: `Restricted code execution: ${done.map(summary).join('; ')}. ${CAVEATS}`, snapshot };
  };
}

export const restrictCodeExecution: Executor = restrictCodeExecutionIn(USER_WRITABLE_DIRECTORIES);

function isSnapshot(value: unknown): value is CodeRestrictionSnapshot {
  const directories = (value as Partial<CodeRestrictionSnapshot> | undefined)?.directories;
  return Array.isArray(directories) && directories.every((d: Partial<DirectoryRestriction>) => typeof d.directory === 'string'
    && ['remounted', 'bind_mounted', 'already_restricted', 'missing'].includes(d.outcome as string) && Array.isArray(d.priorLines));
}

/** Puts every directory back exactly as the restriction found it, then checks mountinfo says so. */
export const removeCodeRestriction: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot;
  if (!isSnapshot(snapshot)) throw new ExecutionError('this agent holds no record of the code restriction');
  checkedDirectories(snapshot.directories.map((d) => d.directory));
  const problems: string[] = [];
  for (const record of [...snapshot.directories].reverse()) {
    const problem = await unrestrictOne(ctx, record).catch((error: Error) => `${record.directory}: ${error.message}`);
    if (problem) problems.push(problem);
  }
  if (problems.length) throw new ExecutionError(`code restriction not fully removed: ${problems.join('; ')}`);
  const changed = snapshot.directories.filter((d) => d.outcome === 'remounted' || d.outcome === 'bind_mounted');
  return { output: changed.length ? `Removed code restriction: ${changed.map((d) => `${d.directory} back to ${d.outcome === 'bind_mounted' ? 'no mount of its own' : d.priorOptions}`).join('; ')}` : 'Nothing to remove: the restriction changed no mount' };
};
