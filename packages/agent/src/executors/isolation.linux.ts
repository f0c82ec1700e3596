import { isIP } from 'node:net';
import { type CommandRunner, mustRun } from '../runner.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** Our own nftables table: isolation never touches rules that others own. */
const TABLE = 'quell_isolation';

interface IsolationSnapshot { priorRuleset: string | null; appliedRuleset?: string }

function addressRules(direction: 'saddr' | 'daddr', addresses: readonly string[]): string[] {
  return addresses.map((address) => `    ${isIP(address) === 6 ? 'ip6' : 'ip'} ${direction} ${address} accept`);
}

/** Everything dropped but loopback, the Quell server and (selective isolation) the named allowances. */
export function isolationRuleset(allowed: readonly string[]): string {
  for (const address of allowed) if (isIP(address) === 0) throw new ExecutionError(`not an IP address: ${JSON.stringify(address)}`);
  return [
    `table inet ${TABLE} {`,
    '  chain input {',
    '    type filter hook input priority -200; policy drop;',
    '    iif "lo" accept',
    ...addressRules('saddr', allowed),
    '  }',
    '  chain output {',
    '    type filter hook output priority -200; policy drop;',
    '    oif "lo" accept',
    ...addressRules('daddr', allowed),
    '  }',
    '}',
  ].join('\n');
}

async function currentTable(ctx: Pick<ExecutionContext, 'runner'>): Promise<string | null> {
  const result = await ctx.runner.run('nft', ['list', 'table', 'inet', TABLE]);
  return result.code === 0 ? result.stdout : null;
}

/**
 * Isolation is desired state: after a reboot (or anyone flushing the
 * firewall) the agent puts the rules of the isolation still in force back
 * before it does anything else. Returns true when it had to.
 */
export async function reapplyIsolation(runner: CommandRunner, snapshot: unknown): Promise<boolean> {
  const applied = (snapshot as IsolationSnapshot | undefined)?.appliedRuleset;
  if (!applied || (await currentTable({ runner })) !== null) return false;
  await mustRun(runner, 'nft', ['-f', '-'], `${applied}\n`);
  if ((await currentTable({ runner })) === null) throw new ExecutionError('could not put the isolation rules back');
  return true;
}

export const isolateDevice: Executor = async (ctx) => {
  const selective = ctx.command.parameters.isolation === 'selective';
  const allowances = selective ? String(ctx.command.parameters.allow ?? '').split(',').map((a) => a.trim()).filter(Boolean) : [];
  const allowed = [...ctx.serverAddresses, ...allowances];
  if (ctx.serverAddresses.length === 0) throw new ExecutionError('the Quell server address is unknown: isolating now would cut the agent off for good');
  const ruleset = isolationRuleset(allowed);
  const snapshot: IsolationSnapshot = { priorRuleset: await currentTable(ctx), appliedRuleset: ruleset };
  // Replace atomically: one nft transaction deletes any old table and adds the new one.
  const script = `${snapshot.priorRuleset ? `delete table inet ${TABLE}\n` : ''}${ruleset}\n`;
  await mustRun(ctx.runner, 'nft', ['-f', '-'], script);
  const now = await currentTable(ctx);
  if (!now || !/policy drop/.test(now) || !allowed.every((a) => now.includes(a))) throw new ExecutionError(`isolation rules are not in place after applying them:\n${now ?? '(no table)'}`);
  return { output: `Isolated (${selective ? 'selective' : 'full'}); reachable: loopback, ${allowed.join(', ')}`, snapshot };
};

/** Lifts exactly the isolation this agent applied and recorded; without that record it changes nothing, like every undo. */
export const releaseIsolation: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot as IsolationSnapshot | undefined;
  if (typeof snapshot !== 'object' || snapshot === null || !('priorRuleset' in snapshot)) throw new ExecutionError('this agent holds no record of the isolation this undoes; nothing was changed');
  if (await currentTable(ctx)) await mustRun(ctx.runner, 'nft', ['delete', 'table', 'inet', TABLE]);
  if (snapshot?.priorRuleset) await mustRun(ctx.runner, 'nft', ['-f', '-'], snapshot.priorRuleset);
  const now = await currentTable(ctx);
  if ((now === null) !== !snapshot?.priorRuleset) throw new ExecutionError('the isolation table is not back to its prior state');
  return { output: snapshot?.priorRuleset ? 'Released: the prior isolation rules are back' : 'Released from isolation' };
};
