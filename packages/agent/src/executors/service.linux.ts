import { basename, dirname } from 'node:path';
import { LINUX_NAMES } from '@quell/contracts';
import { guardsFor } from '../guards.linux.ts';
import { mustRun } from '../runner.ts';
import { type FolderId, lstatFrom } from '../safe-fs.linux.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';
import { type FileRecord, inFolder, isFileRecord, record, verifyRestored, writeExactly } from './file-record.linux.ts';
import { type UnitLink, placeControlMask, putLinksBack, removeControlMask, unitLinks } from './unit-links.linux.ts';

/**
 * The unit names this action accepts. The first character can never be `-`,
 * so a name from an attacker is never read by systemctl as an option.
 */
const UNIT_NAME = LINUX_NAMES.unit;
/** systemd's UNIT_NAME_MAX, without the terminating NUL. */
const UNIT_NAME_MAX = 255;

/**
 * Where a unit file is removed from with `removeUnitFile`: the
 * administrator's folders. A packaged unit (/usr/lib/systemd/system) would
 * come back with the next upgrade: it is masked instead.
 */
const REMOVABLE_UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system'];

/** `systemctl is-active` answers that mean the unit is running or about to be. */
const RUNNING = new Set(['active', 'activating', 'reloading', 'refreshing']);
/** `systemctl is-enabled` answers that `systemctl disable` undoes. */
const ENABLED = new Set(['enabled', 'enabled-runtime', 'linked', 'linked-runtime']);
const MASKED = new Set(['masked', 'masked-runtime']);
/** Answers where there is nothing to disable: the unit starts only when something asks for it. */
const NOT_ENABLED = new Set(['disabled', 'static', 'indirect', 'generated', 'transient']);

/** One unit as the action found it. */
interface UnitSnapshot {
  unit: string;
  /** `systemctl is-active` before the action. */
  active: string;
  /** `systemctl is-enabled` before the action. */
  enabled: string;
  /** For a linked unit only: the unit file `systemctl link` brings back. */
  fragmentPath?: string;
  /** The unit's links as they were on disk; restore puts back exactly these (absent from records of earlier versions). */
  links?: UnitLink[];
}

export interface ServiceSnapshot extends UnitSnapshot {
  masked: boolean;
  /** How the action kept the unit from starting again (absent from records of earlier versions: as `disable`, or `mask` when asked). `control_mask`: masked through /etc/systemd/system.control, where systemctl cannot mask (see unit-links.linux.ts). */
  applied?: StopMode;
  /** The sockets, paths and timers that started the unit, each stopped and disabled with it. */
  triggers?: UnitSnapshot[];
  /** With `removeUnitFile`: the unit file taken out, byte for byte, and the folders above it. */
  unitFile?: { path: string; file: FileRecord; chain: FolderId[] };
}

interface UnitState { active: string; enabled: string }

/** What talking to systemd needs: the runner of systemctl. */
type Systemd = Pick<ExecutionContext, 'runner'>;

export function validUnitName(name: string): string {
  if (name.length > UNIT_NAME_MAX || !UNIT_NAME.test(name)) {
    throw new ExecutionError(`not a systemd service, socket, timer or path unit name: ${JSON.stringify(name)}`);
  }
  return name;
}

const isRunning = (active: string): boolean => RUNNING.has(active);

/** The unit's state as `systemctl is-active` names it (which exits non-zero for "inactive": the answer is what it prints). */
export async function isActive(ctx: Systemd, unit: string): Promise<string> {
  const result = await ctx.runner.run('systemctl', ['is-active', unit]);
  const state = result.stdout.trim().split('\n')[0]?.trim() ?? '';
  if (!state) throw new ExecutionError(`systemctl is-active ${unit} gave no state (${result.code}): ${result.stderr.trim()}`);
  return state;
}

