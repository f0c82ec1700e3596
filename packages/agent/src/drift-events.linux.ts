import { type ChildProcess, spawn } from 'node:child_process';
import { type FSWatcher, lstatSync, watch } from 'node:fs';
import type { DriftSignals } from './drift-watch.ts';

export interface DriftTriggers {
  /** Follows exactly these signals from now on (the effects in force changed). */
  follow(signals: readonly DriftSignals[]): void;
  close(): void;
}

/** The commands that print a line for each change of what a signal follows. */
const MONITORS = {
  firewall: ['nft', 'monitor', 'ruleset'],
  mounts: ['findmnt', '--poll', '--noheadings', '--output', 'TARGET'],
  links: ['ip', '-o', 'monitor', 'link'],
} as const;
type Monitor = keyof typeof MONITORS;

/** Changes closer together than this start one check. */
const SETTLE_MS = 200;

/**
 * Turns the kernel's events into drift checks, so that tampering is put back
 * within a fraction of a second rather than at the next periodic check:
 * inotify on the folders the effects depend on, `nft monitor` for the
 * firewall, `findmnt --poll` for the mount table, `ip monitor link` for new
 * interfaces (a container's bridge). What has no event (a
 * unit started again, a process of a contained user) waits for the periodic
 * check. The monitors die with the agent (a parent-death signal), and one
 * that fails leaves the periodic check to do its work.
 */
export function driftTriggers(onChange: () => void, onError: (source: string, error: Error) => void): DriftTriggers {
  let settling: NodeJS.Timeout | null = null;
  const changed = (): void => {
    if (settling) return;
    settling = setTimeout(() => {
      settling = null;
      onChange();
    }, SETTLE_MS);
  };

  const folders = new Map<string, FSWatcher>();
  const monitors = new Map<Monitor, ChildProcess>();
  /** Monitors that could not start (the command missing): not tried again. */
  const unavailable = new Set<Monitor>();

  /** Whether the folder is watched now. */
  function watchFolder(folder: string): boolean {
    try {
      // Only a real folder: a link there would have the agent watch where an attacker points it.
      if (!lstatSync(folder).isDirectory()) return false;
      const watcher = watch(folder, { persistent: false }, changed);
      watcher.on('error', (error) => {
        onError(folder, error);
        watcher.close();
        folders.delete(folder);
      });
      folders.set(folder, watcher);
      return true;
    } catch {
      return false; // not there (yet): the periodic check covers it
    }
  }

  function startMonitor(kind: Monitor): void {
    const command = MONITORS[kind];
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...command], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', changed);
    // What changed before the monitor was running is seen by one more check once it runs.
    child.once('spawn', changed);
    child.on('error', (error) => {
      unavailable.add(kind);
      onError(command.join(' '), error);
    });
    child.on('exit', (code) => {
      if (code === 127) unavailable.add(kind);
      if (monitors.get(kind) === child) monitors.delete(kind);
    });
    monitors.set(kind, child);
  }

  return {
    follow(signals) {
      const wanted = new Set(signals.flatMap((s) => s.folders ?? []));
      for (const [folder, watcher] of folders) {
        if (!wanted.has(folder)) {
          watcher.close();
          folders.delete(folder);
        }
      }
      const watchedNow = [...wanted].filter((folder) => !folders.has(folder) && watchFolder(folder));
      // What changed there before the watch began is seen by one more check.
      if (watchedNow.length > 0) changed();
      for (const kind of Object.keys(MONITORS) as Monitor[]) {
        const needed = signals.some((s) => s[kind]);
        if (needed && !monitors.has(kind) && !unavailable.has(kind)) startMonitor(kind);
        if (!needed) monitors.get(kind)?.kill();
      }
    },
    close() {
      if (settling) clearTimeout(settling);
      for (const watcher of folders.values()) watcher.close();
      for (const child of monitors.values()) child.kill();
      folders.clear();
      monitors.clear();
    },
  };
}
