import { closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DecodedLine, type DoneEntry, type Entry, HEADER, MAX_LINE_BYTES, type StartEntry, decodeLine, encodeLine, forEachLine, isTime, replaceFile, writeAll } from './journal-format.ts';
import { Watermark } from './watermark.ts';

/** Output kept for a result not acknowledged yet, in characters: four times what the server keeps of it. */
const JOURNALED_OUTPUT_MAX = 256 * 1024;
/** How many damaged lines are listed one by one; beyond that they are only counted. */
const DAMAGE_LIST_MAX = 100;
/** A command's entries outlive its expiry by this long, in case the clock is set back. */
const EXPIRY_MARGIN_MS = 86_400_000;
/** Compaction runs after this many acknowledgements, or once the file has doubled (and grown by at least COMPACT_AFTER_BYTES). */
const COMPACT_AFTER_ACKS = 1000;
const COMPACT_AFTER_BYTES = 16 * 1024 * 1024;
/** restoredFile answers from these: a file an analyst restored is left alone from then on. */
const RESTORE_FILE = 'restore_file';

export interface Outcome { outcome: 'completed' | 'failed'; output?: string; error?: string; snapshot?: unknown }

/** A line or file the journal could not trust, and skipped. */
export interface Damage { file: 'journal.jsonl' | 'watermark.json'; line: number; reason: string }

export interface JournalOptions {
  /** The clock compaction judges expiry by, in milliseconds since the epoch. */
  now?: () => number;
  /** Told when the journal could not be compacted or the watermark saved: the agent goes on, the journal is still whole. */
  warn?: (message: string, fields: object) => void;
  compactAfterAcks?: number;
  compactAfterBytes?: number;
}

/**
 * The agent's append-only journal, written and fsynced before each step it
 * records. It makes execution exactly-once per action id: a command seen
 * again returns the stored outcome instead of running again, and an action
 * started but never finished (the agent died mid-way) is reported as
 * interrupted rather than re-run blindly. It also keeps the snapshot that
 * undo restores.
 *
 * Every line is checksummed and checked on load; a line that fails is
 * skipped and listed in `damaged` (the file as loaded is kept beside it as
 * journal.jsonl.damaged, for those line numbers). Whatever the journal has
 * lost, the watermark still refuses a command accepted before. The journal
 * is compacted at each start and as acknowledgements accumulate: see
 * `keeps` for what stays.
 */
export class Journal {
  private readonly file: string;
  private readonly watermarkFile: string;
  private fd = -1;
  private readonly now: () => number;
  private readonly warn: (message: string, fields: object) => void;
  private readonly compactAfterAcks: number;
  private readonly compactAfterBytes: number;
  private readonly started = new Map<string, StartEntry>();
  private readonly done = new Map<string, DoneEntry>();
  /** Actions this process has started and not finished: running now (one left unfinished by an earlier run was interrupted). */
  private readonly running = new Set<string>();
  private readonly nonces = new Map<string, number>();
  /** Actions whose result (or local report) the server has recorded. */
  private readonly acknowledged = new Set<string>();
  private readonly unreported = new Map<string, string>();
  /** Moved by every command accepted, and saved for the next start. */
  private readonly watermark = new Watermark();
  private readonly watermarkAtOpen: Watermark;
  private readonly damage: Damage[] = [];
  private damagedLines = 0;
  private tornTail = false;
  private acksSinceCompaction = 0;
  private bytesSinceCompaction = 0;
  private compactedBytes = 0;

  constructor(private readonly dir: string, options: JournalOptions = {}) {
    this.file = join(dir, 'journal.jsonl');
    this.watermarkFile = join(dir, 'watermark.json');
    this.now = options.now ?? Date.now;
    this.warn = options.warn ?? (() => {});
    this.compactAfterAcks = options.compactAfterAcks ?? COMPACT_AFTER_ACKS;
    this.compactAfterBytes = options.compactAfterBytes ?? COMPACT_AFTER_BYTES;
    if (existsSync(this.file)) this.load();
    this.loadWatermark();
    this.watermarkAtOpen = this.watermark.copy();
    this.compactAtStart();
  }

