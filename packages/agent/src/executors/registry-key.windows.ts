import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { guardsFor } from '../guards.windows.ts';
import { mustRun } from '../runner.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** The root keys reg.exe accepts, long and short, each mapped to the short form used on its command line. */
type Hive = 'HKLM' | 'HKCU' | 'HKCR' | 'HKU' | 'HKCC';
const HIVES: Readonly<Record<string, Hive>> = {
  HKLM: 'HKLM', HKEY_LOCAL_MACHINE: 'HKLM',
  HKCU: 'HKCU', HKEY_CURRENT_USER: 'HKCU',
  HKCR: 'HKCR', HKEY_CLASSES_ROOT: 'HKCR',
  HKU: 'HKU', HKEY_USERS: 'HKU',
  HKCC: 'HKCC', HKEY_CURRENT_CONFIG: 'HKCC',
};
/**
 * How many levels below its hive a key must be before it may be removed.
 * One level below HKLM, HKCU, HKU or HKCC is SOFTWARE, SYSTEM, a whole
 * user's hive and the like: removing one would wreck the machine. HKCR's
 * first level holds the file types and classes that malware registers.
 */
const MIN_DEPTH: Readonly<Record<Hive, number>> = { HKLM: 2, HKCU: 2, HKU: 2, HKCC: 2, HKCR: 1 };
/** Windows limits a key name to 255 characters and a full path to far less than an entity allows. */
const KEY_NAME_MAX = 255;
const KEY_PATH_MAX = 1024;
/** Exports up to this size also travel inside the snapshot, so the key survives losing the file. */
const INLINE_EXPORT_MAX = 64 * 1024;

interface RegistryKeySnapshot {
  key: string;
  exportFile: string;
  sha256: string;
  size: number;
  /** The exported bytes, base64, when the export is small enough to keep in the journal. */
  content?: string;
}

/** The key in reg.exe's short form, e.g. `HKLM\SOFTWARE\Evil`, or an error for anything else. */
export function registryKeyPath(raw: string): string {
  function refuse(why: string): never {
    throw new ExecutionError(`not a registry key this agent removes (${why}): ${JSON.stringify(raw)}`);
  }
  if (raw.length > KEY_PATH_MAX) refuse('too long');
  if (/\p{Cc}/u.test(raw)) refuse('control characters');
  const [root = '', ...names] = raw.split('\\');
  const hive = HIVES[root.toUpperCase()];
  if (!hive) refuse(`it must start with one of ${Object.keys(HIVES).join(', ')}`);
  if (names.some((name) => name.length === 0)) refuse('empty key name');
  if (names.some((name) => name.length > KEY_NAME_MAX)) refuse(`key name longer than ${KEY_NAME_MAX} characters`);
  if (names.length < MIN_DEPTH[hive]) refuse(`a key this close to the hive root is not removable`);
  return [hive, ...names].join('\\');
}

const sha256Of = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

function exportDir(ctx: ExecutionContext): string {
  return join(ctx.agentDir, 'registry');
}

function exportFileFor(ctx: ExecutionContext, actionId: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(actionId)) throw new ExecutionError(`unexpected action id: ${JSON.stringify(actionId)}`);
  return join(exportDir(ctx), `${actionId}.reg`);
}

async function keyExists(ctx: ExecutionContext, key: string): Promise<boolean> {
  return (await ctx.runner.run('reg', ['query', key])).code === 0;
}

async function reg(ctx: ExecutionContext, args: string[]): Promise<void> {
  try {
    await mustRun(ctx.runner, 'reg', args);
  } catch (error) {
    throw new ExecutionError((error as Error).message, { cause: error });
  }
}

async function exportKey(ctx: ExecutionContext, key: string, file: string): Promise<Buffer> {
  mkdirSync(exportDir(ctx), { recursive: true });
  await reg(ctx, ['export', key, file, '/y']);
  const bytes = existsSync(file) ? readFileSync(file) : null;
  if (!bytes || bytes.length === 0) throw new ExecutionError(`reg export reported success but ${file} is empty or missing`);
  return bytes;
}

