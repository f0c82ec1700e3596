import { type FSWatcher, existsSync, watch } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type ScanFinding, detectFile } from './executors/antivirus-scan.linux.ts';

/** Where files are watched as they appear unless the agent is told otherwise: where downloads and droppers land first. */
export const DEFAULT_WATCHED_FOLDERS = ['/tmp', '/var/tmp', '/dev/shm'] as const;

/** A file is examined once writes to it have paused this long. */
const SETTLE_MS = 150;

export interface MalwareWatch {
  /** Examines every file in the watched folders now (at start, and when the block list changes). */
  sweep(): Promise<void>;
  close(): void;
}

/**
 * On-access antivirus: watches folders for files being created or
 * changed, examines each once it settles, and hands what matches a
 * signature or a block indicator to `onDetection`, one at a time per path.
 */
export function watchForMalware(options: {
  folders: readonly string[];
  blocked: () => ReadonlySet<string>;
  onDetection: (finding: ScanFinding) => Promise<void>;
  onError: (path: string, error: Error) => void;
}): MalwareWatch {
  const timers = new Map<string, NodeJS.Timeout>();
  const busy = new Set<string>();
  const watchers: FSWatcher[] = [];

  async function examine(path: string): Promise<void> {
    if (busy.has(path)) return;
    busy.add(path);
    try {
      const finding = await detectFile(path, options.blocked());
      if (finding) await options.onDetection(finding);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Gone again, or a link or directory: nothing to examine.
      if (code !== 'ENOENT' && code !== 'ELOOP' && code !== 'EISDIR') options.onError(path, error as Error);
    } finally {
      busy.delete(path);
    }
  }

  const schedule = (path: string): void => {
    clearTimeout(timers.get(path));
    timers.set(path, setTimeout(() => {
      timers.delete(path);
      void examine(path);
    }, SETTLE_MS));
  };

  for (const folder of options.folders) {
    if (!existsSync(folder)) continue;
    const watcher = watch(folder, (_event, name) => {
      if (name) schedule(join(folder, name.toString()));
    });
    watcher.on('error', (error) => options.onError(folder, error));
    watchers.push(watcher);
  }

  return {
    async sweep() {
      for (const folder of options.folders) {
        const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
        for (const entry of entries) if (entry.isFile()) await examine(join(folder, entry.name));
      }
    },
    close() {
      for (const watcher of watchers) watcher.close();
      for (const timer of timers.values()) clearTimeout(timer);
    },
  };
}