  /** Lines (and the watermark) skipped as damaged at load: at most DAMAGE_LIST_MAX of them; `damagedCount` counts all. */
  get damaged(): readonly Damage[] {
    return this.damage;
  }

  get damagedCount(): number {
    return this.damagedLines;
  }

  private noteDamage(file: Damage['file'], line: number, reason: string): void {
    this.damagedLines += 1;
    if (this.damage.length < DAMAGE_LIST_MAX) this.damage.push({ file, line, reason });
  }

  private load(): void {
    let legacy = true;
    forEachLine(this.file, (line, number, ended) => {
      if (number === 1 && line?.toString('latin1') === HEADER) {
        legacy = false;
        return;
      }
      if (line?.length === 0) return;
      const decoded: DecodedLine = line === null ? { damage: `longer than ${MAX_LINE_BYTES} bytes` } : decodeLine(line, legacy);
      if (!ended) this.tornTail = true;
      if ('entry' in decoded) return this.apply(decoded.entry);
      // A last line with no newline was torn by a crash mid-write: its step never completed, as before.
      if (ended) this.noteDamage('journal.jsonl', number, decoded.damage);
    });
  }

  private loadWatermark(): void {
    if (!existsSync(this.watermarkFile)) return;
    const problem = statSync(this.watermarkFile).size > MAX_LINE_BYTES ? 'too large' : this.watermark.merge(readFileSync(this.watermarkFile, 'utf8'));
    if (problem) this.noteDamage('watermark.json', 1, problem);
  }

  /** What one entry says, in memory. Output text is let go once acknowledged, or when its command has expired: nothing asks for it again. */
  private apply(entry: Entry): void {
    const { actionId } = entry;
    switch (entry.k) {
      case 'start':
        this.started.set(actionId, entry);
        this.nonces.set(entry.nonce, entry.exp);
        if (isTime(entry.iat)) this.watermark.accept(actionId, entry.iat);
        return;
      case 'done':
        this.done.set(actionId, this.acknowledged.has(actionId) || this.expired(actionId) ? without(entry, 'output') : entry);
        return;
      case 'local':
        this.unreported.set(actionId, entry.report);
        return;
      case 'local_ack':
        this.unreported.delete(actionId);
        this.markAcknowledged(actionId);
        return;
      case 'result_ack':
        this.markAcknowledged(actionId);
        return;
    }
  }

  /** Whether the action's command has expired, with a margin for a clock set back; unknown without its start. */
  private expired(actionId: string): boolean {
    const start = this.started.get(actionId);
    return start !== undefined && start.exp * 1000 + EXPIRY_MARGIN_MS <= this.now();
  }

  private markAcknowledged(actionId: string): void {
    this.acknowledged.add(actionId);
    const done = this.done.get(actionId);
    if (done) this.done.set(actionId, without(done, 'output'));
  }

  /** Writes an entry and makes it durable before returning. */
  private append(entry: Entry): void {
    this.bytesSinceCompaction += writeAll(this.fd, encodeLine(entry));
    fsyncSync(this.fd);
    this.apply(entry);
  }

  outcomeOf(actionId: string): Outcome | null {
    const entry = this.done.get(actionId);
    return entry ? { outcome: entry.outcome, output: entry.output, error: entry.error, snapshot: entry.snapshot } : null;
  }

  wasStarted(actionId: string): boolean {
    return this.started.has(actionId);
  }

  /** Actions started and never finished: the agent stopped while carrying them out. */
  unfinished(): Array<{ actionId: string; type: string | undefined; undoOf: string | null | undefined }> {
    return [...this.started.values()].filter((start) => !this.done.has(start.actionId)).map(({ actionId, type, undoOf }) => ({ actionId, type, undoOf }));
  }

  nonceSeen(nonce: string): boolean {
    return this.nonces.has(nonce);
  }

