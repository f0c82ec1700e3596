import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, unlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { ExecutionError, type ExecutionContext, type Executor, type FileMetadata } from './executor.ts';

interface QuarantineSnapshot extends FileMetadata {
  path: string;
  vaultFile: string;
  killedPids: number[];
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Processes whose executable is this file; they are ended before it moves. */
function processesRunning(path: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${entry}/exe`) === path) pids.push(Number(entry));
    } catch {
      // the process ended, or is a kernel thread
    }
  }
  return pids;
}

/** Moves across file systems too: rename when it can, else copy then remove. */
function move(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    copyFileSync(from, to);
    unlinkSync(from);
  }
}

const vaultDir = (ctx: ExecutionContext): string => join(ctx.agentDir, 'vault');

/**
 * Ends the processes running the file, then moves it into the agent's
 * root-only vault with no permission bits, recording everything restore needs.
 */
export const quarantineFile: Executor = async (ctx) => {
  const path = ctx.command.entity.path ?? ctx.command.entity.name;
  if (!path.startsWith('/')) throw new ExecutionError(`not an absolute path: ${JSON.stringify(path)}`);
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) throw new ExecutionError(`no file at ${path}`);
  if (!stat.isFile()) throw new ExecutionError(`${path} is not a regular file (symbolic links and devices are not quarantined)`);
  const sha256 = await sha256File(path);
  const expected = ctx.command.entity.sha256?.toLowerCase();
  if (expected && expected !== sha256) throw new ExecutionError(`the file at ${path} has SHA-256 ${sha256}, not ${expected}: left alone`);

  const killedPids = processesRunning(path);
  for (const pid of killedPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  mkdirSync(vaultDir(ctx), { recursive: true, mode: 0o700 });
  chmodSync(vaultDir(ctx), 0o700);
  const vaultFile = join(vaultDir(ctx), ctx.command.actionId);
  const snapshot: QuarantineSnapshot = { path, sha256, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, atimeMs: stat.atimeMs, mtimeMs: stat.mtimeMs, vaultFile, killedPids };
  move(path, vaultFile);
  chmodSync(vaultFile, 0o000);

  if (existsSync(path)) throw new ExecutionError(`${path} is still there after the move`);
  if ((await sha256File(vaultFile)) !== sha256) throw new ExecutionError('the vault copy does not match the original hash');
  return { output: `Quarantined ${path} (SHA-256 ${sha256})${killedPids.length ? `; ended processes ${killedPids.join(', ')}` : ''}`, snapshot };
};

/** Puts the identical file back, with its mode, owner and times, and refuses to overwrite a different file. */
export const restoreFile: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot as QuarantineSnapshot | undefined;
  if (!snapshot) throw new ExecutionError('this agent holds no quarantine record for the original action');
  const { path, vaultFile } = snapshot;
  const present = lstatSync(path, { throwIfNoEntry: false });
  if (present) {
    const same = present.isFile() && (await sha256File(path)) === snapshot.sha256;
    if (!same) throw new ExecutionError(`a different file now exists at ${path}; it was not overwritten`);
    if (existsSync(vaultFile)) unlinkSync(vaultFile);
    return { output: `The identical file is already at ${path}` };
  }
  if (!existsSync(vaultFile)) throw new ExecutionError(`the vault no longer holds ${vaultFile}`);
  if ((await sha256File(vaultFile)) !== snapshot.sha256) throw new ExecutionError('the vault copy was altered; not restored');
  move(vaultFile, path);
  chownSync(path, snapshot.uid, snapshot.gid);
  chmodSync(path, snapshot.mode);
  utimesSync(path, snapshot.atimeMs / 1000, snapshot.mtimeMs / 1000);

  const after = lstatSync(path);
  const hash = await sha256File(path);
  if (hash !== snapshot.sha256 || (after.mode & 0o7777) !== snapshot.mode || after.uid !== snapshot.uid || after.gid !== snapshot.gid || Math.abs(after.mtimeMs - snapshot.mtimeMs) > 1) {
    throw new ExecutionError(`${path} was put back but does not match what was quarantined`);
  }
  return { output: `Restored ${path} (SHA-256 ${hash}, mode ${snapshot.mode.toString(8)}, owner ${snapshot.uid}:${snapshot.gid})` };
};
