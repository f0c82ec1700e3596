import { basename, dirname, normalize } from 'node:path';
import { LINUX_NAMES, STARTUP_LOCATIONS } from '@quell/contracts';
import { ExecutionError, type ExecutionContext } from './executor.ts';
import { type FileTaskType, type Task, fileTaskExecutors } from './scheduled-task.linux.ts';

/**
 * Remove persistence / restore persistence: what makes an attacker's code
 * run again besides cron and timers (scheduled-task.linux.ts) and services
 * (service.linux.ts). The file, or one line of it, is recorded byte for
 * byte with mode, owner and times and removed exactly as a scheduled task
 * is; restore writes exactly those bytes back.
 *
 * | where | what is removed |
 * |---|---|
 * | `/etc/profile`, `/etc/bash.bashrc`, `/etc/environment`, `/etc/rc.local` | one line (`parameters.line`) |
 * | a user's `.bashrc`, `.profile`, `.bash_profile`, `.bash_login`, `.bash_logout`, `.zshrc`, `.zprofile` (in `/root` or `/home/USER`) | one line |
 * | a user's `.ssh/authorized_keys` or `authorized_keys2` | one line (a key) |
 * | `/etc/ld.so.preload` | one line (a library), or the whole file |
 * | a file in `/etc/profile.d`, `/etc/update-motd.d`, `/etc/udev/rules.d`, `/etc/apt/apt.conf.d`, `/etc/xdg/autostart`, or a user's `.config/autostart` | the whole file, or one line |
 *
 * Files that every login reads are only ever edited by line, never removed
 * whole. Paths are plain and absolute, directly in those folders, reached
 * without following any link (a link anywhere is refused).
 */

const FILE_NAME = LINUX_NAMES.startupFile;
const USER_NAME = LINUX_NAMES.user;

const LINE_ONLY = new Set<string>(STARTUP_LOCATIONS.lineOnly);
const FILE_OR_LINE = new Set<string>(STARTUP_LOCATIONS.fileOrLine);
const DROP_IN_DIRS = new Set<string>(STARTUP_LOCATIONS.dropInDirs);
const USER_LINE_ONLY = new Set<string>(STARTUP_LOCATIONS.userLineOnly);
const USER_DROP_IN_DIRS = new Set<string>(STARTUP_LOCATIONS.userDropInDirs);

/** The home folder a path is in (`/root` or `/home/USER`) and the rest of it, or null. */
function inHome(path: string): { home: string; rest: string } | null {
  if (path.startsWith('/root/')) return { home: '/root', rest: path.slice('/root/'.length) };
  const match = /^\/home\/([^/]+)\/(.+)$/.exec(path);
  return match && USER_NAME.test(match[1]!) ? { home: `/home/${match[1]}`, rest: match[2]! } : null;
}

/** Whether the whole file may be removed (a drop-in), or only a line of it; null: not a persistence location. */
function removableAs(path: string): 'file_or_line' | 'line' | null {
  const name = basename(path);
  if (!FILE_NAME.test(name)) return null;
  if (LINE_ONLY.has(path)) return 'line';
  if (FILE_OR_LINE.has(path) || DROP_IN_DIRS.has(dirname(path))) return 'file_or_line';
  const home = inHome(path);
  if (!home) return null;
  if (USER_LINE_ONLY.has(home.rest)) return 'line';
  if (USER_DROP_IN_DIRS.has(dirname(home.rest))) return 'file_or_line';
  return null;
}

/** Turns the entity and parameters into what to remove, refusing anything outside the persistence locations. */
export function persistenceOf(ctx: ExecutionContext<FileTaskType>): Task {
  const { entity, parameters } = ctx.command;
  const path = entity.path;
  const line = parameters.line;
  if (line !== undefined && (typeof line !== 'string' || line.length === 0 || /[\r\n]/.test(line))) throw new ExecutionError('parameters.line must be the text of one line, without a newline');
  if (typeof path !== 'string' || !path.startsWith('/') || normalize(path) !== path || path.endsWith('/')) throw new ExecutionError(`give entity.path, a plain absolute path: ${JSON.stringify(path)}`);
  const as = removableAs(path);
  if (as === null) throw new ExecutionError(`${path} is not a persistence location this action handles (shell startup files, authorized_keys, ld.so.preload, profile.d, update-motd.d, udev rules, apt hooks, autostart entries); cron jobs and timers are removed as scheduled tasks, services by stopping them`);
  if (line === undefined) {
    if (as === 'line') throw new ExecutionError(`${path} is read by every login or start and is never removed whole: name the line to remove in parameters.line`);
    return { kind: 'cron_file', path };
  }
  return { kind: 'cron_line', path, line };
}

export const { remove: removePersistence, restore: restorePersistence } = fileTaskExecutors(persistenceOf);
