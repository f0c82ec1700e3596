import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { UUID } from '@quell/contracts';

/**
 * The journal on disk (journal.jsonl), one entry per line:
 *
 *     quell-agent-journal 2
 *     3f9a0c1b2d4e5f60 {"k":"start","actionId":"…","nonce":"…","exp":1767225600,"iat":1767222000,"at":…}
 *
 * The first line says that every line after it carries a checksum: 16 hex
 * digits, the first 64 bits of the SHA-256 of the JSON text that follows
 * the space, exactly as written. It catches a line changed by a failing
 * disk, a torn write or an editor; it is no defence against whoever can
 * write the agent's files, who is root already.
 *
 * A file without that first line was written by an earlier agent, in plain
 * JSON lines: they are accepted for that one load, and the compaction that
 * follows every load rewrites them in this format.
 */
export const HEADER = 'quell-agent-journal 2';
const CHECKSUM_DIGITS = 16;
/** No entry the agent writes comes near this; a longer line is damage, and is skipped without being held whole. */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

export type StartEntry = { k: 'start'; actionId: string; nonce: string; exp: number; iat?: number | null; at: number; type?: string; undoOf?: string | null };
export type DoneEntry = { k: 'done'; actionId: string; outcome: 'completed' | 'failed'; output?: string; error?: string; snapshot?: unknown; at: number };
/** One line of the journal. */
export type Entry =
  | StartEntry
  | DoneEntry
  /** The server has recorded the action's result (or, for an action the agent took on its own, its report). */
  | { k: 'result_ack'; actionId: string; at: number }
  /** An action the agent took on its own, and its signed report, kept until the server acknowledges it. */
  | { k: 'local'; actionId: string; report: string; at: number }
  | { k: 'local_ack'; actionId: string; at: number };

export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value);
export const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isText = (value: unknown): value is string => typeof value === 'string';
const absentOr = (value: unknown, check: (v: unknown) => boolean): boolean => value === undefined || check(value);
/** Why each kind of entry would not be one, or null: every field the journal reads, checked before it is believed. */
const ENTRY_SHAPES: Record<Entry['k'], (e: Record<string, unknown>) => string | null> = {
  start: (e) => {
    if (!isText(e.nonce) || e.nonce.length === 0) return 'start without a nonce';
    if (!isTime(e.exp)) return 'start without an expiry';
    if (!absentOr(e.iat, (v) => v === null || isTime(v))) return 'start with an issued-at that is not a time';
    if (!absentOr(e.type, isText)) return 'start with a type that is not text';
    if (!absentOr(e.undoOf, (v) => v === null || isUuid(v))) return 'start with an undoOf that is not a UUID';
    return null;
  },
  done: (e) => {
    if (e.outcome !== 'completed' && e.outcome !== 'failed') return 'done without an outcome';
    if (!absentOr(e.output, isText) || !absentOr(e.error, isText)) return 'done with an output or error that is not text';
    return null;
  },
  result_ack: () => null,
  local: (e) => (isText(e.report) ? null : 'local action without its report'),
  local_ack: () => null,
};

function shapeProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an entry object';
  const entry = value as Record<string, unknown>;
  if (!Object.hasOwn(ENTRY_SHAPES, String(entry.k))) return `unknown kind of entry ${JSON.stringify(String(entry.k).slice(0, 32))}`;
  if (!isUuid(entry.actionId)) return 'actionId is not a UUID';
  if (!isTime(entry.at)) return 'at is not a time';
  return ENTRY_SHAPES[entry.k as Entry['k']](entry);
}

export const checksum = (json: string | Buffer): string => createHash('sha256').update(json).digest('hex').slice(0, CHECKSUM_DIGITS);
export const encodeLine = (entry: Entry): string => {
  const json = JSON.stringify(entry);
  return `${checksum(json)} ${json}\n`;
};

export type DecodedLine = { entry: Entry; legacy: boolean } | { damage: string };

/** One line, without its newline, as the journal reads it: checksum, JSON, then shape. `legacy`: a file of the earlier format. */
export function decodeLine(line: Buffer, legacy: boolean): DecodedLine {
  const unsummed = line[0] === 0x7b; // `{`: a line of the earlier format
  let json = line;
  if (unsummed && !legacy) return { damage: 'no checksum' };
  if (!unsummed) {
    if (line.length < CHECKSUM_DIGITS + 2 || line[CHECKSUM_DIGITS] !== 0x20) return { damage: 'not a journal line' };
    json = line.subarray(CHECKSUM_DIGITS + 1);
    if (checksum(json) !== line.subarray(0, CHECKSUM_DIGITS).toString('latin1')) return { damage: 'checksum does not match' };
  }
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    return { damage: 'not JSON' };
  }
  const problem = shapeProblem(value);
  return problem ? { damage: problem } : { entry: value as Entry, legacy: unsummed };
}

/**
 * Calls `onLine` with each line of a file (without its newline), its number
 * and whether a newline ended it, reading a chunk at a time: a file of any
 * size is read in bounded memory. A line longer than MAX_LINE_BYTES is
 * passed as null, and never held whole.
 */
export function forEachLine(path: string, onLine: (line: Buffer | null, number: number, ended: boolean) => void): void {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    let parts: Buffer[] = [];
    let held = 0;
    let tooLong = false;
    let number = 0;
    const take = (piece: Buffer): void => {
      if (tooLong) return;
      if (held + piece.length > MAX_LINE_BYTES) {
        tooLong = true;
        parts = [];
        return;
      }
      parts.push(Buffer.from(piece)); // a copy: the chunk is read into again
      held += piece.length;
    };
    const emit = (ended: boolean): void => {
      number += 1;
      onLine(tooLong ? null : Buffer.concat(parts, held), number, ended);
      parts = [];
      held = 0;
      tooLong = false;
    };
    for (let read = readSync(fd, chunk); read > 0; read = readSync(fd, chunk)) {
      const bytes = chunk.subarray(0, read);
      for (let from = 0; from < read;) {
        const newline = bytes.indexOf(0x0a, from);
        take(bytes.subarray(from, newline === -1 ? read : newline));
        if (newline === -1) break;
        emit(true);
        from = newline + 1;
      }
    }
    if (held > 0 || tooLong) emit(false);
  } finally {
    closeSync(fd);
  }
}

/** Writes all of `text` (a write may take only part of it). */
export function writeAll(fd: number, text: string): number {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length;) offset += writeSync(fd, bytes, offset);
  return bytes.length;
}

/** Makes a rename in `dir` durable. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` with what `write` writes, through a file beside it: a crash leaves the old file or the new one, never a mix. */
export function replaceFile(dir: string, path: string, write: (fd: number) => void): void {
  const temp = `${path}.tmp`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    write(fd);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  fsyncDir(dir);
}
