import { fchmodSync, fchownSync, fstatSync, futimesSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { guardsFor } from '../guards.linux.ts';
import { type FileMeta, Folder, type FolderId, type OpenFile, lstatFrom } from '../safe-fs.linux.ts';
import { ExecutionError, type ExecutionContext, type Executor, type FileMetadata } from './executor.ts';
import { type XattrRecord, complete, isXattrRecord, putBackXattrs, recordXattrs, shown, xattrsKeptText } from './file-attributes.linux.ts';
import { type EndedProcess, endProcessesUsing } from './file-processes.linux.ts';
import { findOtherLinks, otherLinksText } from './hard-links.linux.ts';

export interface QuarantineSnapshot extends FileMetadata {
  path: string;
  vaultFile: string;
  killedPids: number[];
  /** The folders above the file when it was taken: restore writes only into the very same ones. */
  chain?: FolderId[];
  /** Absent in records of agent versions that kept no attributes: restore then leaves attributes as they are. */
  xattrs?: XattrRecord;
  /** The processes ended with the file, and why each one. */
  endedProcesses?: EndedProcess[];
  /** Other hard links to the file (its link count less one) and those found: they were left in place. */
  otherLinks?: { count: number; found: string[] };
}

/** Larger files are refused: hashing and copying them would hold an action for minutes. */
export const QUARANTINE_MAX_BYTES = 16 * 1024 * 1024 * 1024;
/** A copy into the vault that has not been completed yet; removed at the agent's next start if it was interrupted. */
export const PARTIAL_PREFIX = '.partial-';
/** A restore across file systems writes here first, in the destination folder, then links it into place. */
const restoreTemp = (actionId: string): string => `.quell-restore-${actionId}`;


export const vaultPath = (agentDir: string): string => join(agentDir, 'vault');

function openVault(agentDir: string): Folder {
  mkdirSync(vaultPath(agentDir), { recursive: true, mode: 0o700 });
  const vault = Folder.open(vaultPath(agentDir));
  fchmodSync(vault.fd, 0o700);
  return vault;
}

/** Throws unless `name` in `folder` is still the file that was checked (nobody swapped it since). */
function stillTheSame(folder: Folder, name: string, file: OpenFile): void {
  const now = folder.lstat(name);
  if (!now || now.dev !== file.stat.dev || now.ino !== file.stat.ino) throw new ExecutionError(`${file.path} was replaced while it was being quarantined: left alone`);
}

/** Copies an open file into `to` under `name`, by way of a temporary file made durable before it gets its name. */
function copyInto(file: OpenFile, to: Folder, temporary: string, name: string, meta: FileMeta, finish?: (copy: OpenFile) => Promise<void>): Promise<void> {
  return to.placeFile(name, temporary, (copy) => file.readAll(QUARANTINE_MAX_BYTES, (chunk) => copy.writeAll(chunk)).then(() => {}), meta, false, finish);
}

/**
 * Ends the processes running the file (for stop and quarantine, also those
 * holding it open or mapped, and interpreters whose command line names
 * it), then moves it into the agent's root-only vault with no permission
 * bits, recording everything restore needs, its extended attributes
 * included. The path is walked without following any link; kernel file
 * systems, special files and guarded files are refused before anything
 * changes. Across file systems the file is copied to a temporary file in
 * the vault, made durable and named, and only then removed from its place:
 * an interruption leaves the original where it was. Other hard links to
 * the file are reported, never removed.
 */
export const quarantineFile: Executor = async (ctx) => {
  const path = ctx.command.entity.path ?? ctx.command.entity.name;
  const { folder, name } = Folder.ofFile(path);
  let vault: Folder | null = null;
  let file: OpenFile | null = null;
  try {
    file = folder.openFile(name);
    file.assertOrdinary();
    const guarded = guardsFor(ctx).file(path, { dev: file.stat.dev, ino: file.stat.ino });
    if (guarded) throw new ExecutionError(guarded);
    const sha256 = await file.sha256(QUARANTINE_MAX_BYTES);
    const expected = ctx.command.entity.sha256?.toLowerCase();
    if (expected && expected !== sha256) throw new ExecutionError(`the file at ${path} has SHA-256 ${sha256}, not ${expected}: left alone`);

    const { stat } = file;
    const { ended, stillRunning } = await endProcessesUsing(stat, ctx.command.type === 'stop_and_quarantine_file');
    // Read before the file moves: a copy into the vault carries none of them, and the mode set there rewrites an ACL.
    const xattrs = await recordXattrs(ctx.runner, file);
    vault = openVault(ctx.agentDir);
    const vaultName = ctx.command.actionId;
    const snapshot: QuarantineSnapshot = {
      path, sha256, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, atimeMs: stat.atimeMs, mtimeMs: stat.mtimeMs,
      vaultFile: vault.join(vaultName), killedPids: ended.map((p) => p.pid), chain: [...folder.chain], xattrs, endedProcesses: ended,
    };
    stillTheSame(folder, name, file);
    try {
      folder.renameTo(name, vault, vaultName);
      fchmodSync(file.fd, 0o000);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      await copyInto(file, vault, `${PARTIAL_PREFIX}${vaultName}`, vaultName, { mode: 0o000 });
      stillTheSame(folder, name, file);
      folder.unlink(name);
    }
    vault.sync();
    folder.sync();

    const left = folder.lstat(name);
    if (left && left.ino === stat.ino && left.dev === stat.dev) throw new ExecutionError(`${path} is still there after the move`);
    const kept = vault.openFile(vaultName);
    try {
      if ((await kept.sha256(QUARANTINE_MAX_BYTES)) !== sha256) throw new ExecutionError('the vault copy does not match the original hash');
    } finally {
      kept.close();
    }
    if (stat.nlink > 1) snapshot.otherLinks = { count: stat.nlink - 1, found: findOtherLinks(stat, folder, vault) };
    const output = [
      `Quarantined ${path} (SHA-256 ${sha256})`,
      ...(ended.length ? [`ended processes ${ended.map((p) => `${p.pid} ${shown(p.name)} (${p.why.join(', ')})`).join(', ')}`] : []),
      ...(stillRunning.length ? [`still running after SIGKILL: ${stillRunning.join(', ')}`] : []),
      ...xattrsKeptText(xattrs),
      ...(snapshot.otherLinks ? [otherLinksText(snapshot.otherLinks)] : []),
    ];
    return { output: output.join('; '), snapshot };
  } finally {
    file?.close();
    vault?.close();
    folder.close();
  }
};

function isSnapshot(value: unknown): value is QuarantineSnapshot {
  const s = value as Partial<QuarantineSnapshot> | undefined;
  return typeof s?.path === 'string' && typeof s.vaultFile === 'string' && typeof s.sha256 === 'string' && typeof s.mode === 'number'
    && typeof s.uid === 'number' && typeof s.gid === 'number' && typeof s.atimeMs === 'number' && typeof s.mtimeMs === 'number'
    && (s.xattrs === undefined || isXattrRecord(s.xattrs));
}


/**
 * Puts the identical file back, with its mode, owner, times and extended
 * attributes, into the very folder it was taken from (every folder on the
 * way must be the one recorded), and never overwrites anything: the file
 * gets its metadata in the vault (across file systems, on a temporary copy
 * beside its place), is checked, and only then is linked into place, which
 * fails if a file appeared there. What cannot be put back fails the restore
 * and leaves the file in the vault.
 */
export const restoreFile: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot;
  if (!isSnapshot(snapshot)) throw new ExecutionError('this agent holds no quarantine record for the original action');
  const { path } = snapshot;
  const vaultName = snapshot.vaultFile.slice(snapshot.vaultFile.lastIndexOf('/') + 1);
  if (snapshot.vaultFile !== join(vaultPath(ctx.agentDir), vaultName)) throw new ExecutionError('the quarantine record names a file outside this agent\'s vault');
  const { folder, name } = Folder.ofFile(path);
  let vault: Folder | null = null;
  try {
    folder.expectChain(snapshot.chain);
    const present = folder.lstat(name);
    if (present) {
      const same = present.isFile() && (await hashOf(folder, name)) === snapshot.sha256;
      if (!same) throw new ExecutionError(`a different file now exists at ${path}; it was not overwritten`);
      vault = Folder.open(vaultPath(ctx.agentDir));
      if (vault.lstat(vaultName)) vault.unlink(vaultName);
      return { output: `The identical file is already at ${path}` };
    }
    vault = Folder.open(vaultPath(ctx.agentDir));
    if (!vault.lstat(vaultName)) throw new ExecutionError(`the vault no longer holds ${snapshot.vaultFile}`);
    const kept = vault.openFile(vaultName);
    try {
      if ((await kept.sha256(QUARANTINE_MAX_BYTES)) !== snapshot.sha256) throw new ExecutionError('the vault copy was altered; not restored');
      // chown first: it clears set-id bits, which the mode then puts back, and a capability, which the attributes then put back.
      fchownSync(kept.fd, snapshot.uid, snapshot.gid);
      fchmodSync(kept.fd, snapshot.mode);
      futimesSync(kept.fd, snapshot.atimeMs / 1000, snapshot.mtimeMs / 1000);
      const finish = async (target: OpenFile): Promise<void> => {
        if (snapshot.xattrs) await putBackXattrs(ctx.runner, target, snapshot.xattrs, path);
        const now = fstatSync(target.fd);
        if ((now.mode & 0o7777) !== snapshot.mode || now.uid !== snapshot.uid || now.gid !== snapshot.gid) {
          throw new ExecutionError(`${path} has mode ${(now.mode & 0o7777).toString(8)} and owner ${now.uid}:${now.gid} once its attributes are back, not what was quarantined: not restored, the file stays in the quarantine vault`);
        }
      };
      // On another file system the vault's copy is not what is put in place: its attributes go on the copy made there.
      if (kept.stat.dev === folder.chain.at(-1)!.dev) await finish(kept);
      try {
        vault.linkTo(vaultName, folder, name);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw new ExecutionError(`a file appeared at ${path} while restoring; it was not overwritten`);
        if (code !== 'EXDEV') throw error;
        await copyInto(kept, folder, restoreTemp(ctx.command.actionId), name, snapshot, finish);
      }
      folder.sync();
      vault.unlink(vaultName);
      vault.sync();
    } catch (error) {
      if (vault.lstat(vaultName)) fchmodSync(kept.fd, 0o000); // still the only copy: unreadable again
      throw error;
    } finally {
      kept.close();
    }

    const restored = folder.openFile(name);
    try {
      const hash = await restored.sha256(QUARANTINE_MAX_BYTES);
      const after = restored.stat;
      if (hash !== snapshot.sha256 || (after.mode & 0o7777) !== snapshot.mode || after.uid !== snapshot.uid || after.gid !== snapshot.gid || Math.abs(after.mtimeMs - snapshot.mtimeMs) > 1) {
        throw new ExecutionError(`${path} was put back but does not match what was quarantined`);
      }
      return { output: [`Restored ${path} (SHA-256 ${hash}, mode ${snapshot.mode.toString(8)}, owner ${snapshot.uid}:${snapshot.gid})`, ...xattrsRestoredText(snapshot.xattrs)].join('; ') };
    } finally {
      restored.close();
    }
  } finally {
    vault?.close();
    folder.close();
  }
};

