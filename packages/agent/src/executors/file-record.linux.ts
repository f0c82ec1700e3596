import { createHash } from 'node:crypto';
import { type FileMeta, Folder } from '../safe-fs.linux.ts';
import { ExecutionError, type FileMetadata } from './executor.ts';

/**
 * Small configuration files (cron files, unit files) kept whole in an
 * action's record: read without following links, written back exactly,
 * and checked. The record lives in the agent's journal, so it is bounded.
 */

/** What one record may hold: cron files and unit files are tiny. */
const MAX_FILE_BYTES = 256 * 1024;

/** A file exactly as it was: its bytes and the metadata restore puts back. */
export interface FileRecord extends FileMetadata {
  contentBase64: string;
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Whether a record read from the journal has every field a restore needs. */
export function isFileRecord(value: unknown): value is FileRecord {
  const f = value as Partial<FileRecord> | undefined;
  return typeof f?.contentBase64 === 'string' && typeof f.sha256 === 'string' && typeof f.mode === 'number' && typeof f.uid === 'number'
    && typeof f.gid === 'number' && typeof f.atimeMs === 'number' && typeof f.mtimeMs === 'number';
}

/** Reads a file without following links: a regular file, within the size a record can hold. */
export async function record(folder: Folder, name: string): Promise<{ record: FileRecord; bytes: Buffer }> {
  const path = folder.join(name);
  if (!folder.lstat(name)) throw new ExecutionError(`no file at ${path}`);
  const file = folder.openFile(name);
  try {
    const chunks: Buffer[] = [];
    if (file.stat.size > MAX_FILE_BYTES) throw new ExecutionError(`${path} is ${file.stat.size} bytes, more than a scheduled task or unit file can be (${MAX_FILE_BYTES})`);
    await file.readAll(MAX_FILE_BYTES, (chunk) => void chunks.push(Buffer.from(chunk)));
    const bytes = Buffer.concat(chunks);
    const { stat } = file;
    return {
      bytes,
      record: { contentBase64: bytes.toString('base64'), sha256: sha256(bytes), mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, atimeMs: stat.atimeMs, mtimeMs: stat.mtimeMs },
    };
  } finally {
    file.close();
  }
}

/**
 * Puts `bytes` at `name` with the given owner, mode and, when given, times,
 * through a temporary file made durable first: cron and systemd never read
 * half a file. `replace` renames over what is there; otherwise nothing is
 * overwritten.
 */
export function writeExactly(folder: Folder, name: string, bytes: Buffer, meta: FileMeta, tag: string, replace: boolean): Promise<void> {
  return folder.placeFile(name, `.quell-${tag}`, (file) => file.writeAll(bytes), meta, replace);
}

/** Throws unless `name` holds exactly the recorded file: bytes, mode, owner and modification time. */
export async function verifyRestored(folder: Folder, name: string, file: FileRecord): Promise<void> {
  const path = folder.join(name);
  if (!folder.lstat(name)?.isFile()) throw new ExecutionError(`${path} is not there after restoring it`);
  const { record: now } = await record(folder, name);
  if (now.sha256 !== file.sha256) throw new ExecutionError(`${path} has SHA-256 ${now.sha256} after restoring, not ${file.sha256}`);
  if (now.mode !== file.mode || now.uid !== file.uid || now.gid !== file.gid || Math.abs(now.mtimeMs - file.mtimeMs) > 1) {
    throw new ExecutionError(`${path} was written back but its mode, owner or time differ from what was removed`);
  }
}

/** Runs `work` with the file's folder held open (reached without following links), and closes it. */
export async function inFolder<T>(path: string, work: (folder: Folder, name: string) => Promise<T>): Promise<T> {
  const { folder, name } = Folder.ofFile(path);
  try {
    return await work(folder, name);
  } finally {
    folder.close();
  }
}
