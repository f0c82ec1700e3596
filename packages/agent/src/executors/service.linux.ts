import { guardsFor } from '../guards.linux.ts';
import { mustRun } from '../runner.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/**
 * The unit names this action accepts. The first character can never be `-`,
 * so a name from an attacker is never read by systemctl as an option.
 */
const UNIT_NAME = /^[A-Za-z0-9@_:][A-Za-z0-9@._:-]*\.(service|socket|timer)$/;
/** systemd's UNIT_NAME_MAX, without the terminating NUL. */
const UNIT_NAME_MAX = 255;

/** `systemctl is-active` answers that mean the unit is running or about to be. */
const RUNNING = new Set(['active', 'activating', 'reloading', 'refreshing']);
/** `systemctl is-enabled` answers that `systemctl disable` undoes. */
const ENABLED = new Set(['enabled', 'enabled-runtime', 'linked', 'linked-runtime']);
const MASKED = new Set(['masked', 'masked-runtime']);
/** Answers where there is nothing to disable: the unit starts only when something asks for it. */
const NOT_ENABLED = new Set(['disabled', 'static', 'indirect', 'generated', 'transient']);

interface ServiceSnapshot {
  unit: string;
  /** `systemctl is-active` before the action. */
  active: string;
  /** `systemctl is-enabled` before the action. */
  enabled: string;
  masked: boolean;
  /** For a linked unit only: the unit file `systemctl link` brings back. */
  fragmentPath?: string;
}

interface UnitState { active: string; enabled: string }

export function validUnitName(name: string): string {
  if (name.length > UNIT_NAME_MAX || !UNIT_NAME.test(name)) {
    throw new ExecutionError(`not a systemd service, socket or timer name: ${JSON.stringify(name)}`);
  }
  return name;
}

const isRunning = (active: string): boolean => RUNNING.has(active);

async function isActive(ctx: ExecutionContext, unit: string): Promise<string> {
  const result = await ctx.runner.run('systemctl', ['is-active', unit]);
  const state = result.stdout.trim().split('\n')[0]?.trim() ?? '';
  if (!state) throw new ExecutionError(`systemctl is-active ${unit} gave no state (${result.code}): ${result.stderr.trim()}`);
  return state;
}

/** The unit-file state as `systemctl is-enabled` names it; `not-found` once nothing in the search path provides the unit. */
async function isEnabled(ctx: ExecutionContext, unit: string): Promise<string> {
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

async function unitState(ctx: ExecutionContext, unit: string): Promise<UnitState> {
  return { active: await isActive(ctx, unit), enabled: await isEnabled(ctx, unit) };
}

async function systemctl(ctx: ExecutionContext, ...args: string[]): Promise<void> {
  try {
    await mustRun(ctx.runner, 'systemctl', args);
  } catch (error) {
    throw new ExecutionError((error as Error).message, { cause: error });
  }
}

/** Brings the unit back to the snapshot's state, touching only what differs, and verifies it. */
async function converge(ctx: ExecutionContext, snapshot: ServiceSnapshot): Promise<UnitState> {
  const { unit } = snapshot;
  const now = await unitState(ctx, unit);
  let enabled = now.enabled;
  const start = isRunning(snapshot.active) && !isRunning(now.active);
  // A masked unit cannot be started: a unit that ran while masked is unmasked to start it and masked again below.
  if (MASKED.has(enabled) && (enabled !== snapshot.enabled || start)) {
    await systemctl(ctx, 'unmask', ...(enabled === 'masked-runtime' ? ['--runtime'] : []), unit);
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

/**
 * Disables (or, with `mask`, masks) the unit so that nothing starts it again,
 * then stops it, and verifies both. A failure after a change puts the prior
 * state back, since a failed action leaves no snapshot for an undo. Guarded
 * units (the agent's own, critical system units) are refused before systemctl
 * is asked anything; any alias is refused once systemctl names it one, so a
 * guarded unit is not reached through another of its names.
 */
export const stopService: Executor = async (ctx) => {
  const unit = validUnitName(ctx.command.entity.name);
  const guarded = guardsFor(ctx).unit(unit);
  if (guarded) throw new ExecutionError(guarded);
  const mask = ctx.command.parameters.mask === true || ctx.command.parameters.mask === 'true';
  const before = await unitState(ctx, unit);
  restorable(unit, before.enabled);
  const snapshot: ServiceSnapshot = { unit, active: before.active, enabled: before.enabled, masked: MASKED.has(before.enabled) };
  if (before.enabled === 'linked' || before.enabled === 'linked-runtime') {
    const fragmentPath = (await ctx.runner.run('systemctl', ['show', '--property=FragmentPath', '--value', unit])).stdout.trim();
    if (!fragmentPath.startsWith('/')) throw new ExecutionError(`cannot tell which file ${unit} is linked from: left alone so that it can be restored`);
    snapshot.fragmentPath = fragmentPath;
  }

  let after: UnitState;
  try {
    // Disable or mask first, so that nothing starts the unit again between the stop and the change.
    if (mask && !snapshot.masked) await systemctl(ctx, 'mask', unit);
    if (!mask && ENABLED.has(before.enabled)) await systemctl(ctx, 'disable', unit);
    await systemctl(ctx, 'stop', unit);
    after = await unitState(ctx, unit);
    if (isRunning(after.active)) throw new ExecutionError(`${unit} is still ${after.active} after stopping it`);
    if (mask ? !MASKED.has(after.enabled) : ENABLED.has(after.enabled)) throw new ExecutionError(`${unit} is still ${after.enabled} after ${mask ? 'masking' : 'disabling'} it`);
  } catch (error) {
    throw await rolledBack(ctx, snapshot, error as Error);
  }

  const note = before.enabled === 'transient'
    ? '. Note: a transient unit\'s definition is gone once it stops, so restoring cannot start it again'
    : ['static', 'indirect', 'generated'].includes(after.enabled) ? `. Note: a ${after.enabled} unit can still be started by other units; mask it to prevent that` : '';
  return { output: `Stopped ${unit} (was ${before.active}, ${before.enabled}; now ${after.active}, ${after.enabled})${note}`, snapshot };
};

async function rolledBack(ctx: ExecutionContext, snapshot: ServiceSnapshot, error: Error): Promise<ExecutionError> {
  try {
    await converge(ctx, snapshot);
    return new ExecutionError(`${error.message}; ${snapshot.unit} was put back to ${snapshot.active}, ${snapshot.enabled}`, { cause: error });
  } catch (rollbackError) {
    return new ExecutionError(`${error.message}; putting ${snapshot.unit} back failed too: ${(rollbackError as Error).message}`, { cause: error });
  }
}

/** Puts the unit back exactly as the original action found it: running or not, enabled, disabled or masked. */
export const restoreService: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot as ServiceSnapshot | undefined;
  if (!snapshot) throw new ExecutionError('this agent holds no service record for the original action');
  validUnitName(snapshot.unit);
  if (snapshot.unit !== ctx.command.entity.name) throw new ExecutionError(`the original action acted on ${snapshot.unit}, not ${ctx.command.entity.name}`);
  const after = await converge(ctx, snapshot);
  return { output: `Restored ${snapshot.unit}: ${after.active}, ${after.enabled}` };
};