/** The unit-file state as `systemctl is-enabled` names it; `not-found` once nothing in the search path provides the unit. */
export async function isEnabled(ctx: Systemd, unit: string): Promise<string> {
  const result = await ctx.runner.run('systemctl', ['is-enabled', unit]);
  const state = result.stdout.trim().split('\n')[0]?.trim() ?? '';
  if (state) return state;
  // Versions before "not-found" existed said so only on stderr.
  if (/no such file/i.test(result.stderr)) return 'not-found';
  throw new ExecutionError(`systemctl is-enabled ${unit} gave no state (${result.code}): ${result.stderr.trim()}`);
}

/** Refuses, before anything changes, a unit that is missing or whose state this agent could not put back exactly. */
function restorable(unit: string, enabled: string): void {
  if (enabled === 'not-found') throw new ExecutionError(`there is no unit ${unit} on this device`);
  if (enabled === 'alias') throw new ExecutionError(`${unit} is an alias of another unit: act on the unit it names`);
  if (!ENABLED.has(enabled) && !MASKED.has(enabled) && !NOT_ENABLED.has(enabled)) throw new ExecutionError(`${unit} has unit-file state "${enabled}", which this agent cannot restore exactly: left alone`);
}

async function unitState(ctx: Systemd, unit: string): Promise<UnitState> {
  return { active: await isActive(ctx, unit), enabled: await isEnabled(ctx, unit) };
}

async function systemctl(ctx: Systemd, ...args: string[]): Promise<void> {
  try {
    await mustRun(ctx.runner, 'systemctl', args);
  } catch (error) {
    throw new ExecutionError((error as Error).message, { cause: error });
  }
}

/** One line of `systemctl show --property=NAME --value`. */
async function property(ctx: Systemd, unit: string, name: string): Promise<string> {
  return (await ctx.runner.run('systemctl', ['show', `--property=${name}`, '--value', unit])).stdout.trim();
}

/** Records a unit's state and links, refusing one that could not be put back exactly. */
async function snapshotOf(ctx: Systemd, unit: string): Promise<UnitSnapshot> {
  const { active, enabled } = await unitState(ctx, unit);
  restorable(unit, enabled);
  const snapshot: UnitSnapshot = { unit, active, enabled, links: unitLinks(unit) };
  if (enabled === 'linked' || enabled === 'linked-runtime') {
    const fragmentPath = await property(ctx, unit, 'FragmentPath');
    if (!fragmentPath.startsWith('/')) throw new ExecutionError(`cannot tell which file ${unit} is linked from: left alone so that it can be restored`);
    snapshot.fragmentPath = fragmentPath;
  }
  return snapshot;
}

/** Brings one unit back to its snapshot's state, touching only what differs, and verifies it. */
async function converge(ctx: Systemd, snapshot: UnitSnapshot): Promise<UnitState> {
  const { unit } = snapshot;
  const now = await unitState(ctx, unit);
  let enabled = now.enabled;
  const start = isRunning(snapshot.active) && !isRunning(now.active);
  // A masked unit cannot be started: a unit that ran while masked is unmasked to start it and masked again below.
  if (MASKED.has(enabled) && (enabled !== snapshot.enabled || start)) {
    await systemctl(ctx, 'unmask', ...(enabled === 'masked-runtime' ? ['--runtime'] : []), unit);
    enabled = await isEnabled(ctx, unit);
  }
  // The links as they were, rather than what [Install] would make of them today.
  if (snapshot.links?.length && putLinksBack(snapshot.links) > 0) {
    await systemctl(ctx, 'daemon-reload');
    enabled = await isEnabled(ctx, unit);
  }
  if (enabled !== snapshot.enabled) {
    switch (snapshot.enabled) {
      case 'enabled': await systemctl(ctx, 'enable', unit); break;
      case 'enabled-runtime': await systemctl(ctx, 'enable', '--runtime', unit); break;
      case 'linked':
      case 'linked-runtime':
        if (!snapshot.fragmentPath) throw new ExecutionError(`the snapshot of linked unit ${unit} does not say which file it was linked from`);
        await systemctl(ctx, 'link', ...(snapshot.enabled === 'linked-runtime' ? ['--runtime'] : []), snapshot.fragmentPath);
        break;
      case 'disabled': if (ENABLED.has(enabled)) await systemctl(ctx, 'disable', unit); break;
      default: break; // static, indirect, generated, transient: nothing to enable; masked: masking comes last
    }
  }
  if (start) await systemctl(ctx, 'start', unit);
  if (!isRunning(snapshot.active) && isRunning(now.active)) await systemctl(ctx, 'stop', unit);
  if (MASKED.has(snapshot.enabled) && enabled !== snapshot.enabled) {
    await systemctl(ctx, 'mask', ...(snapshot.enabled === 'masked-runtime' ? ['--runtime'] : []), unit);
  }
  const after = await unitState(ctx, unit);
  if (isRunning(after.active) !== isRunning(snapshot.active) || after.enabled !== snapshot.enabled) {
    throw new ExecutionError(`${unit} is ${after.active} and ${after.enabled} after restoring, not ${snapshot.active} and ${snapshot.enabled} as before the action`);
  }
  return after;
}

