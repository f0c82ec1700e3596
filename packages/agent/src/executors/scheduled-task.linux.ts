import { basename, dirname, join, normalize } from 'node:path';
import { CRON_LOCATIONS, LINUX_NAMES } from '@quell/contracts';
import { guardsFor } from '../guards.linux.ts';
import { type CommandRunner, mustRun } from '../runner.ts';
import { type Folder, type FolderId, lstatFrom } from '../safe-fs.linux.ts';
import { ExecutionError, type ExecutionContext, type ExecutionResult, type Executor } from './executor.ts';
import { isActive, isEnabled } from './service.linux.ts';
import { type FileRecord, inFolder, isFileRecord, record, sha256, verifyRestored, writeExactly } from './file-record.linux.ts';

/**
 * Remove scheduled task / restore scheduled task: cron entries and systemd
 * timers. What is removed is recorded byte for byte (with mode, owner and
 * times) in the action's snapshot; restore writes exactly those bytes back
 * and checks their SHA-256.
 *
 * How a task is named (the entity of the action):
 *
 * | task | entity | parameters |
 * |---|---|---|
 * | a whole file in /etc/cron.d | `path: '/etc/cron.d/NAME'`, or just `name: 'NAME'` | — |
 * | a run-parts script | `path: '/etc/cron.{hourly,daily,weekly,monthly}/NAME'` | — |
 * | a user's whole crontab | `path: '/var/spool/cron/crontabs/USER'` | — |
 * | one line of any of these, or of /etc/crontab | the file's `path` as above | `line`: the exact text of the line, without its newline |
 * | a systemd timer | `name: 'NAME.timer'` or `path: '/etc/systemd/system/NAME.timer'` | — |
 *
 * - `parameters.line` removes every line equal to it (a trailing `\r` is
 *   ignored when comparing) and leaves every other byte alone. /etc/crontab
 *   itself is only ever edited by line, never removed.
 * - `entity.sha256`, when given for a whole file, must match the file, or
 *   nothing is removed (the evidence and the device disagree).
 * - Only regular files are handled; a symbolic link is refused, and so is
 *   any path that is not directly inside one of the directories above.
 * - A timer is disabled and stopped (`systemctl disable --now`), its unit file
 *   removed and systemd reloaded; restore puts the file back, reloads, and
 *   enables and starts it again only if it was enabled and active before.
 *   Only unit files under /etc/systemd/system are removed (units shipped by
 *   packages would come back with the next upgrade), drop-in directories
 *   are left alone, and the service the timer triggered is not stopped if
 *   it is running right now: that is what stop service is for.
 * - Files are rewritten through a temporary file in the same directory and
 *   a rename, the way crontab(1) does, so cron never reads half a file.
 *   Its name starts with a dot, which cron ignores in /etc/cron.d.
 * - A line is restored only if the file is still exactly as the removal
 *   left it; if it was edited since, restore refuses instead of overwriting
 *   those edits.
 */

const CRON_FILE_DIRS = [...CRON_LOCATIONS.fileDirs, ...CRON_LOCATIONS.scriptDirs];
const USER_CRONTAB_DIR = CRON_LOCATIONS.userCrontabs;
const SYSTEM_CRONTAB = CRON_LOCATIONS.crontab;
const SYSTEMD_DIR = '/etc/systemd/system';

const FILE_NAME = LINUX_NAMES.cronFile;
const USER_NAME = LINUX_NAMES.user;
const TIMER_UNIT = /^[A-Za-z0-9_][A-Za-z0-9:_.@\\-]{0,248}\.timer$/;

export type Task =
  | { kind: 'cron_file'; path: string }
  | { kind: 'cron_line'; path: string; line: string }
  | { kind: 'systemd_timer'; path: string; unit: string };

/** `chain`: the folders above the file when it was removed; restore writes only into the very same ones. */
export type ScheduledTaskSnapshot = { chain?: FolderId[] } & (
  | { kind: 'cron_file'; path: string; file: FileRecord }
  | { kind: 'cron_line'; path: string; line: string; removedLineNumbers: number[]; file: FileRecord; sha256After: string }
  | { kind: 'systemd_timer'; path: string; unit: string; file: FileRecord; enabled: string; active: string });

