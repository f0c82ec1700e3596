import { readFileSync } from 'node:fs';
import type { ActionType, EnforcedEffect } from '@quell/contracts';
import type { DriftSignals, EnforcedEffectCheck } from './drift-watch.ts';
import { type ContainUserSnapshot, processesOf } from './executors/contain-user.linux.ts';
import { ADDRESS_BLOCKS_TABLE, withoutSeenSets } from './executors/address-blocks.linux.ts';
import { isolationListing, replaceIsolation, uncoveredBridge } from './executors/isolation.linux.ts';
import { quarantineOf, quarantinedFileReturned, removeReturnedFile } from './executors/quarantine.linux.ts';
import { type CodeRestrictionSnapshot, parseMountinfo, topmostAt } from './executors/restrict-code.linux.ts';
import { removeTaskAgain, removedTaskOf, taskReturned } from './executors/scheduled-task.linux.ts';
import { type ServiceSnapshot, serviceLifted, stopServiceAgain } from './executors/service.linux.ts';
import type { Journal } from './journal.ts';
import type { CommandRunner } from './runner.ts';

const CONTAINMENT_TABLE = 'quell_containment';
const RESTRICTING_FLAGS = ['noexec', 'nosuid', 'nodev'];

/** One check per action of a kind kept per thing (a user, a unit, a file): the drift is that action's. */
function eachInForce<T>(effect: EnforcedEffect, inForce: Array<{ actionId: string; item: T }>, how: {
  lifted(item: T): Promise<string | null>;
  putBack(item: T, actionId: string): Promise<void>;
  signals?(item: T): DriftSignals;
}): EnforcedEffectCheck[] {
  return inForce.map(({ actionId, item }) => ({
    effect,
    actionIds: [actionId],
    check: () => how.lifted(item),
    repair: () => how.putBack(item, actionId),
    signals: how.signals?.(item),
  }));
}

/**
 * What the agent keeps true on Linux while it is in force, for the drift
 * watch: the isolation tables, the containment table, the restricted mounts,
 * each contained user's locked and expired account with nothing running as it,
 * each stopped service (and what started it) stopped, disabled or masked,
 * each removed scheduled task or persistence entry and each quarantined file gone.
 *
 * The firewall tables are compared with how nftables listed them right
 * after the agent applied them. When the watch first sees an effect (after
 * the action completed, or at start) it applies it again atomically and
 * takes that listing as the reference: there is no moment without the rules.
 */
