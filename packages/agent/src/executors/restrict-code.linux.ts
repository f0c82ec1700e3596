import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import { normalize, posix } from 'node:path';
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
 *   removal, that mount is back to its exact prior option string and any
 *   bind mount made here is gone.
 * - The record names a mount by what survives a reboot: mount point, root,
 *   source, file-system type and prior options, never the kernel's mount id.
 *   Mount flags do not survive a reboot, so the agent restricts again at
 *   start; undo of the original action then finds the mount by its point,
 *   checks it is the same file system (or again a bind of the directory onto
 *   itself), and refuses to touch anything else mounted there.
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

/** What restricting may do to one directory; removal reads the outcome to know what to undo. */
export const RESTRICTION_OUTCOMES = ['remounted', 'bind_mounted', 'already_restricted', 'missing'] as const;
export type RestrictionOutcome = (typeof RESTRICTION_OUTCOMES)[number];

/**
 * A mount named by what stays the same across reboots. Mount ids do not:
 * the kernel hands them out afresh, so after a reboot an id names another
 * mount or none at all.
 */
export interface MountIdentity {
  mountPoint: string;
  /** The path inside the file system that is mounted there (mountinfo field 4): `/` for a whole file system, the directory's own path for a bind of it onto itself. */
  root: string;
  source: string;
  fsType: string;
}

/** The mount a restriction changed (or found restricted), with its per-mount options from before. */
export interface RestrictedMount extends MountIdentity {
  /** Per-mount options before the restriction; for the bind mount made here, the ones it was made with. */
  priorOptions: string;
}