  /**
   * Why a command the journal does not know must not run, or null: it was
   * issued more than STALE_TOLERANCE_SECONDS before the newest command
   * accepted, or it was accepted before and the journal lost it.
   *
   * Judged against the watermark as it stood when the journal was opened.
   * What this process accepted since is in its journal in memory, which no
   * damage to the file takes away; and commands sent together are verified
   * concurrently, so the newer of two can be accepted a moment before the
   * older, which the moving watermark would then refuse though it never ran.
   */
  staleReason(command: { actionId: string; iat: number }): string | null {
    if (this.started.has(command.actionId) || this.done.has(command.actionId)) return null;
    return this.watermarkAtOpen.staleReason(command.actionId, command.iat);
  }

  /** The snapshot a completed action left, which its undo restores. */
  snapshotOf(actionId: string): unknown {
    const entry = this.done.get(actionId);
    return entry?.outcome === 'completed' ? entry.snapshot : undefined;
  }

  /** `iat`: the command's issued-at, which moves the watermark; null for an action the agent takes on its own. */
  start(actionId: string, nonce: string, exp: number, type: string, undoOf: string | null, iat: number | null): void {
    this.append({ k: 'start', actionId, nonce, exp, iat, at: this.now(), type, undoOf });
    this.running.add(actionId);
    // After the journal entry: a crash in between leaves the watermark to be recovered from the journal.
    if (iat !== null) this.saveWatermark();
    this.compactWhenDue();
  }

  finish(actionId: string, outcome: Outcome): void {
    const output = outcome.output !== undefined && outcome.output.length > JOURNALED_OUTPUT_MAX ? outcome.output.slice(0, JOURNALED_OUTPUT_MAX) : outcome.output;
    this.append({ k: 'done', actionId, ...outcome, ...(output !== undefined ? { output } : {}), at: this.now() });
    this.running.delete(actionId);
    this.compactWhenDue();
  }

  /** The server has recorded this action's result: its output need not be kept any more. */
  acknowledgeResult(actionId: string): void {
    if (!this.done.has(actionId) || this.acknowledged.has(actionId)) return;
    this.append({ k: 'result_ack', actionId, at: this.now() });
    this.acksSinceCompaction += 1;
    this.compactWhenDue();
  }

  /**
   * The last completed action of `type` that no `undoType` action has undone
   * since, nor is undoing right now: the state this device must be in (e.g.
   * isolated). An undo running now counts, so that the drift watch never
   * puts back what an undo is taking away; should it fail, the effect is in
   * force again.
   */
  inForce(type: string, undoType: string): { actionId: string; snapshot: unknown } | null {
    let current: { actionId: string; snapshot: unknown } | null = null;
    for (const [actionId, start] of this.started) {
      const done = this.done.get(actionId);
      if (start.type === type && done?.outcome === 'completed') current = { actionId, snapshot: done.snapshot };
      else if (start.type === undoType && current !== null && start.undoOf === current.actionId && this.undoing(actionId)) current = null;
    }
    return current;
  }

  /** An undo that has completed, or is running now. One an earlier run left unfinished is not: its effect is unknown, so what it undid stays in force. */
  private undoing(undoId: string): boolean {
    return this.running.has(undoId) || this.done.get(undoId)?.outcome === 'completed';
  }

  /** Every completed action of `type` that no `undoType` action has undone or is undoing: effects in force per entity (each contained user). */
  allInForce(type: string, undoType: string): Array<{ actionId: string; snapshot: unknown }> {
    const undone = new Set<string>();
    for (const [actionId, start] of this.started) {
      if (start.type === undoType && start.undoOf && this.undoing(actionId)) undone.add(start.undoOf);
    }
    return [...this.started].flatMap(([actionId, start]) => {
      const done = this.done.get(actionId);
      return start.type === type && done?.outcome === 'completed' && !undone.has(actionId) ? [{ actionId, snapshot: done.snapshot }] : [];
    });
  }