export function linuxEnforcedEffects(deps: {
  runner: CommandRunner;
  journal: Pick<Journal, 'inForce' | 'allInForce'>;
  /** The containment in force: the actions it enforces here, and how to apply it again (the stored signed state). */
  containment: { actionIds(): string[]; reapply(): Promise<void> };
  /** How many signed states (and repairs) the agent has applied, or null while it applies one: their tables are changing then. */
  stateApplications(): number | null;
  /** Whether address block indicators are in force here, and the version of the state they come from; they are applied again with the stored signed state. */
  addressBlocks: { inForce(): boolean; version(): number };
  /** Restricts code execution again for the action in force (restriction is idempotent). */
  restrict(actionId: string): Promise<void>;
  /** Contains the user of a contain_user action in force again (locking and expiring are idempotent). */
  containAgain(actionId: string, name: string): Promise<void>;
}): () => EnforcedEffectCheck[] {
  const { runner, journal } = deps;
  const isolation = () => journal.inForce('isolate_device', 'release_isolation');
  const restriction = () => journal.inForce('restrict_code_execution', 'remove_code_restriction');
  /** The records of the actions of `type` in force that `recordOf` recognises. */
  const allOf = <T>(type: ActionType, undoType: ActionType, recordOf: (snapshot: unknown) => T | null) => journal.allInForce(type, undoType)
    .flatMap(({ actionId, snapshot }) => { const item = recordOf(snapshot); return item ? [{ actionId, item }] : []; });
  const containedUsers = () => allOf('contain_user', 'release_user', (s) => (typeof (s as ContainUserSnapshot | undefined)?.name === 'string' ? s as ContainUserSnapshot : null));
  const stoppedServices = () => allOf('stop_service', 'restore_service', (s) => (typeof (s as ServiceSnapshot | undefined)?.unit === 'string' ? s as ServiceSnapshot : null));
  const removedTasks = () => [...allOf('remove_scheduled_task', 'restore_scheduled_task', removedTaskOf), ...allOf('remove_persistence', 'restore_persistence', removedTaskOf)];
  const quarantinedFiles = () => [...allOf('quarantine_file', 'restore_file', quarantineOf), ...allOf('stop_and_quarantine_file', 'restore_file', quarantineOf)];

  /** What no longer holds of one user's containment, or null. */
  const userLifted = async ({ name, uid, subordinateUids }: ContainUserSnapshot): Promise<string | null> => {
    const result = await runner.run('getent', ['shadow', name]);
    const fields = result.code === 0 ? result.stdout.trim().split(':') : [];
    if (fields[0] !== name) return `${name} has no local account any more`;
    const problems = [
      ...(fields[1]?.startsWith('!') ? [] : ['its password was unlocked']),
      ...(fields[7] === '1' ? [] : ['its expiry was lifted']),
      ...(processesOf(uid, subordinateUids).length === 0 ? [] : ['processes run as it again']),
    ];
    return problems.length ? `${name}: ${problems.join(', ')}` : null;
  };

  let isolationReference: { actionId: string; listing: string | null } | null = null;
  const reapplyIsolation = async (): Promise<void> => {
    const inForce = isolation()!;
    await replaceIsolation(runner, inForce.snapshot);
    isolationReference = { actionId: inForce.actionId, listing: await isolationListing(runner) };
  };

  /**
   * A table of the agent's own that the signed desired state fills, kept as
   * it was applied: what it should hold is told by `key` (changed: applied
   * again and taken as the reference, no drift); deleted or edited since, it
   * is drift, repaired by applying the stored state again.
   */
  const stateTable = (effect: EnforcedEffect, table: string, rules: string, key: () => string, comparable = (listing: string) => listing): (actionIds: string[]) => EnforcedEffectCheck => {
    let reference: { key: string; listing: string | null } | null = null;
    const listing = async (): Promise<string | null> => {
      const result = await runner.run('nft', ['list', 'table', 'inet', table]);
      return result.code === 0 ? comparable(result.stdout) : null;
    };
    const reapply = async (): Promise<void> => {
      await deps.containment.reapply();
      reference = { key: key(), listing: await listing() };
    };
    return (actionIds) => ({
      effect,
      actionIds,
      signals: { firewall: true },
      async check() {
        // A state being applied replaces these tables: they are judged once it is done (the agent checks again then).
        const applications = deps.stateApplications();
        if (applications === null) return null;
        if (reference?.key !== key()) {
          await reapply();
          return null;
        }
        const now = await listing();
        if (deps.stateApplications() !== applications) return null;
        if (now === null) return `the ${rules} were gone (the nftables table deleted, or the ruleset flushed or reloaded)`;
        return now === reference.listing ? null : `the ${rules} had been changed`;
      },
      repair: reapply,
    });
  };
  const containmentCheck = stateTable('containment', CONTAINMENT_TABLE, 'containment rules', () => deps.containment.actionIds().join(','));
  // Address blocks are the state's own, no action's: a new version is a new reference.
  // Traffic fills the sets that remember who matched: they change without anyone working against the blocks.
  const addressBlocksCheck = stateTable('address_blocks', ADDRESS_BLOCKS_TABLE, 'address block rules', () => String(deps.addressBlocks.version()), withoutSeenSets)([]);

  const isolationCheck = (actionId: string): EnforcedEffectCheck => ({
    effect: 'isolation',
    actionIds: [actionId],
    signals: { firewall: true, links: true },
    async check() {
      if (isolationReference?.actionId !== actionId) {
        await reapplyIsolation();
        return null;
      }
      const listing = await isolationListing(runner);
      if (listing === null) return 'the isolation rules were gone (the nftables table deleted, or the ruleset flushed or reloaded)';
      if (listing !== isolationReference.listing) return 'the isolation rules had been changed';
      return uncoveredBridge(listing) ? 'a bridge was created after the isolation (a container or VM started): its traffic was not cut off yet' : null;
    },
    repair: reapplyIsolation,
  });

  const restrictionCheck = ({ actionId, snapshot }: { actionId: string; snapshot: unknown }): EnforcedEffectCheck => ({
    effect: 'code_restriction',
    actionIds: [actionId],
    signals: { mounts: true },
    async check() {
      const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
      const lifted = ((snapshot as CodeRestrictionSnapshot | undefined)?.directories ?? []).filter((d) => d.outcome !== 'missing').flatMap((d) => {
        const options = topmostAt(mounts, d.directory)?.options.split(',') ?? [];
        return RESTRICTING_FLAGS.every((flag) => options.includes(flag)) ? [] : [`${d.directory} (now ${options.join(',') || 'not mounted'})`];
      });
      return lifted.length ? `code execution was allowed again in ${lifted.join(', ')}` : null;
    },
    repair: () => deps.restrict(actionId),
  });

  return () => {
    const isolated = isolation();
    const restricted = restriction();
    const containedHere = deps.containment.actionIds();
    return [
      ...(isolated ? [isolationCheck(isolated.actionId)] : []),
      ...(containedHere.length ? [containmentCheck(containedHere)] : []),
      ...(deps.addressBlocks.inForce() ? [addressBlocksCheck] : []),
      ...(restricted ? [restrictionCheck(restricted)] : []),
      ...eachInForce('user_containment', containedUsers(), {
        lifted: userLifted,
        putBack: (user, actionId) => deps.containAgain(actionId, user.name),
        // usermod, chage and passwd write /etc/shadow anew and rename it into place.
        signals: () => ({ files: ['/etc/shadow'] }),
      }),
      ...eachInForce('stopped_service', stoppedServices(), {
        lifted: (service) => serviceLifted(runner, service),
        putBack: (service) => stopServiceAgain(runner, service),
        signals: (service) => ({ folders: ['/etc/systemd/system'], files: service.unitFile ? [service.unitFile.path] : [] }),
      }),
      ...eachInForce('removed_task', removedTasks(), {
        lifted: (task) => taskReturned(runner, task),
        putBack: (task) => removeTaskAgain(runner, task),
        signals: (task) => ({ files: [task.path] }),
      }),
      ...eachInForce('quarantined_file', quarantinedFiles(), {
        lifted: quarantinedFileReturned,
        putBack: removeReturnedFile,
        signals: (file) => ({ files: [file.path] }),
      }),
    ];
  };
}