/** Only the scheduled-task folders themselves; they are walked without following links when the file is opened. */
function checkedDirectory(path: string, allowed: readonly string[]): void {
  if (!allowed.includes(dirname(path))) throw new ExecutionError(`${path} is not directly inside ${allowed.join(', ')}`);
}

/** The types that remove a file or a line of one, and put it back. */
export type FileTaskType = 'remove_scheduled_task' | 'restore_scheduled_task' | 'remove_persistence' | 'restore_persistence';

/** Turns the entity and parameters into one task, refusing anything outside the scheduled-task locations. */
export function taskOf(ctx: ExecutionContext<FileTaskType>): Task {
  const { entity, parameters } = ctx.command;
  const line = parameters.line;
  if (line !== undefined && (typeof line !== 'string' || line.length === 0 || /[\r\n]/.test(line))) throw new ExecutionError('parameters.line must be the text of one line, without a newline');
  let path = entity.path;
  if (path === undefined) {
    if (TIMER_UNIT.test(entity.name)) path = join(SYSTEMD_DIR, entity.name);
    else if (FILE_NAME.test(entity.name)) path = join('/etc/cron.d', entity.name);
    else throw new ExecutionError(`${JSON.stringify(entity.name)} names neither a file in /etc/cron.d nor a systemd timer; give entity.path`);
  }
  if (!path.startsWith('/') || normalize(path) !== path || path.endsWith('/')) throw new ExecutionError(`not a plain absolute path: ${JSON.stringify(path)}`);
  const name = basename(path);

  if (path === SYSTEM_CRONTAB) {
    if (line === undefined) throw new ExecutionError('/etc/crontab is never removed whole: name the line to remove in parameters.line');
    checkedDirectory(path, ['/etc']);
    return { kind: 'cron_line', path, line };
  }
  if (dirname(path) === SYSTEMD_DIR) {
    if (!TIMER_UNIT.test(name)) throw new ExecutionError(`${path} is not a systemd timer unit`);
    if (line !== undefined) throw new ExecutionError('parameters.line applies to cron files, not to systemd timers');
    checkedDirectory(path, [SYSTEMD_DIR]);
    return { kind: 'systemd_timer', path, unit: name };
  }
  if (dirname(path) === USER_CRONTAB_DIR) {
    if (!USER_NAME.test(name)) throw new ExecutionError(`${path} does not name a user's crontab`);
  } else if (!FILE_NAME.test(name)) {
    throw new ExecutionError(`${JSON.stringify(name)} is not a cron file name`);
  }
  checkedDirectory(path, [...CRON_FILE_DIRS, USER_CRONTAB_DIR]);
  return line === undefined ? { kind: 'cron_file', path } : { kind: 'cron_line', path, line };
}

/**
 * The file without the lines equal to `line`. Bytes are handled as latin1
 * so that a file that is not valid UTF-8 comes back byte for byte.
 */
function withoutLine(bytes: Buffer, line: string): { bytes: Buffer; removed: number[] } {
  const target = Buffer.from(line, 'utf8').toString('latin1');
  const lines = bytes.toString('latin1').split('\n');
  const removed: number[] = [];
  const kept = lines.filter((text, index) => {
    const match = text.replace(/\r$/, '') === target;
    if (match) removed.push(index + 1);
    return !match;
  });
  return { bytes: Buffer.from(kept.join('\n'), 'latin1'), removed };
}

/**
 * Remove and restore executors over one way of finding the file a command
 * names (`locate` refuses anything outside its own locations): scheduled
 * tasks here, other persistence in persistence.linux.ts.
 */