  /**
   * Files an analyst had restored from quarantine, as `path` and SHA-256:
   * the antivirus leaves exactly those alone rather than taking them again.
   */
  restoredFile(path: string, sha256: string): boolean {
    for (const [actionId, start] of this.started) {
      if (start.type !== RESTORE_FILE || !start.undoOf || this.done.get(actionId)?.outcome !== 'completed') continue;
      const original = this.snapshotOf(start.undoOf) as { path?: string; sha256?: string } | undefined;
      if (original?.path === path && original.sha256 === sha256) return true;
    }
    return false;
  }

  /** Keeps the signed report of an action the agent took on its own until the server has it. */
  reportLocal(actionId: string, report: string): void {
    this.append({ k: 'local', actionId, report, at: this.now() });
    this.compactWhenDue();
  }

  acknowledgeLocal(actionId: string): void {
    if (!this.unreported.has(actionId)) return;
    this.append({ k: 'local_ack', actionId, at: this.now() });
    this.acksSinceCompaction += 1;
    this.compactWhenDue();
  }

  /** Reports the server has not acknowledged yet: sent again on every connection. */
  unacknowledgedReports(): string[] {
    return [...this.unreported.values()];
  }

  close(): void {
    closeSync(this.fd);
  }

  private saveWatermark(): void {
    try {
      replaceFile(this.dir, this.watermarkFile, (fd) => writeAll(fd, this.watermark.serialize()));
    } catch (error) {
      this.warn('could not save the command watermark', { error: (error as Error).message });
    }
  }

  /**
   * Compaction at start also rewrites lines of the earlier format and drops
   * damaged ones. Should it fail (a full disk), the agent goes on with the
   * journal as it is, only never appending to the end of a torn line: glued
   * onto it, the next entry would be unreadable at the next start.
   */
  private compactAtStart(): void {
    if (this.damage.some((d) => d.file === 'journal.jsonl')) this.keepDamagedCopy();
    try {
      this.compact();
    } catch (error) {
      this.warn('could not compact the journal', { error: (error as Error).message });
      const fresh = !existsSync(this.file);
      this.fd = openSync(this.file, 'a', 0o600);
      if (fresh) writeAll(this.fd, `${HEADER}\n`);
      if (this.tornTail) writeAll(this.fd, '\n');
      fsyncSync(this.fd);
    }
  }

  /** The file as loaded, damaged lines and all, beside the journal: the line numbers in `damaged` are its own. */
  private keepDamagedCopy(): void {
    const copy = `${this.file}.damaged`;
    try {
      rmSync(copy, { force: true });
      linkSync(this.file, copy);
    } catch (error) {
      this.warn('could not keep the damaged journal', { error: (error as Error).message });
    }
  }

  private compactWhenDue(): void {
    const grown = this.bytesSinceCompaction >= Math.max(this.compactAfterBytes, this.compactedBytes);
    if (this.acksSinceCompaction < this.compactAfterAcks && !grown) return;
    try {
      this.compact();
    } catch (error) {
      // The journal as it stands is whole; compaction is tried again after as many entries more.
      this.acksSinceCompaction = 0;
      this.bytesSinceCompaction = 0;
      this.warn('could not compact the journal', { error: (error as Error).message });
    }
  }

  /**
   * Rewrites the journal with only what `keeps` says is still needed,
   * through a file beside it renamed over it: a crash leaves the old journal
   * or the new one. The watermark is saved first: the journal may have
   * carried issued-at times the watermark file did not have yet.
   */
  compact(): void {
    this.saveWatermark();
    const kept = this.keeps();
    this.prune(kept);
    let size = 0;
    replaceFile(this.dir, this.file, (fd) => {
      size += writeAll(fd, `${HEADER}\n`);
      for (const actionId of kept.keys()) size += writeAll(fd, this.entriesOf(actionId));
    });
    if (this.fd !== -1) closeSync(this.fd);
    this.fd = openSync(this.file, 'a', 0o600);
    this.compactedBytes = size;
    this.acksSinceCompaction = 0;
    this.bytesSinceCompaction = 0;
  }

