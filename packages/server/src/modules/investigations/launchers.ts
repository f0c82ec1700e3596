import { basename, dirname, normalize } from 'node:path';
import { type ActionType, CRON_LOCATIONS, type EvidenceReport, LINUX_NAMES, STARTUP_LOCATIONS } from '@quell/contracts';

type PersistenceEntry = EvidenceReport['persistence'][number];

/**
 * What launches an executable, read from a device's evidence report, and
 * the action that removes each launcher with an executor the agent already
 * has. The report's text is the device's (an attacker's, perhaps): a
 * launcher is proposed only when its file, line or unit name is a target
 * the agent's executor accepts, and the agent checks it again.
 */
export interface Launcher {
  type: LauncherRemoval;
  entity: { name: string; path?: string };
  parameters: Record<string, string | boolean>;
  /** What it is, for the investigation's entities and log: "crontab line of /etc/crontab", "systemd service evil.service". */
  what: string;
}

type LauncherRemoval = Extract<ActionType, 'remove_scheduled_task' | 'stop_service' | 'remove_persistence'>;
/** A launcher's kind among an investigation's entities, by its removal: never `file` or `process`, which are quarantined. */
export const LAUNCHER_KINDS: Record<LauncherRemoval, string> = { remove_scheduled_task: 'scheduled_task', stop_service: 'service', remove_persistence: 'startup_entry' };

const { crontab: SYSTEM_CRONTAB, userCrontabs: USER_CRONTAB_DIR } = CRON_LOCATIONS;
/** Folders whose files remove_scheduled_task removes whole or by line: cron files and run-parts scripts. */
const CRON_FILE_DIRS: readonly string[] = [...CRON_LOCATIONS.fileDirs, ...CRON_LOCATIONS.scriptDirs];
/** The folders whose unit files stop_service removes with removeUnitFile; a unit elsewhere is masked instead. */
const REMOVABLE_UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system'];
/** The folder remove_scheduled_task finds a timer in by its name. */
const TIMER_DIR = '/etc/systemd/system';
/** The names the agent's executors accept (scheduled-task.linux.ts, service.linux.ts). */
const { cronFile: CRON_FILE_NAME, user: USER_NAME, unit: UNIT_NAME, startupFile: STARTUP_FILE_NAME } = LINUX_NAMES;
/** The agent cuts an entry's text at this length: a line this long may not be the whole line, and is never proposed. */
const ENTRY_TEXT_MAX = 1024;
/** `NAME=value` in a cron file: an environment setting, not a job. */
const CRON_SETTING = /^\s*[A-Za-z_][A-Za-z0-9_]*\s*=/;

const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Whether a command line runs the executable at `path`: the path as a whole
 * word, not the start of a longer one. Before it may stand systemd's
 * ExecStart prefixes (`-`, `@`, `:`, `+`, `!`).
 */
export function names(text: string, path: string): boolean {
  return new RegExp(`(^|[\\s'"=;&|(@:+!-])${escaped(path)}($|[\\s'";&|)<>])`).test(text);
}

const plainPath = (path: string): boolean => path.startsWith('/') && normalize(path) === path && !path.endsWith('/');
const oneLine = (line: string): boolean => line.trim().length > 0 && line.length < ENTRY_TEXT_MAX && !/[\r\n\0]/.test(line);

/** The removal of one cron line or file that runs a malicious executable; null when the source is not a cron file the agent edits. */
function cronRemoval(entry: PersistenceEntry, wholeFile: boolean): Launcher | null {
  const file = entry.source;
  if (!plainPath(file) || !oneLine(entry.text)) return null;
  const name = basename(file);
  const cronFile = CRON_FILE_DIRS.includes(dirname(file)) && CRON_FILE_NAME.test(name);
  const crontab = file === SYSTEM_CRONTAB || (dirname(file) === USER_CRONTAB_DIR && USER_NAME.test(name));
  if (!cronFile && !crontab) return null;
  if (cronFile && wholeFile) return { type: 'remove_scheduled_task', entity: { name, path: file }, parameters: {}, what: `cron file ${file}` };
  return { type: 'remove_scheduled_task', entity: { name, path: file }, parameters: { line: entry.text }, what: `line of ${file}` };
}

/** How remove_persistence takes a startup file (STARTUP_LOCATIONS): whole or by line, or by line only; null when it is none it handles. */
function startupFile(path: string): 'file_or_line' | 'line' | null {
  if (!plainPath(path) || !STARTUP_FILE_NAME.test(basename(path))) return null;
  const among = (list: readonly string[], item: string): boolean => list.includes(item);
  if (among(STARTUP_LOCATIONS.lineOnly, path)) return 'line';
  if (among(STARTUP_LOCATIONS.fileOrLine, path) || among(STARTUP_LOCATIONS.dropInDirs, dirname(path))) return 'file_or_line';
  const home = /^(\/root|\/home\/([^/]+))\/(.+)$/.exec(path);
  if (home === null || (home[2] !== undefined && !USER_NAME.test(home[2]))) return null;
  if (among(STARTUP_LOCATIONS.userLineOnly, home[3]!)) return 'line';
  return among(STARTUP_LOCATIONS.userDropInDirs, dirname(home[3]!)) ? 'file_or_line' : null;
}

