import { type ChildProcess, spawn } from 'node:child_process';
import { type FSWatcher, lstatSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { DriftSignals } from './drift-watch.ts';

/** A check the events are followed for: its key, and what may mean its effect was lifted. */
export interface FollowedCheck { key: string; signals: DriftSignals }

export interface DriftTriggers {
  /** Follows exactly these checks' signals from now on (the effects in force changed). */
  follow(checks: readonly FollowedCheck[]): void;
  close(): void;
}

/** How long a monitor may take after it starts to subscribe to the kernel's events. */
const MONITOR_STARTUP_MS = 300;

/** The commands that print a line for each change of what a signal follows. */
const MONITORS = {
  firewall: ['nft', 'monitor', 'ruleset'],
  mounts: ['findmnt', '--poll', '--noheadings', '--output', 'TARGET'],
  links: ['ip', '-o', 'monitor', 'link'],
} as const;
type Monitor = keyof typeof MONITORS;

/** Changes closer together than this start one check. */
const SETTLE_MS = 200;

/** One watched folder: which checks any change there concerns, and which a change of one of its entries. */
interface WatchedFolder { watcher: FSWatcher; anyChange: Set<string>; byName: Map<string, Set<string>> }

/**
 * Turns the kernel's events into drift checks of exactly the effects they
 * concern, so that tampering is put back within a fraction of a second
 * rather than at the next periodic check: inotify on the folders of the
 * files the effects depend on (a busy /tmp checks only the quarantines of
 * the names that changed), `nft monitor` for the firewall, `findmnt --poll`
 * for the mount table, `ip monitor link` for new interfaces (a container's
 * bridge). What has no event (a unit started again, a process of a
 * contained user) waits for the periodic check. The monitors die with the
 * agent (a parent-death signal), and one that fails leaves the periodic
 * check to do its work.
 */
export function driftTriggers(onChange: (keys: ReadonlySet<string>) => void, onError: (source: string, error: Error) => void): DriftTriggers {
  let pending = new Set<string>();
  let settling: NodeJS.Timeout | null = null;
  const changed = (keys: Iterable<string>): void => {
    for (const key of keys) pending.add(key);
    if (settling || pending.size === 0) return;
    settling = setTimeout(() => {
      settling = null;
      const keys = pending;
      pending = new Set();
      onChange(keys);
    }, SETTLE_MS);
  };

  const folders = new Map<string, WatchedFolder>();
  const monitors = new Map<Monitor, ChildProcess>();
  const monitorKeys = new Map<Monitor, Set<string>>();
  /** Monitors that saw a change while no check followed them. */
  const unclaimed = new Set<Monitor>();
  /** Monitors that could not start (the command missing): not tried again. */
  const unavailable = new Set<Monitor>();

  /** Watches a real folder (never a link to one: the agent would watch where an attacker points it); null when it cannot. */
  function watchFolder(folder: string): WatchedFolder | null {
    try {
      if (!lstatSync(folder).isDirectory()) return null;
      const watched: WatchedFolder = { watcher: watch(folder, { persistent: false }, (_event, name) => {
        const byName = name ? watched.byName.get(name.toString()) : [...watched.byName.values()].flatMap((keys) => [...keys]);
        changed([...watched.anyChange, ...(byName ?? [])]);
      }), anyChange: new Set(), byName: new Map() };
      watched.watcher.on('error', (error) => {
        onError(folder, error);
        watched.watcher.close();
        folders.delete(folder);
      });
      return watched;
    } catch {
      return null; // not there (yet): the periodic check covers it
    }
  }

  function startMonitor(kind: Monitor): void {
    const command = MONITORS[kind];
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...command], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', () => {
      const keys = monitorKeys.get(kind) ?? new Set<string>();
      // No check follows it right now (a round is taking its reference): the next one that does is told.
      if (keys.size === 0) unclaimed.add(kind);
      changed(keys);
    });
    // What changed before the monitor was listening is seen by one more check once it runs, and by another once it has
    // surely subscribed to the kernel's events (a moment after it starts).
    child.once('spawn', () => {
      changed(monitorKeys.get(kind) ?? []);
      setTimeout(() => changed(monitorKeys.get(kind) ?? []), MONITOR_STARTUP_MS).unref();
    });
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
    follow(checks) {
      const wanted = new Map<string, { anyChange: Set<string>; byName: Map<string, Set<string>> }>();
      const wantedIn = (folder: string) => wanted.get(folder) ?? wanted.set(folder, { anyChange: new Set(), byName: new Map() }).get(folder)!;
      for (const { key, signals } of checks) {
        for (const folder of signals.folders ?? []) wantedIn(folder).anyChange.add(key);
        for (const file of signals.files ?? []) {
          const { byName } = wantedIn(dirname(file));
          (byName.get(basename(file)) ?? byName.set(basename(file), new Set()).get(basename(file))!).add(key);
        }
      }
      for (const [folder, watched] of folders) {
        if (!wanted.has(folder)) {
          watched.watcher.close();
          folders.delete(folder);
        }
      }
      for (const [folder, want] of wanted) {
        let watched = folders.get(folder);
        if (!watched) {
          watched = watchFolder(folder) ?? undefined;
          if (!watched) continue;
          folders.set(folder, watched);
          // What changed there before the watch began is seen by one more check.
          changed([...want.anyChange, ...[...want.byName.values()].flatMap((keys) => [...keys])]);
        }
        watched.anyChange = want.anyChange;
        watched.byName = want.byName;
      }
      for (const kind of Object.keys(MONITORS) as Monitor[]) {
        const keys = new Set(checks.filter((c) => c.signals[kind]).map((c) => c.key));
        monitorKeys.set(kind, keys);
        if (keys.size > 0 && unclaimed.delete(kind)) changed(keys);
        // A monitor once started keeps running while nothing needs it: started again, it would miss what changes while it starts.
        if (keys.size > 0 && !monitors.has(kind) && !unavailable.has(kind)) startMonitor(kind);
      }
    },
    close() {
      if (settling) clearTimeout(settling);
      for (const { watcher } of folders.values()) watcher.close();
      for (const child of monitors.values()) child.kill();
      folders.clear();
      monitors.clear();
    },
  };
}