export function fileTaskExecutors(locate: (ctx: ExecutionContext<FileTaskType>) => Task): { remove: Executor<FileTaskType>; restore: Executor<FileTaskType> } {
  const remove: Executor<FileTaskType> = async (ctx) => {
    const task = locate(ctx);
    // A guarded timer (one that keeps the system patched) is refused before its unit file is read or touched.
    const guarded = task.kind === 'systemd_timer' ? guardsFor(ctx).unit(task.unit) : null;
    if (guarded) throw new ExecutionError(guarded);
    return inFolder(task.path, (folder, name) => removeTask(ctx, task, folder, name));
  };

  /** Writes back exactly what was removed and checks it by hash; never overwrites a file that differs from what removal left. */
  const restore: Executor<FileTaskType> = async (ctx) => {
    const snapshot = ctx.priorSnapshot;
    if (!isSnapshot(snapshot)) throw new ExecutionError('this agent holds no record of what was removed');
    // The recorded path is checked again, as if it came from a command: a record is data too.
    const task = locate({ ...ctx, command: { ...ctx.command, entity: { name: basename(snapshot.path), path: snapshot.path }, parameters: snapshot.kind === 'cron_line' ? { line: snapshot.line } : {} } });
    if (task.kind !== snapshot.kind) throw new ExecutionError(`the record of ${snapshot.path} is inconsistent`);
    const { file, path } = snapshot;
    const original = Buffer.from(file.contentBase64, 'base64');
    if (sha256(original) !== file.sha256) throw new ExecutionError(`the recorded content of ${path} does not match its recorded hash; not restored`);
    return inFolder(path, (folder, name) => restoreTask(ctx, snapshot, original, folder, name));
  };
  return { remove, restore };
}

export const { remove: removeScheduledTask, restore: restoreScheduledTask } = fileTaskExecutors(taskOf);

async function removeTask(ctx: ExecutionContext, task: Task, folder: Folder, name: string): Promise<ExecutionResult> {
  const { record: file, bytes } = await record(folder, name);
  const chain = [...folder.chain];

  switch (task.kind) {
    case 'cron_file': {
      const expected = ctx.command.entity.sha256?.toLowerCase();
      if (expected && expected !== file.sha256) throw new ExecutionError(`${task.path} has SHA-256 ${file.sha256}, not ${expected}: left alone`);
      const snapshot: ScheduledTaskSnapshot = { kind: 'cron_file', path: task.path, file, chain };
      folder.unlink(name);
      folder.sync();
      if (folder.lstat(name)) throw new ExecutionError(`${task.path} is still there after removing it`);
      return { output: `Removed ${task.path} (SHA-256 ${file.sha256}, ${bytes.length} bytes)`, snapshot };
    }
    case 'cron_line': {
      const after = withoutLine(bytes, task.line);
      if (after.removed.length === 0) throw new ExecutionError(`${task.path} has no line ${JSON.stringify(task.line)}`);
      const sha256After = sha256(after.bytes);
      const snapshot: ScheduledTaskSnapshot = { kind: 'cron_line', path: task.path, line: task.line, removedLineNumbers: after.removed, file, sha256After, chain };
      // New modification time on purpose: it is how cron notices the change.
      await writeExactly(folder, name, after.bytes, { mode: file.mode, uid: file.uid, gid: file.gid }, ctx.command.actionId, true);
      const now = await record(folder, name);
      if (now.record.sha256 !== sha256After || withoutLine(now.bytes, task.line).removed.length) {
        // A failed action keeps no snapshot: the original goes back now or it would be lost.
        await writeExactly(folder, name, bytes, file, ctx.command.actionId, true);
        throw new ExecutionError(`${task.path} did not read as expected after removing the line; the original was written back`);
      }
      const lines = after.removed.length === 1 ? `line ${after.removed[0]}` : `lines ${after.removed.join(', ')}`;
      return { output: `Removed ${lines} of ${task.path}: ${task.line}`, snapshot };
    }
    case 'systemd_timer': {
      const enabled = await isEnabled(ctx, task.unit);
      const active = await isActive(ctx, task.unit);
      const snapshot: ScheduledTaskSnapshot = { kind: 'systemd_timer', path: task.path, unit: task.unit, file, enabled, active, chain };
      await mustRun(ctx.runner, 'systemctl', ['disable', '--now', task.unit]);
      folder.unlink(name);
      folder.sync();
      try {
        await mustRun(ctx.runner, 'systemctl', ['daemon-reload']);
        const activeAfter = await isActive(ctx, task.unit);
        if (activeAfter === 'active' || activeAfter === 'activating') throw new ExecutionError(`${task.unit} is still ${activeAfter} after stopping it`);
      } catch (error) {
        // A failed action keeps no snapshot: the unit file goes back now or it would be lost.
        await writeExactly(folder, name, bytes, file, ctx.command.actionId, false);
        throw new ExecutionError(`removing ${task.unit} failed, its unit file was written back (it stays disabled and stopped; it was ${enabled}, ${active}): ${(error as Error).message}`, { cause: error });
      }
      return { output: `Removed timer ${task.unit} (was ${enabled}, ${active}); unit file ${task.path} (SHA-256 ${file.sha256}) removed`, snapshot };
    }
  }
}