/**
 * Exports the key with all its values and subkeys into the agent's directory,
 * then deletes it and verifies it is gone. If the deletion fails part-way or
 * does not hold, the export is imported again, since a failed action leaves
 * no snapshot for an undo.
 */
export const removeRegistryKey: Executor = async (ctx) => {
  const key = registryKeyPath(ctx.command.entity.path ?? ctx.command.entity.name);
  const guarded = guardsFor(ctx).registryKey(key);
  if (guarded) throw new ExecutionError(guarded);
  const exportFile = exportFileFor(ctx, ctx.command.actionId);
  if (!(await keyExists(ctx, key))) throw new ExecutionError(`there is no registry key ${key} on this device`);
  const bytes = await exportKey(ctx, key, exportFile);
  const snapshot: RegistryKeySnapshot = {
    key, exportFile, sha256: sha256Of(bytes), size: bytes.length,
    ...(bytes.length <= INLINE_EXPORT_MAX ? { content: bytes.toString('base64') } : {}),
  };

  try {
    await reg(ctx, ['delete', key, '/f']);
    if (await keyExists(ctx, key)) throw new ExecutionError(`${key} still exists after deleting it`);
  } catch (error) {
    try {
      await reg(ctx, ['import', exportFile]);
    } catch (rollbackError) {
      throw new ExecutionError(`${(error as Error).message}; importing the export ${exportFile} back failed too: ${(rollbackError as Error).message}`, { cause: error });
    }
    throw new ExecutionError(`${(error as Error).message}; the key was imported back from ${exportFile}`, { cause: error });
  }
  return { output: `Removed ${key} (export ${exportFile}, ${bytes.length} bytes, SHA-256 ${snapshot.sha256})`, snapshot };
};

/** The export as the original action took it: the file if intact, else the copy inside the snapshot. */
function intactExport(ctx: ExecutionContext, snapshot: RegistryKeySnapshot): void {
  const { exportFile } = snapshot;
  const inside = relative(exportDir(ctx), exportFile);
  if (!inside || inside.startsWith('..') || isAbsolute(inside)) throw new ExecutionError(`the snapshot names an export outside the agent's directory: ${exportFile}`);
  if (existsSync(exportFile) && statSync(exportFile).size === snapshot.size && sha256Of(readFileSync(exportFile)) === snapshot.sha256) return;
  if (snapshot.content === undefined) throw new ExecutionError(`the export ${exportFile} is missing or altered and too large to have been kept in the snapshot; not restored`);
  const bytes = Buffer.from(snapshot.content, 'base64');
  if (sha256Of(bytes) !== snapshot.sha256) throw new ExecutionError('the export kept in the snapshot does not match its hash; not restored');
  mkdirSync(exportDir(ctx), { recursive: true });
  writeFileSync(exportFile, bytes);
}

/**
 * Imports the export back and verifies the key exists; refuses to merge into
 * a key that was created again since. Values and subkeys come back; a key's
 * permissions are not part of a reg export and stay the hive's defaults.
 */
export const restoreRegistryKey: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot as RegistryKeySnapshot | undefined;
  if (!snapshot) throw new ExecutionError('this agent holds no registry record for the original action');
  const key = registryKeyPath(snapshot.key);
  intactExport(ctx, snapshot);

  if (await keyExists(ctx, key)) {
    // Importing would merge the old values into whatever is there now; only an identical key counts as restored.
    const currentFile = `${snapshot.exportFile}.current`;
    const current = await exportKey(ctx, key, currentFile);
    unlinkSync(currentFile);
    if (sha256Of(current) !== snapshot.sha256) throw new ExecutionError(`${key} exists again with different content: it was not overwritten`);
    unlinkSync(snapshot.exportFile);
    return { output: `The identical key is already at ${key}` };
  }
  await reg(ctx, ['import', snapshot.exportFile]);
  if (!(await keyExists(ctx, key))) throw new ExecutionError(`${key} does not exist after importing ${snapshot.exportFile}`);
  unlinkSync(snapshot.exportFile);
  return { output: `Restored ${key} from ${snapshot.exportFile} (SHA-256 ${snapshot.sha256})` };
};