/** Restores the triggers first: systemd will not start a socket whose service already runs without it. */
async function convergeAll(ctx: Systemd, snapshot: ServiceSnapshot): Promise<UnitState> {
  if (snapshot.applied === 'control_mask' && removeControlMask(snapshot.unit)) await systemctl(ctx, 'daemon-reload');
  for (const trigger of snapshot.triggers ?? []) await converge(ctx, trigger);
  return converge(ctx, snapshot);
}

/** The sockets, paths and timers that start `unit` when they fire, each checked like the unit itself. */
async function triggersOf(ctx: ExecutionContext, unit: string): Promise<UnitSnapshot[]> {
  const names = (await property(ctx, unit, 'TriggeredBy')).split(/\s+/).filter(Boolean);
  const triggers: UnitSnapshot[] = [];
  for (const name of names) {
    validUnitName(name);
    const guarded = guardsFor(ctx).unit(name);
    if (guarded) throw new ExecutionError(`${unit} is started by ${name}, which is protected: ${guarded}`);
    triggers.push(await snapshotOf(ctx, name));
  }
  return triggers;
}

/** Disables (or masks) one unit, then stops it, and checks both. */
type StopMode = 'disable' | 'mask' | 'control_mask';

/** Disables (or masks) one unit, then stops it, and checks both. Idempotent: the drift watch runs it again on a unit found running or enabled. */
async function stopUnit(ctx: Systemd, unit: string, mode: StopMode, known?: UnitState): Promise<UnitState> {
  const before = known ?? await unitState(ctx, unit);
  // Disable or mask first, so that nothing starts the unit again between the stop and the change.
  if (mode === 'mask' && !MASKED.has(before.enabled)) await systemctl(ctx, 'mask', unit);
  if (mode === 'control_mask' && !MASKED.has(before.enabled)) {
    placeControlMask(unit);
    await systemctl(ctx, 'daemon-reload');
  }
  // A masked unit keeps its enablement, which restore then need not touch.
  if (mode === 'disable' && ENABLED.has(before.enabled)) await systemctl(ctx, 'disable', unit);
  await systemctl(ctx, 'stop', unit);
  const after = await unitState(ctx, unit);
  const lifted = liftedFrom(unit, after, mode);
  if (lifted) throw new ExecutionError(`${lifted} after ${mode === 'disable' ? 'disabling' : 'masking'} and stopping it`);
  return after;
}

/** What no longer holds of a stopped unit, in words, or null. */
function liftedFrom(unit: string, state: UnitState, mode: StopMode): string | null {
  if (isRunning(state.active)) return `${unit} is ${state.active}`;
  if (mode === 'disable' ? ENABLED.has(state.enabled) : !MASKED.has(state.enabled)) return `${unit} is ${state.enabled}`;
  return null;
}

