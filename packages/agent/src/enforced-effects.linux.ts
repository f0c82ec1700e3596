import { readFileSync } from 'node:fs';
import type { EnforcedEffectCheck } from './drift-watch.ts';
import { type ContainUserSnapshot, processesOf } from './executors/contain-user.linux.ts';
import { isolationListing, replaceIsolation } from './executors/isolation.linux.ts';
import { type CodeRestrictionSnapshot, parseMountinfo, topmostAt } from './executors/restrict-code.linux.ts';
import { type ServiceSnapshot, serviceLifted, stopServiceAgain } from './executors/service.linux.ts';
import type { Journal } from './journal.ts';
import type { CommandRunner } from './runner.ts';

const CONTAINMENT_TABLE = 'quell_containment';
const RESTRICTING_FLAGS = ['noexec', 'nosuid', 'nodev'];

/**
 * What the agent keeps true on Linux while it is in force, for the drift
 * watch: the isolation tables, the containment table, the restricted mounts,
 * each contained user's locked and expired account with nothing running as it,
 * each stopped service (and what started it) stopped, disabled or masked.
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
  /** Restricts code execution again for the action in force (restriction is idempotent). */
  restrict(actionId: string): Promise<void>;
  /** Contains the user of a contain_user action in force again (locking and expiring are idempotent). */
  containAgain(actionId: string, name: string): Promise<void>;
}): EnforcedEffectCheck[] {
  const { runner, journal } = deps;
  const isolation = () => journal.inForce('isolate_device', 'release_isolation');
  const restriction = () => journal.inForce('restrict_code_execution', 'remove_code_restriction');
  const containedUsers = () => journal.allInForce('contain_user', 'release_user')
    .flatMap(({ actionId, snapshot }) => (typeof (snapshot as ContainUserSnapshot | undefined)?.name === 'string' ? [{ actionId, user: snapshot as ContainUserSnapshot }] : []));
  const stoppedServices = () => journal.allInForce('stop_service', 'restore_service')
    .flatMap(({ actionId, snapshot }) => (typeof (snapshot as ServiceSnapshot | undefined)?.unit === 'string' ? [{ actionId, service: snapshot as ServiceSnapshot }] : []));
  /** What no longer holds of one user's containment, or null. */
  const userLifted = async ({ name, uid }: ContainUserSnapshot): Promise<string | null> => {
    const result = await runner.run('getent', ['shadow', name]);
    const fields = result.code === 0 ? result.stdout.trim().split(':') : [];
    if (fields[0] !== name) return `${name} has no local account any more`;
    const problems = [
      ...(fields[1]?.startsWith('!') ? [] : ['its password was unlocked']),
      ...(fields[7] === '1' ? [] : ['its expiry was lifted']),
      ...(processesOf(uid).length === 0 ? [] : ['processes run as it again']),
    ];
    return problems.length ? `${name}: ${problems.join(', ')}` : null;
  };

  let isolationReference: { actionId: string; listing: string | null } | null = null;
  const reapplyIsolation = async (): Promise<void> => {
    const inForce = isolation()!;
    await replaceIsolation(runner, inForce.snapshot);
    isolationReference = { actionId: inForce.actionId, listing: await isolationListing(runner) };
  };

  let containmentReference: { actionIds: string; listing: string | null } | null = null;
  const containmentListing = async (): Promise<string | null> => {
    const result = await runner.run('nft', ['list', 'table', 'inet', CONTAINMENT_TABLE]);
    return result.code === 0 ? result.stdout : null;
  };
  const reapplyContainment = async (): Promise<void> => {
    await deps.containment.reapply();
    containmentReference = { actionIds: deps.containment.actionIds().join(','), listing: await containmentListing() };
  };

  return [
    {
      effect: 'isolation',
      actionIds: () => { const inForce = isolation(); return inForce ? [inForce.actionId] : []; },
      async check() {
        if (isolationReference?.actionId !== isolation()!.actionId) {
          await reapplyIsolation();
          return null;
        }
        const listing = await isolationListing(runner);
        if (listing === null) return 'the isolation rules were gone (the nftables table deleted, or the ruleset flushed or reloaded)';
        return listing === isolationReference.listing ? null : 'the isolation rules had been changed';
      },
      repair: reapplyIsolation,
    },
    {
      effect: 'containment',
      actionIds: () => deps.containment.actionIds(),
      async check() {
        if (containmentReference?.actionIds !== deps.containment.actionIds().join(',')) {
          await reapplyContainment();
          return null;
        }
        const listing = await containmentListing();
        if (listing === null) return 'the containment rules were gone (the nftables table deleted, or the ruleset flushed or reloaded)';
        return listing === containmentReference.listing ? null : 'the containment rules had been changed';
      },
      repair: reapplyContainment,
    },
    {
      effect: 'code_restriction',
      actionIds: () => { const inForce = restriction(); return inForce ? [inForce.actionId] : []; },
      async check() {
        const snapshot = restriction()!.snapshot as CodeRestrictionSnapshot | undefined;
        const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
        const lifted = (snapshot?.directories ?? []).filter((d) => d.outcome !== 'missing').flatMap((d) => {
          const options = topmostAt(mounts, d.directory)?.options.split(',') ?? [];
          return RESTRICTING_FLAGS.every((flag) => options.includes(flag)) ? [] : [`${d.directory} (now ${options.join(',') || 'not mounted'})`];
        });
        return lifted.length ? `code execution was allowed again in ${lifted.join(', ')}` : null;
      },
      repair: () => deps.restrict(restriction()!.actionId),
    },
    {
      effect: 'user_containment',
      actionIds: () => containedUsers().map((c) => c.actionId),
      async check() {
        const lifted: string[] = [];
        for (const { user } of containedUsers()) {
          const found = await userLifted(user);
          if (found) lifted.push(found);
        }
        return lifted.length ? lifted.join('; ') : null;
      },
      async repair() {
        for (const { actionId, user } of containedUsers()) if (await userLifted(user)) await deps.containAgain(actionId, user.name);
      },
    },
    {
      effect: 'stopped_service',
      actionIds: () => stoppedServices().map((s) => s.actionId),
      async check() {
        const lifted: string[] = [];
        for (const { service } of stoppedServices()) {
          const found = await serviceLifted(runner, service);
          if (found) lifted.push(found);
        }
        return lifted.length ? lifted.join('; ') : null;
      },
      async repair() {
        for (const { service } of stoppedServices()) if (await serviceLifted(runner, service)) await stopServiceAgain(runner, service);
      },
    },
  ];
}