/** What the restore output says about extended attributes. */
function xattrsRestoredText(record: XattrRecord | undefined): string[] {
  if (!record) return ['its extended attributes were not recorded when it was quarantined'];
  if (record.unreadable !== undefined) return [`its extended attributes were not recorded when it was quarantined (${record.unreadable}): they are not back`];
  const parts = record.kept.length ? [`extended attributes back and checked: ${record.kept.map((x) => shown(x.name)).join(', ')}`] : [];
  if (complete(record) && !record.kept.length) parts.push('it carried no extended attributes, and carries none');
  if (record.notKeptCount) parts.push(`${record.notKeptCount} extended attribute${record.notKeptCount === 1 ? ' was' : 's were'} not kept when it was quarantined (${record.notKept.map(shown).join(', ')}${record.notKeptCount > record.notKept.length ? ', …' : ''}) and ${record.notKeptCount === 1 ? 'is' : 'are'} not back`);
  return parts;
}

async function hashOf(folder: Folder, name: string): Promise<string> {
  const file = folder.openFile(name);
  try {
    return await file.sha256(QUARANTINE_MAX_BYTES);
  } finally {
    file.close();
  }
}

/**
 * What an interrupted quarantine or restore can leave behind: a partial
 * copy in the vault, or a temporary file beside the place a restore was
 * writing to. Never the only copy of a file: the original is removed only
 * after its copy in the vault is complete and named.
 */
