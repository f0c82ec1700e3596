import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The last desired state the agent accepted, as the server signed it, kept
 * so that a restart (or a reboot that emptied the firewall) enforces it
 * again before the server is reachable, and so that an older version shown
 * again later is never taken for a newer one.
 */
export interface StoredState { version: number; jws: string }

const fileOf = (dir: string): string => join(dir, 'desired-state.json');

export function loadState(dir: string): StoredState | null {
  const file = fileOf(dir);
  if (!existsSync(file)) return null;
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as StoredState;
    return Number.isSafeInteger(stored.version) && typeof stored.jws === 'string' ? stored : null;
  } catch {
    return null;
  }
}

/** Written to a temporary file, fsynced, then renamed over the old one: never half a state. */
export function saveState(dir: string, state: StoredState): void {
  const file = fileOf(dir);
  const temporary = `${file}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}
