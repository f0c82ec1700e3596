import { existsSync, fchmodSync, fsyncSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guardsFor, systemGuardFacts } from '../guards.linux.ts';
import { mustRun } from '../runner.ts';
import { Folder } from '../safe-fs.linux.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** Kernel module names; the first character can never be `-`, so modprobe never reads one as an option. */
const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
/** The kernel's MODULE_NAME_LEN (64) less the pointer-sized prefix, without the terminating NUL. */
const MODULE_NAME_MAX = 55;

export interface DriverExecutorOptions {
  /** Where modprobe reads its configuration from. */
  modprobeDir: string;
  /** The kernel's list of loaded modules. */
  procModules: string;
}

const SYSTEM: DriverExecutorOptions = { modprobeDir: '/etc/modprobe.d', procModules: '/proc/modules' };

interface DriverSnapshot {
  /** The module name as the kernel spells it (dashes become underscores). */
  module: string;
  loaded: boolean;
  blacklistFile: string;
  /** The bytes (base64) of a blacklist file that was already at that path, or null. */
  priorBlacklist: string | null;
}

/** The kernel and modprobe treat `-` and `_` in module names alike; /proc/modules shows underscores. */
export function moduleName(name: string): string {
  if (name.length > MODULE_NAME_MAX || !MODULE_NAME.test(name)) throw new ExecutionError(`not a kernel module name: ${JSON.stringify(name)}`);
  return name.replaceAll('-', '_');
}

export function blacklistContent(module: string, actionId: string): string {
  return [
    `# Written by Quell (action ${actionId}): restoring the driver removes this file.`,
    `blacklist ${module}`,
    // `blacklist` only stops loading by alias; `install` also stops explicit loads and loads as a dependency.
    `install ${module} /bin/false`,
    '',
  ].join('\n');
}

/** Runs `work` on the folder of `path`, reached without following links, and its name there. */
function inFolder<T>(path: string, work: (folder: Folder, name: string) => T): T {
  const { folder, name } = Folder.ofFile(path);
  try {
    return work(folder, name);
  } finally {
    folder.close();
  }
}