export function removeLeftovers(ctx: Pick<ExecutionContext, 'agentDir'>, interruptedRestores: ReadonlyArray<{ actionId: string; path: string }>): string[] {
  const removed: string[] = [];
  const remove = (folderPath: string, name: string): void => {
    let folder: Folder;
    try {
      folder = Folder.open(folderPath);
    } catch {
      return;
    }
    try {
      if (folder.lstat(name)?.isFile()) {
        folder.unlink(name);
        removed.push(folder.join(name));
      }
    } finally {
      folder.close();
    }
  };
  let partials: string[] = [];
  try {
    partials = readdirSync(vaultPath(ctx.agentDir)).filter((name) => name.startsWith(PARTIAL_PREFIX));
  } catch {
    // no vault yet
  }
  for (const name of partials) remove(vaultPath(ctx.agentDir), name);
  for (const { actionId, path } of interruptedRestores) remove(path.slice(0, path.lastIndexOf('/')) || '/', restoreTemp(actionId));
  return removed;
}

/** SHA-256 of files seen at quarantined places, by identity, size and times: a file that stays there is hashed once. */
const seenHashes = new Map<string, string>();

/** The record a quarantine left, when it is one (the journal is data like any other). */
export function quarantineOf(snapshot: unknown): QuarantineSnapshot | null {
  return isSnapshot(snapshot) ? snapshot : null;
}