/** What was done to one directory; removal reads only this. */
export interface DirectoryRestriction {
  directory: string;
  outcome: RestrictionOutcome;
  /**
   * `remounted` and `already_restricted`: the directory's own topmost mount.
   * `bind_mounted`: the bind of the directory onto itself made here, which
   * the agent makes again after a reboot. `missing`: null.
   */
  mount: RestrictedMount | null;
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

const identityOf = (entry: MountEntry): MountIdentity => ({ mountPoint: entry.mountPoint, root: entry.root, source: entry.source, fsType: entry.fsType });
const sameIdentity = (a: MountIdentity, b: MountIdentity): boolean =>
  a.mountPoint === b.mountPoint && a.root === b.root && a.source === b.source && a.fsType === b.fsType;
const describe = (mount: MountIdentity): string => `${mount.fsType} ${mount.source}${mount.root === '/' ? '' : ` (${mount.root})`}`;

/** What a bind of `directory` onto itself looks like when `holder` is the mount the directory lies on. */
function bindIdentity(holder: MountEntry, directory: string): MountIdentity {
  return { mountPoint: directory, root: posix.join(holder.root, posix.relative(holder.mountPoint, directory)), source: holder.source, fsType: holder.fsType };
}

/** Whether `entry` is a bind of its mount point onto itself: the same file system and path as the mount it is stacked on. */
export function isBindOfItself(mounts: readonly MountEntry[], entry: MountEntry): boolean {
  const parent = mounts.find((m) => m.id === entry.parentId);
  return parent !== undefined && sameIdentity(bindIdentity(parent, entry.mountPoint), identityOf(entry));
}

/** The mount `directory` lies on, not counting the mounts at the directory itself. */
function holderOf(mounts: readonly MountEntry[], directory: string): MountEntry | undefined {
  const here = mounts.filter((m) => m.mountPoint === directory);
  const bottom = here.find((m) => !here.some((other) => other.id === m.parentId));
  if (bottom) return mounts.find((m) => m.id === bottom.parentId);
  const nearest = mounts
    .filter((m) => m.mountPoint !== directory && (m.mountPoint === '/' || directory.startsWith(`${m.mountPoint}/`)))
    .reduce<string | undefined>((best, m) => (best === undefined || m.mountPoint.length > best.length ? m.mountPoint : best), undefined);
  return nearest === undefined ? undefined : topmostAt(mounts, nearest);
}

async function restrictOne(ctx: ExecutionContext, requested: string): Promise<DirectoryRestriction> {
  const stat = lstatSync(requested, { throwIfNoEntry: false });
  if (!stat) return { directory: requested, outcome: 'missing', mount: null };
  // Mount points are listed by their real path; a symlinked /var/tmp is restricted where it really is.
  const directory = realpathSync(requested);
  if (!lstatSync(directory).isDirectory()) throw new ExecutionError(`${requested} is not a directory`);
  const before = readMounts();
  const own = topmostAt(before, directory);

  if (own && isRestricted(own.options)) return { directory, outcome: 'already_restricted', mount: { ...identityOf(own), priorOptions: own.options } };

  let target = own;
  if (!own) {
    await mustRun(ctx.runner, 'mount', ['--bind', '--', directory, directory]);
    const known = new Set(before.map((m) => m.id));
    target = topmostAt(readMounts().filter((m) => !known.has(m.id)), directory);
    if (!target) throw new ExecutionError(`the bind mount of ${directory} onto itself does not show in /proc/self/mountinfo`);
  }
  const record: DirectoryRestriction = { directory, outcome: own ? 'remounted' : 'bind_mounted', mount: { ...identityOf(target!), priorOptions: target!.options } };
  try {
    await remount(ctx, directory, new Set([...tokens(target!.options), ...RESTRICTING_FLAGS]));
    // Within this one run the id still names the mount; only the record must do without it.
    const now = topmostAt(readMounts(), directory);
    if (now?.id !== target!.id || !isRestricted(now.options)) {
      throw new ExecutionError(`${directory} is not mounted ${RESTRICTING_FLAGS.join(',')} after remounting it (${now?.options ?? 'no mount'})`);
    }
  } catch (error) {
    await unrestrictOne(ctx, record).catch(() => {});
    throw error;
  }
  return record;
}

/**
 * Puts one directory back as the record describes and returns what is wrong, if anything.
 * The mount is found by its mount point and must still be the one the record names: after
 * a reboot it is a new mount of the same file system (or the bind mount the agent made
 * again at start), never recognisable by id.
 */
async function unrestrictOne(ctx: ExecutionContext, record: DirectoryRestriction): Promise<string | null> {
  const { directory, outcome, mount } = record;
  if (outcome === 'missing' || outcome === 'already_restricted') return null;
  if (!mount) return `${directory}: the record does not say which mount was restricted; nothing to put back`;
  const mounts = readMounts();
  const top = topmostAt(mounts, directory);

  if (outcome === 'bind_mounted') {
    if (top) {
      if (!sameIdentity(identityOf(top), mount) || !isBindOfItself(mounts, top)) {
        return `${directory}: ${describe(top)} is mounted there now, not the bind of the directory onto itself made by the restriction; it was left in place`;
      }
      const plain = await ctx.runner.run('umount', ['--', directory]);
      // Busy (a process has its working directory inside): detach now, the kernel frees it when they leave.
      if (plain.code !== 0) await mustRun(ctx.runner, 'umount', ['-l', '--', directory]);
    }
    // Before the restriction nothing was mounted at the directory itself, and so it must be again.
    const left = topmostAt(readMounts(), directory);
    if (!left) return null;
    return sameIdentity(identityOf(left), mount) ? `${directory}: the bind mount is still there` : `${directory}: ${describe(left)} is mounted there; before the restriction nothing was`;
  }

  if (!top) return `${directory}: nothing is mounted there now, the restricted ${describe(mount)} was; nothing to put back`;
  if (!sameIdentity(identityOf(top), mount)) return `${directory}: ${describe(top)} is mounted there now, not the restricted ${describe(mount)}; it was left alone`;
  await remount(ctx, directory, tokens(mount.priorOptions));
  const now = topmostAt(readMounts(), directory);
  if (!now || !sameIdentity(identityOf(now), mount)) return `${directory}: ${now ? describe(now) : 'nothing'} is mounted there after putting the options back, not ${describe(mount)}`;
  if (now.options !== mount.priorOptions) return `${directory}: mounted ${now.options}, not ${mount.priorOptions} as before`;
  return null;
}

const CAVEATS = 'Programs placed there can no longer be executed; scripts run through an interpreter (sh file, python3 file) still run, mounts below these directories keep their own flags, and allowing only approved binaries everywhere is not implemented yet.';

function summary(record: DirectoryRestriction): string {
  switch (record.outcome) {
    case 'remounted': return `${record.directory} remounted noexec,nosuid,nodev (was ${record.mount?.priorOptions})`;
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

/** How the previous version recorded a directory: the mount by its id, good only until the next boot, and raw mountinfo lines. */
interface LegacyDirectoryRestriction {
  directory: string;
  outcome: RestrictionOutcome;
  mountId: number | null;
  priorOptions: string | null;
  /** The mountinfo lines at the directory before anything was done. */
  priorLines: string[];
}

const isOutcome = (value: unknown): value is RestrictionOutcome => (RESTRICTION_OUTCOMES as readonly unknown[]).includes(value);

function restrictedMount(value: unknown): RestrictedMount | null | undefined {
  if (value === null) return null;
  if (typeof value !== 'object') return undefined;
  const { mountPoint, root, source, fsType, priorOptions } = value as Record<string, unknown>;
  if (typeof mountPoint !== 'string' || typeof root !== 'string' || typeof source !== 'string' || typeof fsType !== 'string' || typeof priorOptions !== 'string') return undefined;
  return { mountPoint, root, source, fsType, priorOptions };
}

/**
 * Names the mount of a legacy record by its stable fields. A mount the
 * restriction found at the directory is among the lines it kept (the one
 * with its id, whose line holds point, root, type and source). The bind
 * mount it made is not: that is a bind of the directory onto itself, named
 * after the file system holding the directory now.
 */
function fromLegacy(record: LegacyDirectoryRestriction, mounts: readonly MountEntry[]): DirectoryRestriction {
  const { directory, outcome, mountId, priorOptions } = record;
  if (outcome === 'missing') return { directory, outcome, mount: null };
  if (outcome === 'bind_mounted') {
    const holder = holderOf(mounts, directory);
    return { directory, outcome, mount: holder ? { ...bindIdentity(holder, directory), priorOptions: priorOptions ?? holder.options } : null };
  }
  const prior = parseMountinfo(record.priorLines.join('\n'));
  const entry = prior.find((m) => m.id === mountId) ?? topmostAt(prior, directory);
  return { directory, outcome, mount: entry ? { ...identityOf(entry), priorOptions: priorOptions ?? entry.options } : null };
}

/**
 * The records of a code-restriction snapshot, or null when `value` is not
 * one. Snapshots of the previous version (`mountId`, `priorLines`) are read
 * too, their mounts named by stable fields; `mounts` is mountinfo now.
 */
export function restrictionRecords(value: unknown, mounts: readonly MountEntry[]): DirectoryRestriction[] | null {
  const directories = (value as { directories?: unknown } | null | undefined)?.directories;
  if (!Array.isArray(directories)) return null;
  const records: DirectoryRestriction[] = [];
  for (const item of directories as unknown[]) {
    if (typeof item !== 'object' || item === null) return null;
    const fields = item as Record<string, unknown>;
    const { directory, outcome } = fields;
    if (typeof directory !== 'string' || !isOutcome(outcome)) return null;
    if ('mount' in fields) {
      const mount = restrictedMount(fields.mount);
      if (mount === undefined) return null;
      records.push({ directory, outcome, mount });
    } else if (Array.isArray(fields.priorLines) && fields.priorLines.every((line) => typeof line === 'string')) {
      const mountId = typeof fields.mountId === 'number' ? fields.mountId : null;
      const priorOptions = typeof fields.priorOptions === 'string' ? fields.priorOptions : null;
      records.push(fromLegacy({ directory, outcome, mountId, priorOptions, priorLines: fields.priorLines as string[] }, mounts));
    } else {
      return null;
    }
  }
  return records;
}

/** Puts every directory back as the restriction found it, then checks mountinfo says so. */
export const removeCodeRestriction: Executor = async (ctx) => {
  const records = restrictionRecords(ctx.priorSnapshot, readMounts());
  if (!records) throw new ExecutionError('this agent holds no record of the code restriction');
  checkedDirectories(records.map((d) => d.directory));
  const problems: string[] = [];
  for (const record of [...records].reverse()) {
    const problem = await unrestrictOne(ctx, record).catch((error: Error) => `${record.directory}: ${error.message}`);
    if (problem) problems.push(problem);
  }
  if (problems.length) throw new ExecutionError(`code restriction not fully removed: ${problems.join('; ')}`);
  const changed = records.filter((d) => d.outcome === 'remounted' || d.outcome === 'bind_mounted');
  return { output: changed.length ? `Removed code restriction: ${changed.map((d) => `${d.directory} back to ${d.outcome === 'bind_mounted' ? 'no mount of its own' : d.mount?.priorOptions}`).join('; ')}` : 'Nothing to remove: the restriction changed no mount' };
};
