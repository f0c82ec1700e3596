import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** One line of the journal. */
type Entry =
  | { k: 'start'; actionId: string; nonce: string; exp: number; at: number; type?: string; undoOf?: string | null }
  | { k: 'done'; actionId: string; outcome: 'completed' | 'failed'; output?: string; error?: string; snapshot?: unknown; at: number }
  /** An action the agent took on its own, and its signed report, kept until the server acknowledges it. */
  | { k: 'local'; actionId: string; report: string; at: number }
  | { k: 'local_ack'; actionId: string; at: number };

export interface Outcome { outcome: 'completed' | 'failed'; output?: string; error?: string; snapshot?: unknown }

/**
 * The agent's append-only journal, written and fsynced before each step it
 * records. It makes execution exactly-once per action id: a command seen
 * again returns the stored outcome instead of running again, and an action
 * started but never finished (the agent died mid-way) is reported as
 * interrupted rather than re-run blindly. It also keeps the snapshot that
 * undo restores.
 */
export class Journal {
  private readonly fd: number;
  private readonly started = new Map<string, Extract<Entry, { k: 'start' }>>();
  private readonly done = new Map<string, Extract<Entry, { k: 'done' }>>();
  private readonly nonces = new Map<string, number>();
  private readonly unreported = new Map<string, string>();

  constructor(dir: string) {
    const file = join(dir, 'journal.jsonl');
    let tornTail = false;
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8');
      tornTail = text.length > 0 && !text.endsWith('\n');
      for (const line of text.split('\n')) {
        if (!line) continue;
        let entry: Entry;
        try {
          entry = JSON.parse(line) as Entry;
        } catch {
          continue; // a line torn by a crash mid-write: its step never completed
        }
        if (entry.k === 'start') {
          this.started.set(entry.actionId, entry);
          this.nonces.set(entry.nonce, entry.exp);
        } else if (entry.k === 'done') {
          this.done.set(entry.actionId, entry);
        } else if (entry.k === 'local') {
          this.unreported.set(entry.actionId, entry.report);
        } else {
          this.unreported.delete(entry.actionId);
        }
      }
    }
    this.fd = openSync(file, 'a', 0o600);
    // End a line torn by a crash before appending: glued onto it, the next entry (say, the start of an
    // action) would be unreadable at the next start, and that action could then run a second time.
    if (tornTail) this.write('\n');
  }

  /** Writes all of `text` (a write may take only part of it) and makes it durable before returning. */
  private write(text: string): void {
    const bytes = Buffer.from(text);
    for (let offset = 0; offset < bytes.length;) offset += writeSync(this.fd, bytes, offset);
    fsyncSync(this.fd);
  }

  private append(entry: Entry): void {
    this.write(JSON.stringify(entry) + '\n');
  }

  outcomeOf(actionId: string): Outcome | null {
    const entry = this.done.get(actionId);
    return entry ? { outcome: entry.outcome, output: entry.output, error: entry.error, snapshot: entry.snapshot } : null;
  }

  wasStarted(actionId: string): boolean {
    return this.started.has(actionId);
  }

  nonceSeen(nonce: string): boolean {
    return this.nonces.has(nonce);
  }

  /** The snapshot a completed action left, which its undo restores. */
  snapshotOf(actionId: string): unknown {
    const entry = this.done.get(actionId);
    return entry?.outcome === 'completed' ? entry.snapshot : undefined;
  }

  start(actionId: string, nonce: string, exp: number, type: string, undoOf: string | null): void {
    const entry = { k: 'start' as const, actionId, nonce, exp, at: Date.now(), type, undoOf };
    this.append(entry);
    this.started.set(actionId, entry);
    this.nonces.set(nonce, exp);
  }

  finish(actionId: string, outcome: Outcome): void {
    const entry = { k: 'done' as const, actionId, ...outcome, at: Date.now() };
    this.append(entry);
    this.done.set(actionId, entry);
  }

  /**
   * The last completed action of `type` that no completed `undoType` action
   * has undone since: the state this device must be in (e.g. isolated).
   */
  inForce(type: string, undoType: string): { actionId: string; snapshot: unknown } | null {
    let current: { actionId: string; snapshot: unknown } | null = null;
    for (const [actionId, start] of this.started) {
      const done = this.done.get(actionId);
      if (done?.outcome !== 'completed') continue;
      if (start.type === type) current = { actionId, snapshot: done.snapshot };
      else if (start.type === undoType && current !== null && start.undoOf === current.actionId) current = null;
    }
    return current;
  }

  /**
   * Files an analyst had restored from quarantine, as `path` and SHA-256:
   * the antivirus leaves exactly those alone rather than taking them again.
   */
  restoredFile(path: string, sha256: string): boolean {
    for (const [actionId, start] of this.started) {
      if (start.type !== 'restore_file' || !start.undoOf || this.done.get(actionId)?.outcome !== 'completed') continue;
      const original = this.snapshotOf(start.undoOf) as { path?: string; sha256?: string } | undefined;
      if (original?.path === path && original.sha256 === sha256) return true;
    }
    return false;
  }

  /** Keeps the signed report of an action the agent took on its own until the server has it. */
  reportLocal(actionId: string, report: string): void {
    this.append({ k: 'local', actionId, report, at: Date.now() });
    this.unreported.set(actionId, report);
  }

  acknowledgeLocal(actionId: string): void {
    if (!this.unreported.has(actionId)) return;
    this.append({ k: 'local_ack', actionId, at: Date.now() });
    this.unreported.delete(actionId);
  }

  /** Reports the server has not acknowledged yet: sent again on every connection. */
  unacknowledgedReports(): string[] {
    return [...this.unreported.values()];
  }

  close(): void {
    closeSync(this.fd);
  }
}
