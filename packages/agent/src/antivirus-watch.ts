import { type FSWatcher, lstatSync, readdirSync, watch } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Detection, detectFile } from './executors/antivirus-scan.linux.ts';

/** Where files are watched as they appear unless the agent is told otherwise: where downloads and droppers land first. */
export const DEFAULT_WATCHED_FOLDERS = ['/tmp', '/var/tmp', '/dev/shm'] as const;

/** A file is examined once writes to it have paused this long. */
const SETTLE_MS = 150;
/** Folders watched at most, subfolders included: inotify watches are a bounded kernel resource. */
const MAX_WATCHED_FOLDERS = 4096;

export interface MalwareWatch {
  /** Examines every file in the watched folders now (at start, and when the block list changes). */
  sweep(): Promise<void>;
  close(): void;
}

/**
 * On-access antivirus: watches folders and every folder below them (new
 * ones as they appear, never through a symbolic link) for files being
 * created or changed, examines each once it settles, and hands what
 * matches a signature, a block indicator or an audit indicator to `onDetection`, one at a time
 * per path.
 */
export function watchForMalware(options: {
  folders: readonly string[];
  /** The hashes of block and audit indicators in force. */
  lists: () => { blocked: ReadonlySet<string>; audited: ReadonlySet<string> };
  onDetection: (detection: Detection) => Promise<void>;
  onError: (path: string, error: Error) => void;
}): MalwareWatch {
  const timers = new Map<string, NodeJS.Timeout>();
  const busy = new Set<string>();
  const watchers = new Map<string, FSWatcher>();
  let limitReported = false;

  /** Paths asked about again while being examined (a new block list arrived meanwhile): examined once more after. */
  const again = new Set<string>();

  async function examine(path: string): Promise<void> {
    if (busy.has(path)) {
      again.add(path);
      return;
    }
    busy.add(path);
    try {
      const detection = await detectFile(path, options.lists());
      if (detection) await options.onDetection(detection);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Gone again, or a link or directory: nothing to examine.
      if (code !== 'ENOENT' && code !== 'ELOOP' && code !== 'EISDIR') options.onError(path, error as Error);
    } finally {
      busy.delete(path);
      if (again.delete(path)) void examine(path);
    }
  }

  const schedule = (path: string): void => {
    clearTimeout(timers.get(path));
    timers.set(path, setTimeout(() => {
      timers.delete(path);
      void examine(path);
    }, SETTLE_MS));
  };

  /** Stops watching a folder that is gone, and every folder below it. */
  function forget(folder: string): void {
    for (const [path, watcher] of watchers) {
      if (path === folder || path.startsWith(`${folder}/`)) {
        watcher.close();
        watchers.delete(path);
      }
    }
  }

  /** Watches a real folder (not a link to one) and the folders below it; true when it is newly watched. */
  function watchTree(folder: string): boolean {
    if (watchers.has(folder)) return false;
    if (watchers.size >= MAX_WATCHED_FOLDERS) {
      if (!limitReported) options.onError(folder, new Error(`${MAX_WATCHED_FOLDERS} folders are watched already: files in this one are examined by scans only`));
      limitReported = true;
      return false;
    }
    let entries;
    try {
      if (!lstatSync(folder).isDirectory()) return false;
      const watcher = watch(folder, (_event, name) => {
        if (!name) return;
        const path = join(folder, name.toString());
        const stat = lstatSync(path, { throwIfNoEntry: false });
        if (!stat) forget(path);
        // A new folder: watched from now on, and what was written into it before that examined.
        else if (stat.isDirectory()) void (watchTree(path) && sweepTree(path));
        else schedule(path);
      });
      watcher.on('error', (error) => {
        forget(folder);
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') options.onError(folder, error);
      });
      watchers.set(folder, watcher);
      entries = readdirSync(folder, { withFileTypes: true });
    } catch {
      return false; // gone meanwhile, or not readable
    }
    for (const entry of entries) if (entry.isDirectory()) watchTree(join(folder, entry.name));
    return true;
  }

  /** Examines every file in the watched folders at and below `top`. */
  async function sweepTree(top: string): Promise<void> {
    for (const folder of [...watchers.keys()].filter((path) => path === top || path.startsWith(`${top}/`))) {
      const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) if (entry.isFile()) await examine(join(folder, entry.name));
    }
  }

  for (const folder of options.folders) watchTree(resolve(folder));

  return {
    async sweep() {
      for (const folder of options.folders) await sweepTree(resolve(folder));
    },
    close() {
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
      for (const timer of timers.values()) clearTimeout(timer);
    },
  };
}