function isSnapshot(value: unknown): value is ScheduledTaskSnapshot {
  const s = value as Partial<ScheduledTaskSnapshot> | undefined;
  return (s?.kind === 'cron_file' || s?.kind === 'cron_line' || s?.kind === 'systemd_timer') && typeof s.path === 'string' && isFileRecord(s.file);
}

async function restoreTask(ctx: ExecutionContext, snapshot: ScheduledTaskSnapshot, original: Buffer, folder: Folder, name: string): Promise<ExecutionResult> {
  const { file, path } = snapshot;
  folder.expectChain(snapshot.chain);
  const present = folder.lstat(name);
  const presentHash = present?.isFile() ? (await record(folder, name)).record.sha256 : null;

  switch (snapshot.kind) {
    case 'cron_file': {
      if (present) {
        if (presentHash !== file.sha256) throw new ExecutionError(`a different file now exists at ${path}; it was not overwritten`);
        return { output: `The identical file is already at ${path}` };
      }
      await writeExactly(folder, name, original, file, ctx.command.actionId, false);
      await verifyRestored(folder, name, file);
      return { output: `Restored ${path} (SHA-256 ${file.sha256}, mode ${file.mode.toString(8)}, owner ${file.uid}:${file.gid})` };
    }
    case 'cron_line': {
      if (presentHash === file.sha256) return { output: `${path} already holds the line again, exactly as before` };
      if (presentHash !== snapshot.sha256After) {
        throw new ExecutionError(`${path} ${present ? 'was changed' : 'was removed'} after the line was taken out; restoring would overwrite that, so nothing was written`);
      }
      await writeExactly(folder, name, original, file, ctx.command.actionId, true);
      await verifyRestored(folder, name, file);
      return { output: `Restored ${path} byte for byte (SHA-256 ${file.sha256}), with its line ${JSON.stringify(snapshot.line)}` };
    }
    case 'systemd_timer': {
      if (present && presentHash !== file.sha256) throw new ExecutionError(`a different file now exists at ${path}; it was not overwritten`);
      if (!present) await writeExactly(folder, name, original, file, ctx.command.actionId, false);
      await verifyRestored(folder, name, file);
      await mustRun(ctx.runner, 'systemctl', ['daemon-reload']);
      if (snapshot.enabled === 'enabled') await mustRun(ctx.runner, 'systemctl', ['enable', snapshot.unit]);
      if (snapshot.active === 'active') await mustRun(ctx.runner, 'systemctl', ['start', snapshot.unit]);
      const enabled = await isEnabled(ctx, snapshot.unit);
      const active = await isActive(ctx, snapshot.unit);
      if (enabled !== snapshot.enabled || (active === 'active') !== (snapshot.active === 'active')) {
        throw new ExecutionError(`${snapshot.unit} is ${enabled}, ${active} after restoring; it was ${snapshot.enabled}, ${snapshot.active}`);
      }
      return { output: `Restored timer ${snapshot.unit} (${enabled}, ${active}); unit file ${path} back byte for byte (SHA-256 ${file.sha256})` };
    }
  }
}

/** A timer that would run: enabled (in any way that starts it) or running now. */
const TIMER_RUNS = new Set(['enabled', 'enabled-runtime', 'linked', 'linked-runtime', 'alias', 'active', 'activating', 'reloading']);