/** Builds the executors over the given paths; the agent uses the system's, tests a temporary directory. */
export function driverExecutors(options: DriverExecutorOptions = SYSTEM): { disableDriver: Executor; restoreDriver: Executor } {
  function isLoaded(module: string): boolean {
    if (!existsSync(options.procModules)) throw new ExecutionError(`${options.procModules} is missing: this kernel cannot load or unload modules`);
    return readFileSync(options.procModules, 'utf8').split('\n').some((line) => line.split(' ', 1)[0] === module);
  }
  const blacklistFile = (module: string): string => join(options.modprobeDir, `quell-blacklist-${module}.conf`);

  /** The bytes of a file of the modprobe folder, read without following a link; null when there is none. */
  function readBytes(path: string): Buffer | null {
    if (!existsSync(options.modprobeDir)) return null;
    return inFolder(path, (folder, name) => {
      if (!folder.lstat(name)) return null;
      const file = folder.openFile(name);
      try {
        return readFileSync(file.fd);
      } finally {
        file.close();
      }
    });
  }

  function remove(path: string): void {
    if (!existsSync(options.modprobeDir)) return;
    inFolder(path, (folder, name) => {
      if (folder.lstat(name)) folder.unlink(name);
    });
  }

  /** Replaces the file in one step, so modprobe never reads half of it. */
  function writeAtomically(path: string, bytes: Buffer | string): void {
    mkdirSync(options.modprobeDir, { recursive: true, mode: 0o755 });
    inFolder(path, (folder, name) => {
      const temporary = `${name}.${process.pid}.tmp`;
      if (folder.lstat(temporary)) folder.unlink(temporary);
      const file = folder.createFile(temporary);
      try {
        writeFileSync(file.fd, bytes);
        fchmodSync(file.fd, 0o644);
        fsyncSync(file.fd);
      } finally {
        file.close();
      }
      folder.renameTo(temporary, folder, name);
      folder.sync();
    });
  }

  /** Brings the module and its blacklist file back to the snapshot's state and verifies both. */
  async function putBack(ctx: ExecutionContext, snapshot: DriverSnapshot): Promise<void> {
    const { module, blacklistFile: file } = snapshot;
    const prior = snapshot.priorBlacklist === null ? null : Buffer.from(snapshot.priorBlacklist, 'base64');
    remove(file);
    // Load before the prior file returns: that file may itself forbid loading, yet the module was loaded.
    if (snapshot.loaded && !isLoaded(module)) await modprobe(ctx, [module]);
    if (!snapshot.loaded && isLoaded(module)) await modprobe(ctx, ['-r', module]);
    if (prior) writeAtomically(file, prior);

    const bytes = readBytes(file);
    if (prior ? !bytes?.equals(prior) : bytes !== null) throw new ExecutionError(`${file} does not hold what it held before the action`);
    if (isLoaded(module) !== snapshot.loaded) throw new ExecutionError(`${module} is ${snapshot.loaded ? 'not loaded' : 'still loaded'} after restoring`);
  }

  /**
   * Blacklists the module (so nothing loads it again, not even as a dependency)
   * and unloads it, then verifies both. A failure after a change puts the prior
   * state back, since a failed action leaves no snapshot for an undo. Guarded
   * modules (nftables, the drivers and file systems in use, what they need)
   * are refused before anything changes.
   */
  const disableDriver: Executor = async (ctx) => {
    const module = moduleName(ctx.command.entity.name);
    const guarded = guardsFor(ctx, { ...systemGuardFacts(), procModules: options.procModules }).module(module);
    if (guarded) throw new ExecutionError(guarded);
    const file = blacklistFile(module);
    const prior = readBytes(file);
    const snapshot: DriverSnapshot = { module, loaded: isLoaded(module), blacklistFile: file, priorBlacklist: prior?.toString('base64') ?? null };
    const content = blacklistContent(module, ctx.command.actionId);
    try {
      writeAtomically(file, content);
      if (snapshot.loaded) await modprobe(ctx, ['-r', module]);
      if (isLoaded(module)) throw new ExecutionError(`${module} is still loaded after unloading it`);
      if (readBytes(file)?.toString() !== content) throw new ExecutionError(`${file} does not hold the blacklist just written`);
    } catch (error) {
      try {
        await putBack(ctx, snapshot);
      } catch (rollbackError) {
        throw new ExecutionError(`${(error as Error).message}; putting ${module} back failed too: ${(rollbackError as Error).message}`, { cause: error });
      }
      throw new ExecutionError(`${(error as Error).message}; ${module} was put back as it was`, { cause: error });
    }
    return { output: `${snapshot.loaded ? `Unloaded ${module} and blacklisted it` : `Blacklisted ${module} (it was not loaded)`} in ${file}`, snapshot };
  };

  /** Removes the blacklist (or puts back the file that was there before) and reloads the module if it was loaded. */
  const restoreDriver: Executor = async (ctx) => {
    const snapshot = ctx.priorSnapshot as DriverSnapshot | undefined;
    if (!snapshot) throw new ExecutionError('this agent holds no driver record for the original action');
    const module = moduleName(snapshot.module);
    if (module !== moduleName(ctx.command.entity.name)) throw new ExecutionError(`the original action acted on ${module}, not ${ctx.command.entity.name}`);
    if (snapshot.blacklistFile !== blacklistFile(module)) throw new ExecutionError(`the snapshot names an unexpected blacklist file: ${snapshot.blacklistFile}`);
    await putBack(ctx, snapshot);
    return { output: `Restored ${module}: ${snapshot.loaded ? 'loaded again' : 'left unloaded, as it was'}; ${snapshot.priorBlacklist === null ? `removed ${snapshot.blacklistFile}` : `put back the prior ${snapshot.blacklistFile}`}` };
  };

  return { disableDriver, restoreDriver };
}

async function modprobe(ctx: ExecutionContext, args: string[]): Promise<void> {
  try {
    await mustRun(ctx.runner, 'modprobe', args);
  } catch (error) {
    throw new ExecutionError((error as Error).message, { cause: error });
  }
}

export const { disableDriver, restoreDriver } = driverExecutors();
