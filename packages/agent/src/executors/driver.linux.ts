import { existsSync, fchmodSync, fsyncSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guardsFor, systemGuardFacts } from '../guards.linux.ts';
import { mustRun } from '../runner.ts';
import { Folder } from '../safe-fs.linux.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** Kernel module names; the first character can never be `-`, so modprobe never reads one as an option. */
const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
/** The kernel's MODULE_NAME_LEN (64) less the pointer-sized prefix, without the terminating NUL. */
const MODULE_NAME_MAX = 55;

/** A module's parameter: a C identifier. */
const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** A value modprobe can pass back: printable, no double quote (values with spaces are quoted). */
const PARAMETER_VALUE = /^[\x20-\x21\x23-\x7e]{0,1024}$/;
const MAX_PARAMETERS = 100;

export interface DriverExecutorOptions {
  /** Where modprobe reads its configuration from. */
  modprobeDir: string;
  /** The kernel's list of loaded modules. */
  procModules: string;
  /** The kernel's folder of loaded modules, whose parameters/ hold their values now. */
  sysModule: string;
  /** The tools that rebuild the initramfs, in order of preference: the first present is run. */
  initramfsTools: ReadonlyArray<readonly [path: string, ...args: string[]]>;
}

const SYSTEM: DriverExecutorOptions = {
  modprobeDir: '/etc/modprobe.d', procModules: '/proc/modules', sysModule: '/sys/module',
  initramfsTools: [['/usr/sbin/update-initramfs', '-u'], ['/usr/bin/dracut', '-f']],
};