/**
 * For the drift watch: the quarantined file is back at its place (a file
 * with the very bytes in the vault), in words, or null. Another file there
 * is not this quarantine's business: block indicators catch those.
 */
export async function quarantinedFileReturned(snapshot: QuarantineSnapshot): Promise<string | null> {
  const present = lstatFrom('/', '/', snapshot.path);
  // Hashed only when its size is the vault copy's.
  if (!present?.isFile() || present.size !== lstatFrom('/', '/', snapshot.vaultFile)?.size) return null;
  const key = `${present.dev}:${present.ino}:${present.size}:${present.mtimeMs}:${present.ctimeMs}`;
  let sha256 = seenHashes.get(key);
  if (sha256 === undefined) {
    const { folder, name } = Folder.ofFile(snapshot.path);
    const file = folder.openFile(name);
    try {
      sha256 = await file.sha256(QUARANTINE_MAX_BYTES);
    } finally {
      file.close();
      folder.close();
    }
    if (seenHashes.size >= 1000) seenHashes.clear();
    seenHashes.set(key, sha256);
  }
  return sha256 === snapshot.sha256 ? `${snapshot.path} is back (the quarantined file, SHA-256 ${snapshot.sha256})` : null;
}

/**
 * Removes a quarantined file that came back (its bytes are in the vault
 * already), after ending the processes running, holding or mapping it,
 * as stop and quarantine does; never through a link.
 */
export async function removeReturnedFile(snapshot: QuarantineSnapshot): Promise<void> {
  const { folder, name } = Folder.ofFile(snapshot.path);
  let file: OpenFile | null = null;
  try {
    file = folder.openFile(name);
    file.assertOrdinary();
    if ((await file.sha256(QUARANTINE_MAX_BYTES)) !== snapshot.sha256) throw new ExecutionError(`${snapshot.path} is no longer the quarantined file: left alone`);
    await endProcessesUsing(file.stat, true);
    stillTheSame(folder, name, file);
    folder.unlink(name);
    folder.sync();
  } finally {
    file?.close();
    folder.close();
  }
}