const modeOf = (snapshot: ServiceSnapshot): StopMode => snapshot.applied ?? 'disable';

/**
 * For the drift watch, while a stop service is in force: what was started,
 * enabled or unmasked again since — the unit or what started it — or null.
 */
export async function serviceLifted(runner: Systemd['runner'], snapshot: ServiceSnapshot): Promise<string | null> {
  const ctx = { runner };
  const found: string[] = [];
  for (const trigger of snapshot.triggers ?? []) {
    const lifted = liftedFrom(trigger.unit, await unitState(ctx, trigger.unit), 'disable');
    if (lifted) found.push(lifted);
  }
  const state = await unitState(ctx, snapshot.unit);
  const mode = modeOf(snapshot);
  // Both of what is wrong with the unit, not just the first: running and enabled again are two things to put right.
  if (isRunning(state.active)) found.push(`${snapshot.unit} is ${state.active}`);
  if (mode === 'disable' ? ENABLED.has(state.enabled) : !MASKED.has(state.enabled)) found.push(`${snapshot.unit} is ${state.enabled}`);
  if (await unitFileBack(snapshot)) found.push(`${snapshot.unit} has its unit file at ${snapshot.unitFile!.path}`);
  return found.length ? `${found.join(', ')} again` : null;
}

/** Whether the very unit file the action removed is back at its place. */
async function unitFileBack(snapshot: ServiceSnapshot): Promise<boolean> {
  const removed = snapshot.unitFile;
  if (!removed || !lstatFrom('/', '/', removed.path)?.isFile()) return false;
  return inFolder(removed.path, async (folder, name) => (await record(folder, name)).record.sha256 === removed.file.sha256);
}

/** Puts a stop service in force back: what started the unit first, then the unit, as the action left them, and its unit file out again. */
export async function stopServiceAgain(runner: Systemd['runner'], snapshot: ServiceSnapshot): Promise<void> {
  const ctx = { runner };
  const fileBack = await unitFileBack(snapshot);
  // systemd learns of the file first, so that it can be disabled and stopped by name.
  if (fileBack) await systemctl(ctx, 'daemon-reload');
  for (const trigger of snapshot.triggers ?? []) await stopUnit(ctx, trigger.unit, 'disable');
  await stopUnit(ctx, snapshot.unit, modeOf(snapshot));
  if (fileBack) {
    await inFolder(snapshot.unitFile!.path, async (folder, name) => {
      folder.unlink(name);
      folder.sync();
    });
    await systemctl(ctx, 'daemon-reload');
  }
}

/**
 * Disables (or, with `mask`, masks) the unit so that nothing starts it again,
 * then stops it, and verifies both. The sockets, paths and timers that would
 * start it again are stopped and disabled first. Its links are recorded as
 * they are on disk, so that restore puts back exactly those. A failure after
 * a change puts the prior state back, since a failed action leaves no
 * snapshot for an undo. Guarded units (the agent's own, critical system
 * units) are refused before systemctl is asked anything; any alias is refused
 * once systemctl names it one, so a guarded unit is not reached through
 * another of its names.
 */