interface DriverSnapshot {
  /** The module name as the kernel spells it (dashes become underscores). */
  module: string;
  loaded: boolean;
  blacklistFile: string;
  /** The bytes (base64) of a blacklist file that was already at that path, or null. */
  priorBlacklist: string | null;
  /** The loaded module's parameters and their values, given back when it is loaded again (absent in older records). */
  parameters?: Record<string, string>;
  /** Parameters that could not be read or passed back, by name, with why. */
  parametersLeft?: string[];
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

/** `name=value` for modprobe; a value with spaces in double quotes, as the kernel parses them. */
function parameterArgument(name: string, value: string): string {
  return `${name}=${value.includes(' ') ? `"${value}"` : value}`;
}

/** The parameters of a snapshot, when each name and value is one modprobe can be given (the journal is data like any other). */
function checkedParameters(parameters: unknown): Record<string, string> {
  if (parameters === undefined) return {};
  const entries = typeof parameters === 'object' && parameters !== null ? Object.entries(parameters) : null;
  if (!entries || entries.length > MAX_PARAMETERS || entries.some(([name, value]) => !PARAMETER_NAME.test(name) || typeof value !== 'string' || !PARAMETER_VALUE.test(value))) {
    throw new ExecutionError('the driver record holds parameters that cannot be given to modprobe');
  }
  return Object.fromEntries(entries) as Record<string, string>;
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
export function driverExecutors(given: Partial<DriverExecutorOptions> = {}): { disableDriver: Executor; restoreDriver: Executor } {
  const options: DriverExecutorOptions = { ...SYSTEM, ...given };
  function isLoaded(module: string): boolean {
    if (!existsSync(options.procModules)) throw new ExecutionError(`${options.procModules} is missing: this kernel cannot load or unload modules`);
    return readFileSync(options.procModules, 'utf8').split('\n').some((line) => line.split(' ', 1)[0] === module);
  }
  const blacklistFile = (module: string): string => join(options.modprobeDir, `quell-blacklist-${module}.conf`);

  /**
   * The values of a loaded module's parameters now, to load it with them
   * again: what cannot be read (write-only), is unset or cannot be passed
   * back is named in `left`.
   */
  function parametersOf(module: string): { parameters: Record<string, string>; left: string[] } {
    const folder = join(options.sysModule, module, 'parameters');
    const parameters: Record<string, string> = {};
    const left: string[] = [];
    const names = existsSync(folder) ? readdirSync(folder).sort() : [];
    for (const name of names.slice(0, MAX_PARAMETERS)) {
      let value: string;
      try {
        value = readFileSync(join(folder, name), 'utf8').replace(/\n$/, '');
      } catch {
        left.push(`${name} (not readable)`);
        continue;
      }
      if (!PARAMETER_NAME.test(name) || !PARAMETER_VALUE.test(value)) left.push(`${name} (a value modprobe cannot be given)`);
      else if (value !== '(null)') parameters[name] = value;
    }
    if (names.length > MAX_PARAMETERS) left.push(`${names.length - MAX_PARAMETERS} more`);
    return { parameters, left };
  }

  /**
   * Rebuilds the initramfs with the first tool present, so that what
   * modprobe.d says also holds for the modules loaded early at boot; says
   * which ran, or that there is none.
   */
  async function updateInitramfs(ctx: ExecutionContext): Promise<string> {
    const tool = options.initramfsTools.find(([path]) => existsSync(path));
    if (!tool) return `no initramfs tool found (${options.initramfsTools.map(([path]) => path).join(', ')}): only the root file system's modprobe configuration holds it`;
    const [path, ...args] = tool;
    try {
      await mustRun(ctx.runner, path, args);
    } catch (error) {
      throw new ExecutionError(`the initramfs could not be rebuilt, so the module could still load early at boot: ${(error as Error).message}`, { cause: error });
    }
    return `initramfs rebuilt (${[path, ...args].join(' ')})`;
  }

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

  /**
   * Brings the module (with its parameters) and its blacklist file back to
   * the snapshot's state, verifies both, and rebuilds the initramfs; says
   * how the initramfs was handled.
   */
  async function putBack(ctx: ExecutionContext, snapshot: DriverSnapshot): Promise<string> {
    const { module, blacklistFile: file } = snapshot;
    const parameters = checkedParameters(snapshot.parameters);
    const prior = snapshot.priorBlacklist === null ? null : Buffer.from(snapshot.priorBlacklist, 'base64');
    remove(file);
    // Load before the prior file returns: that file may itself forbid loading, yet the module was loaded.
    if (snapshot.loaded && !isLoaded(module)) await modprobe(ctx, [module, ...Object.entries(parameters).map(([name, value]) => parameterArgument(name, value))]);
    if (!snapshot.loaded && isLoaded(module)) await modprobe(ctx, ['-r', module]);
    if (prior) writeAtomically(file, prior);

    const bytes = readBytes(file);
    if (prior ? !bytes?.equals(prior) : bytes !== null) throw new ExecutionError(`${file} does not hold what it held before the action`);
    if (isLoaded(module) !== snapshot.loaded) throw new ExecutionError(`${module} is ${snapshot.loaded ? 'not loaded' : 'still loaded'} after restoring`);
    return updateInitramfs(ctx);
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
    const loaded = isLoaded(module);
    const { parameters, left } = loaded ? parametersOf(module) : { parameters: {}, left: [] };
    const snapshot: DriverSnapshot = { module, loaded, blacklistFile: file, priorBlacklist: prior?.toString('base64') ?? null, parameters, parametersLeft: left };
    const content = blacklistContent(module, ctx.command.actionId);
    let initramfs: string;
    try {
      writeAtomically(file, content);
      if (snapshot.loaded) await modprobe(ctx, ['-r', module]);
      if (isLoaded(module)) throw new ExecutionError(`${module} is still loaded after unloading it`);
      if (readBytes(file)?.toString() !== content) throw new ExecutionError(`${file} does not hold the blacklist just written`);
      initramfs = await updateInitramfs(ctx);
    } catch (error) {
      try {
        await putBack(ctx, snapshot);
      } catch (rollbackError) {
        throw new ExecutionError(`${(error as Error).message}; putting ${module} back failed too: ${(rollbackError as Error).message}`, { cause: error });
      }
      throw new ExecutionError(`${(error as Error).message}; ${module} was put back as it was`, { cause: error });
    }
    const kept = Object.keys(parameters).length > 0 ? `; its parameters kept for a restore: ${Object.entries(parameters).map(([n, v]) => `${n}=${v}`).join(' ')}` : '';
    const notKept = left.length > 0 ? `; parameters not kept: ${left.join(', ')}` : '';
    return { output: `${snapshot.loaded ? `Unloaded ${module} and blacklisted it` : `Blacklisted ${module} (it was not loaded)`} in ${file}; ${initramfs}${kept}${notKept}`, snapshot };
  };

  /** Removes the blacklist (or puts back the file that was there before) and reloads the module if it was loaded. */
  const restoreDriver: Executor = async (ctx) => {
    const snapshot = ctx.priorSnapshot as DriverSnapshot | undefined;
    if (!snapshot) throw new ExecutionError('this agent holds no driver record for the original action');
    const module = moduleName(snapshot.module);
    if (module !== moduleName(ctx.command.entity.name)) throw new ExecutionError(`the original action acted on ${module}, not ${ctx.command.entity.name}`);
    if (snapshot.blacklistFile !== blacklistFile(module)) throw new ExecutionError(`the snapshot names an unexpected blacklist file: ${snapshot.blacklistFile}`);
    const initramfs = await putBack(ctx, snapshot);
    const withParameters = snapshot.loaded && Object.keys(snapshot.parameters ?? {}).length > 0 ? ' with its parameters as they were' : '';
    return { output: `Restored ${module}: ${snapshot.loaded ? `loaded again${withParameters}` : 'left unloaded, as it was'}; ${snapshot.priorBlacklist === null ? `removed ${snapshot.blacklistFile}` : `put back the prior ${snapshot.blacklistFile}`}; ${initramfs}` };
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