/** What is at a removed task's place now: nothing, or its bytes' SHA-256 (null for what is not a regular file). */
async function presentAt(path: string): Promise<{ sha256: string | null; bytes: Buffer | null } | undefined> {
  if (!lstatFrom('/', '/', path)) return undefined;
  return inFolder(path, async (folder, name) => {
    if (!folder.lstat(name)?.isFile()) return { sha256: null, bytes: null };
    const { record: now, bytes } = await record(folder, name);
    return { sha256: now.sha256, bytes };
  });
}

/**
 * For the drift watch: what of a removed task is back, in words, or null.
 * The very file again at its place, the removed line again in its file, or
 * the timer's unit file back or the timer enabled or running again (from a
 * copy elsewhere, say). Another file at a removed file's place is named too:
 * it is left alone for an analyst (its bytes are not the ones removed).
 */
export async function taskReturned(runner: CommandRunner, snapshot: ScheduledTaskSnapshot): Promise<string | null> {
  const present = await presentAt(snapshot.path);
  switch (snapshot.kind) {
    case 'cron_file':
      if (!present) return null;
      if (present.sha256 === snapshot.file.sha256) return `${snapshot.path} is back (the removed file, SHA-256 ${snapshot.file.sha256})`;
      return `another file is at ${snapshot.path} now (${present.sha256 ? `SHA-256 ${present.sha256}` : 'not a regular file'})`;
    case 'cron_line':
      return present?.bytes && withoutLine(present.bytes, snapshot.line).removed.length > 0 ? `the removed line is back in ${snapshot.path}: ${snapshot.line}` : null;
    case 'systemd_timer': {
      const state = [await isEnabled({ runner }, snapshot.unit), await isActive({ runner }, snapshot.unit)].filter((s) => TIMER_RUNS.has(s));
      const back = present?.sha256 === snapshot.file.sha256;
      if (!back && state.length === 0) return null;
      return `${snapshot.unit} ${[...(back ? [`has its unit file back at ${snapshot.path}`] : []), ...(state.length ? [`is ${state.join(' and ')} again`] : [])].join(' and ')}`;
    }
  }
}

/**
 * Removes what came back of a removed task, as the removal did: the same
 * file (its bytes are in the removal's record), the line (every other byte
 * kept), the timer disabled and stopped and its returned unit file removed.
 * Another file at a removed file's place is not removed: that fails, to be
 * reported for an analyst to look at.
 */
export async function removeTaskAgain(runner: CommandRunner, snapshot: ScheduledTaskSnapshot): Promise<void> {
  switch (snapshot.kind) {
    case 'cron_file':
      return inFolder(snapshot.path, async (folder, name) => {
        if (!folder.lstat(name)?.isFile() || (await record(folder, name)).record.sha256 !== snapshot.file.sha256) {
          throw new ExecutionError(`${snapshot.path} is not the removed file, so it was left alone: look at it, and remove it as a new task if it is malicious`);
        }
        folder.unlink(name);
        folder.sync();
      });
    case 'cron_line':
      return inFolder(snapshot.path, async (folder, name) => {
        const { record: now, bytes } = await record(folder, name);
        const after = withoutLine(bytes, snapshot.line);
        if (after.removed.length === 0) return;
        await writeExactly(folder, name, after.bytes, { mode: now.mode, uid: now.uid, gid: now.gid }, 'drift', true);
      });
    case 'systemd_timer': {
      await mustRun(runner, 'systemctl', ['disable', '--now', snapshot.unit]);
      const back = await inFolder(snapshot.path, async (folder, name) => {
        if (!folder.lstat(name)?.isFile() || (await record(folder, name)).record.sha256 !== snapshot.file.sha256) return false;
        folder.unlink(name);
        folder.sync();
        return true;
      });
      if (back) await mustRun(runner, 'systemctl', ['daemon-reload']);
    }
  }
}

/** The record a removal left, when it is one (the journal is data like any other). */
export function removedTaskOf(snapshot: unknown): ScheduledTaskSnapshot | null {
  return isSnapshot(snapshot) ? snapshot : null;
}