export const stopService: Executor<'stop_service'> = async (ctx) => {
  const unit = validUnitName(ctx.command.entity.name);
  const guarded = guardsFor(ctx).unit(unit);
  if (guarded) throw new ExecutionError(guarded);
  const wantsMask = ctx.command.parameters.mask === true;
  const removeFile = ctx.command.parameters.removeUnitFile === true;
  if (wantsMask && removeFile) throw new ExecutionError('give mask or removeUnitFile, not both: a unit whose file is removed cannot start, and there is nothing left to mask');
  const snapshot: ServiceSnapshot = { ...await snapshotOf(ctx, unit), masked: false, triggers: await triggersOf(ctx, unit) };
  const unitFilePath = removeFile ? await removableUnitFile(ctx, unit) : null;
  snapshot.masked = MASKED.has(snapshot.enabled);
  // systemctl cannot mask a unit whose own file is in /etc/systemd/system: that one is masked through system.control.
  const fileInEtc = wantsMask && !snapshot.masked && (await property(ctx, unit, 'FragmentPath')).startsWith('/etc/systemd/system/');
  const mode: StopMode = !wantsMask ? 'disable' : fileInEtc ? 'control_mask' : 'mask';
  snapshot.applied = mode;

  let after: UnitState;
  try {
    for (const trigger of snapshot.triggers ?? []) await stopUnit(ctx, trigger.unit, 'disable', trigger);
    after = await stopUnit(ctx, unit, mode, snapshot);
  } catch (error) {
    throw await rolledBack(ctx, snapshot, error as Error);
  }
  if (unitFilePath) await removeUnitFile(ctx, snapshot, unitFilePath);

  const notes: string[] = [];
  if (snapshot.triggers?.length) notes.push(`also stopped and disabled what started it: ${snapshot.triggers.map((t) => t.unit).join(', ')}`);
  if (mode === 'control_mask') notes.push('masked through /etc/systemd/system.control, since its unit file is in /etc/systemd/system');
  if (snapshot.unitFile) notes.push(`its unit file ${snapshot.unitFile.path} (SHA-256 ${snapshot.unitFile.file.sha256}) was removed, so it cannot start again, not even after a reboot; restore puts it back byte for byte`);
  if (snapshot.enabled === 'transient') notes.push('a transient unit\'s definition is gone once it stops, so restoring cannot start it again');
  if (['static', 'indirect', 'generated'].includes(after.enabled)) notes.push(`a ${after.enabled} unit can still be started by other units; mask it to prevent that`);
  const busName = mode === 'disable' && !snapshot.unitFile ? await property(ctx, unit, 'BusName') : '';
  if (busName) notes.push(`it can still be started over D-Bus as ${busName}; mask it to prevent that`);
  const note = notes.map((text) => `. Note: ${text}`).join('');
  return { output: `Stopped ${unit} (was ${snapshot.active}, ${snapshot.enabled}; now ${after.active}, ${after.enabled})${note}`, snapshot };
};

/** The unit's own file, when it is one `removeUnitFile` may take: in an administrator's folder, named as the unit. */
async function removableUnitFile(ctx: Systemd, unit: string): Promise<string> {
  const path = await property(ctx, unit, 'FragmentPath');
  if (!REMOVABLE_UNIT_DIRS.includes(dirname(path)) || basename(path) !== unit) {
    throw new ExecutionError(`the unit file of ${unit} is ${path || 'unknown'}: only a file named as the unit directly in ${REMOVABLE_UNIT_DIRS.join(', ')} is removed (a packaged unit would come back with the next upgrade: mask it instead)`);
  }
  // Reached without following a link, like every file the agent changes: a link there is left alone.
  if (!lstatFrom('/', '/', path)?.isFile()) throw new ExecutionError(`${path} is not a regular file reached without a symbolic link: its unit file was left alone, mask it instead`);
  return path;
}

/**
 * Takes the stopped unit's file out, recorded byte for byte, and reloads
 * systemd; checks systemd no longer knows the unit. A failure puts the file
 * and the unit's state back.
 */