  /**
   * What compaction keeps, in the journal's order. An action is kept, its
   * start and outcome (a redelivery is answered from them, not run again),
   * while any of these holds:
   * - its command has not expired (with a margin): it must be refused again;
   * - its start was lost and the server has not acknowledged its result;
   * - it completed with a snapshot that no completed undo has undone: its
   *   undo restores it, however much later (`snapshotOf`);
   * - it is the last completed action of its type, or a completed undo of
   *   that one: what `inForce` answers from;
   * - it is a completed restore_file, or the action that one undid: what
   *   `restoredFile` answers from;
   * - the server has not acknowledged its local report.
   * A kept action loses its output once the result is acknowledged or the
   * command has expired (nothing redelivers it any more), and its snapshot
   * once no rule above needs it. Everything else is dropped.
   */
  private keeps(): Map<string, { output: boolean; snapshot: boolean }> {
    const undone = new Set<string>();
    const restored = new Set<string>();
    const lastOfType = new Map<string, string>();
    for (const [actionId, start] of this.started) {
      if (this.done.get(actionId)?.outcome !== 'completed') continue;
      if (start.undoOf) undone.add(start.undoOf);
      if (start.undoOf && start.type === RESTORE_FILE) restored.add(start.undoOf);
      if (start.type !== undefined) lastOfType.set(start.type, actionId);
    }
    const last = new Set(lastOfType.values());
    const kept = new Map<string, { output: boolean; snapshot: boolean }>();
    for (const actionId of new Set([...this.started.keys(), ...this.done.keys(), ...this.unreported.keys()])) {
      const start = this.started.get(actionId);
      const done = this.done.get(actionId);
      const completed = done?.outcome === 'completed';
      const unacknowledged = done !== undefined && !this.acknowledged.has(actionId);
      const live = start ? !this.expired(actionId) : unacknowledged;
      const snapshot = completed && done.snapshot !== undefined && (!undone.has(actionId) || last.has(actionId) || restored.has(actionId));
      const answers = completed && (last.has(actionId) || last.has(start?.undoOf ?? '') || restored.has(actionId) || (start?.type === RESTORE_FILE && !!start.undoOf));
      if (live || snapshot || answers || this.unreported.has(actionId)) kept.set(actionId, { output: live && unacknowledged, snapshot });
    }
    return kept;
  }

  /** Forgets in memory what compaction drops from the file. */
  private prune(kept: Map<string, { output: boolean; snapshot: boolean }>): void {
    for (const actionId of this.started.keys()) if (!kept.has(actionId)) this.started.delete(actionId);
    for (const actionId of this.acknowledged) if (!kept.has(actionId)) this.acknowledged.delete(actionId);
    for (const [actionId, done] of this.done) {
      const keep = kept.get(actionId);
      if (!keep) this.done.delete(actionId);
      else this.done.set(actionId, without(without(done, keep.output ? null : 'output'), keep.snapshot ? null : 'snapshot'));
    }
    this.nonces.clear();
    for (const start of this.started.values()) this.nonces.set(start.nonce, start.exp);
  }

  /** The lines compaction writes for one kept action. */
  private entriesOf(actionId: string): string {
    const start = this.started.get(actionId);
    const done = this.done.get(actionId);
    const report = this.unreported.get(actionId);
    const entries: Entry[] = [
      ...(start ? [start] : []),
      ...(done ? [done] : []),
      ...(this.acknowledged.has(actionId) ? [{ k: 'result_ack' as const, actionId, at: this.now() }] : []),
      ...(report !== undefined ? [{ k: 'local' as const, actionId, report, at: this.now() }] : []),
    ];
    return entries.map(encodeLine).join('');
  }
}

/** The entry without `field`, when there is one to drop. */
function without(entry: DoneEntry, field: 'output' | 'snapshot' | null): DoneEntry {
  if (field === null || entry[field] === undefined) return entry;
  const copy = { ...entry };
  delete copy[field];
  return copy;
}