/** A unit file's `Key=value` settings, each key with its values in order. */
function settings(text: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s*=\s*(.*)$/.exec(raw);
    if (match) found.set(match[1]!, [...(found.get(match[1]!) ?? []), match[2]!.trim()]);
  }
  return found;
}

/**
 * The launchers of the executables at `paths` in a device's evidence
 * report, each with the removal to propose:
 * - a cron line that runs one: its removal by line; a whole /etc/cron.d
 *   file or run-parts script (/etc/cron.daily…) when every job in it runs
 *   one of them (and the report holds the whole file: nothing was left out
 *   of it);
 * - a systemd service whose ExecStart runs one: stop it and remove its unit
 *   file (masked instead where the agent does not remove unit files);
 * - a systemd timer that starts such a service: its removal by name;
 * - a line of a startup file (STARTUP_LOCATIONS: shell startup files,
 *   authorized_keys, ld.so.preload, profile.d and update-motd.d scripts,
 *   udev rules, apt hooks, autostart entries) that runs or loads one: its
 *   removal by line; ld.so.preload or a drop-in file whole when every line
 *   of it does.
 */
export function launchersOf(report: EvidenceReport, paths: readonly string[]): Map<string, Launcher[]> {
  const found = new Map<string, Launcher[]>(paths.map((p) => [p, []]));
  const runs = (text: string): string[] => paths.filter((p) => names(text, p));
  const cronBySource = new Map<string, PersistenceEntry[]>();
  for (const entry of report.persistence) if (entry.kind === 'cron') cronBySource.set(entry.source, [...(cronBySource.get(entry.source) ?? []), entry]);
  for (const entries of cronBySource.values()) {
    const jobs = entries.filter((e) => !CRON_SETTING.test(e.text));
    // Cut reports may have left lines of this file out: then only lines are removed.
    const wholeFile = report.leftOut === 0 && jobs.length > 0 && jobs.every((e) => runs(e.text).length > 0 && oneLine(e.text));
    let fileProposed = false;
    for (const entry of jobs) {
      const targets = runs(entry.text);
      if (targets.length === 0) continue;
      const removal = cronRemoval(entry, wholeFile);
      if (removal === null || (removal.parameters.line === undefined && fileProposed)) continue;
      fileProposed ||= removal.parameters.line === undefined;
      // One removal per launcher, listed under the first executable it runs.
      found.get(targets[0]!)!.push(removal);
    }
  }
  const startupBySource = new Map<string, PersistenceEntry[]>();
  for (const entry of report.persistence) if (entry.kind === 'startup') startupBySource.set(entry.source, [...(startupBySource.get(entry.source) ?? []), entry]);
  for (const [source, entries] of startupBySource) {
    const as = startupFile(source);
    if (as === null) continue;
    // A drop-in or ld.so.preload every line of which runs one of them is the attacker's whole; the agent reports every line of those once one names a drop path.
    // An autostart entry exists to run its Exec= line: when that runs one of them, the entry is the attacker's whole.
    const desktopEntry = source.endsWith('.desktop') && entries.some((e) => /^\s*Exec\s*=/.test(e.text) && runs(e.text).length > 0);
    const whole = as === 'file_or_line' && report.leftOut === 0 && (desktopEntry || entries.every((e) => runs(e.text).length > 0 && oneLine(e.text)));
    if (whole) {
      found.get(entries.flatMap((e) => runs(e.text))[0]!)!.push({ type: 'remove_persistence', entity: { name: basename(source), path: source }, parameters: {}, what: `startup file ${source}` });
      continue;
    }
    for (const entry of entries) {
      const targets = runs(entry.text);
      if (targets.length === 0 || !oneLine(entry.text)) continue;
      found.get(targets[0]!)!.push({ type: 'remove_persistence', entity: { name: basename(source), path: source }, parameters: { line: entry.text }, what: `line of ${source}` });
    }
  }
  const services = new Map<string, string>();
  for (const entry of report.persistence) {
    const unit = basename(entry.source);
    if (entry.kind !== 'systemd' || !unit.endsWith('.service') || !UNIT_NAME.test(unit) || !plainPath(entry.source)) continue;
    const exec = [...(settings(entry.text).get('ExecStart') ?? []), ...(settings(entry.text).get('ExecStartPre') ?? [])];
    const target = paths.find((p) => exec.some((command) => names(command, p)));
    if (target === undefined) continue;
    services.set(unit, target);
    const removable = REMOVABLE_UNIT_DIRS.includes(dirname(entry.source));
    found.get(target)!.push({
      type: 'stop_service', entity: { name: unit }, parameters: removable ? { removeUnitFile: true } : { mask: true },
      what: `systemd service ${unit} (${entry.source})`,
    });
  }
  for (const entry of report.persistence) {
    const timer = basename(entry.source);
    if (entry.kind !== 'systemd' || !timer.endsWith('.timer') || !UNIT_NAME.test(timer) || entry.source !== `${TIMER_DIR}/${timer}`) continue;
    const unit = settings(entry.text).get('Unit')?.at(-1) ?? timer.replace(/\.timer$/, '.service');
    const target = services.get(unit);
    if (target !== undefined) found.get(target)!.push({ type: 'remove_scheduled_task', entity: { name: timer }, parameters: {}, what: `systemd timer ${timer}, which starts ${unit}` });
  }
  return found;
}