async function removeUnitFile(ctx: ExecutionContext, snapshot: ServiceSnapshot, path: string): Promise<void> {
  let taken: { file: FileRecord; bytes: Buffer };
  try {
    taken = await inFolder(path, async (folder, name) => {
      const { record: file, bytes } = await record(folder, name);
      folder.unlink(name);
      folder.sync();
      snapshot.unitFile = { path, file, chain: [...folder.chain] };
      return { file, bytes };
    });
  } catch (error) {
    // Replaced meanwhile, or unreadable: the file is where it was, and the unit goes back as it was.
    throw await rolledBack(ctx, snapshot, error as Error);
  }
  try {
    await systemctl(ctx, 'daemon-reload');
    const loadState = await property(ctx, snapshot.unit, 'LoadState');
    if (loadState !== 'not-found') throw new ExecutionError(`systemd still loads ${snapshot.unit} (${loadState}) after its unit file was removed`);
  } catch (error) {
    await inFolder(path, (folder, name) => writeExactly(folder, name, taken.bytes, taken.file, ctx.command.actionId, false));
    await systemctl(ctx, 'daemon-reload');
    delete snapshot.unitFile;
    throw await rolledBack(ctx, snapshot, error as Error);
  }
}

/** Puts a removed unit file back exactly (never over another file) and reloads systemd. */
async function putUnitFileBack(ctx: ExecutionContext, removed: NonNullable<ServiceSnapshot['unitFile']>, unit: string): Promise<void> {
  if (!REMOVABLE_UNIT_DIRS.includes(dirname(removed.path)) || basename(removed.path) !== unit || !isFileRecord(removed.file)) {
    throw new ExecutionError(`the service record names an unexpected unit file: ${JSON.stringify(removed.path)}`);
  }
  const bytes = Buffer.from(removed.file.contentBase64, 'base64');
  await inFolder(removed.path, async (folder, name) => {
    folder.expectChain(removed.chain);
    if (folder.lstat(name)) {
      if ((await record(folder, name)).record.sha256 !== removed.file.sha256) throw new ExecutionError(`a different file now exists at ${removed.path}; it was not overwritten`);
    } else {
      await writeExactly(folder, name, bytes, removed.file, ctx.command.actionId, false);
    }
    await verifyRestored(folder, name, removed.file);
  });
  await systemctl(ctx, 'daemon-reload');
}

async function rolledBack(ctx: ExecutionContext, snapshot: ServiceSnapshot, error: Error): Promise<ExecutionError> {
  try {
    await convergeAll(ctx, snapshot);
    return new ExecutionError(`${error.message}; ${snapshot.unit} was put back to ${snapshot.active}, ${snapshot.enabled}`, { cause: error });
  } catch (rollbackError) {
    return new ExecutionError(`${error.message}; putting ${snapshot.unit} back failed too: ${(rollbackError as Error).message}`, { cause: error });
  }
}

/** Puts the unit and what started it back exactly as the original action found them: running or not, enabled, disabled or masked, with the same links. */
export const restoreService: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot as ServiceSnapshot | undefined;
  if (!snapshot) throw new ExecutionError('this agent holds no service record for the original action');
  validUnitName(snapshot.unit);
  for (const trigger of snapshot.triggers ?? []) validUnitName(trigger.unit);
  if (snapshot.unit !== ctx.command.entity.name) throw new ExecutionError(`the original action acted on ${snapshot.unit}, not ${ctx.command.entity.name}`);
  // A trigger another action removed (a timer's removal) comes back with that action's undo: before it, this one could only half restore.
  for (const trigger of snapshot.triggers ?? []) {
    if ((await isEnabled(ctx, trigger.unit)) === 'not-found') throw new ExecutionError(`${trigger.unit}, which started ${snapshot.unit}, is gone from this device (another action removed it): undo that removal first, then this one`);
  }
  if (snapshot.unitFile) await putUnitFileBack(ctx, snapshot.unitFile, snapshot.unit);
  const after = await convergeAll(ctx, snapshot);
  const also = snapshot.triggers?.length ? `, with ${snapshot.triggers.map((t) => t.unit).join(', ')}` : '';
  const file = snapshot.unitFile ? `; unit file ${snapshot.unitFile.path} back byte for byte (SHA-256 ${snapshot.unitFile.file.sha256})` : '';
  return { output: `Restored ${snapshot.unit}: ${after.active}, ${after.enabled}${also}${file}` };
};
