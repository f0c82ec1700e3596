import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { type CommandRunner, mustRun } from '../runner.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** Our own nftables tables: isolation never touches rules that others own. */
const TABLE = 'quell_isolation';

interface IsolationSnapshot { priorRuleset: string | null; appliedRuleset?: string }

/** What isolation keeps open besides the server and the allowances: the host's own addressing and name resolution. */
export interface IsolationNeeds {
  /** The name servers the host resolves through (DNS to them stays open; a DNS server elsewhere does not). */
  resolvers: readonly string[];
  /** Whether the host has Linux bridges (containers, VMs): frames bridged between their ports are dropped too. */
  bridges: boolean;
}

const family = (address: string): 'ip' | 'ip6' => (isIP(address) === 6 ? 'ip6' : 'ip');

function addressRules(direction: 'saddr' | 'daddr', addresses: readonly string[]): string[] {
  return addresses.map((address) => `    ${family(address)} ${direction} ${address} accept`);
}

function dnsRules(direction: 'saddr' | 'daddr', resolvers: readonly string[]): string[] {
  const port = direction === 'saddr' ? 'sport' : 'dport';
  return resolvers.flatMap((resolver) => ['udp', 'tcp'].map((protocol) => `    ${family(resolver)} ${direction} ${resolver} ${protocol} ${port} 53 accept`));
}

/**
 * Everything dropped but loopback, the Quell server and (selective
 * isolation) the named allowances — to and from the host, and forwarded
 * through it, so containers and VMs behind it are cut off too (routed by
 * the inet table, bridged by the bridge table). The host keeps its own
 * addressing: DHCP and DHCPv6, IPv6 neighbour and router discovery, and DNS
 * to its own resolvers only.
 */
export function isolationRuleset(allowed: readonly string[], needs: IsolationNeeds): string {
  for (const address of [...allowed, ...needs.resolvers]) if (isIP(address) === 0) throw new ExecutionError(`not an IP address: ${JSON.stringify(address)}`);
  return [
    `table inet ${TABLE} {`,
    '  chain input {',
    '    type filter hook input priority -200; policy drop;',
    '    iif "lo" accept',
    '    udp sport 67 udp dport 68 accept',
    '    udp sport 547 udp dport 546 accept',
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-redirect } accept',
    ...dnsRules('saddr', needs.resolvers),
    ...addressRules('saddr', allowed),
    '  }',
    '  chain output {',
    '    type filter hook output priority -200; policy drop;',
    '    oif "lo" accept',
    '    udp sport 68 udp dport 67 accept',
    '    udp sport 546 udp dport 547 accept',
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept',
    ...dnsRules('daddr', needs.resolvers),
    ...addressRules('daddr', allowed),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority -200; policy drop;',
    '  }',
    '}',
    ...(needs.bridges ? [BRIDGE_TABLE] : []),
  ].join('\n');
}

/** Frames bridged between the ports of the host's bridges (containers, VMs on a bridge) are dropped. */
const BRIDGE_TABLE = [`table bridge ${TABLE} {`, '  chain forward {', '    type filter hook forward priority -200; policy drop;', '  }', '}'].join('\n');

/**
 * The rules an isolation applied, with the bridge table added when the
 * host has bridges now that it did not have then (a container started
 * after the isolation): they are cut off too.
 */
function rulesetNow(applied: string): string {
  return hasBridges() && !applied.includes(`table bridge ${TABLE}`) ? `${applied}\n${BRIDGE_TABLE}` : applied;
}

/** Whether the host has a bridge that the isolation in force does not cover. */
export function uncoveredBridge(listing: string): boolean {
  return !listing.includes(`table bridge ${TABLE}`) && hasBridges();
}

const RESOLV_CONF = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'];

/** The host's name servers (systemd-resolved's upstream ones too, behind its 127.0.0.53 stub) and whether it has bridges. */
export function isolationNeeds(resolvConfs: readonly string[] = RESOLV_CONF, sysClassNet = '/sys/class/net'): IsolationNeeds {
  const resolvers = new Set<string>();
  for (const file of resolvConfs) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    for (const match of text.matchAll(/^\s*nameserver\s+(\S+)/gm)) {
      const address = match[1]!.replace(/%.*$/, '');
      if (isIP(address) !== 0 && !address.startsWith('127.') && address !== '::1') resolvers.add(address);
    }
  }
  return { resolvers: [...resolvers], bridges: hasBridges(sysClassNet) };
}

/** Whether the host has Linux bridges (containers, VMs behind it). */
function hasBridges(sysClassNet = '/sys/class/net'): boolean {
  try {
    return readdirSync(sysClassNet).some((name) => existsSync(`${sysClassNet}/${name}/bridge`));
  } catch {
    return false; // no sysfs: no bridges to see
  }
}

async function currentTable(ctx: Pick<ExecutionContext, 'runner'>, tableFamily: 'inet' | 'bridge' = 'inet'): Promise<string | null> {
  const result = await ctx.runner.run('nft', ['list', 'table', tableFamily, TABLE]);
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
  await mustRun(runner, 'nft', ['-f', '-'], `${rulesetNow(applied)}\n`);
  if ((await currentTable({ runner })) === null) throw new ExecutionError('could not put the isolation rules back');
  return true;
}

/** The isolation tables as nftables lists them now (the bridge one after the inet one), or null when the inet one is gone. */
export async function isolationListing(runner: CommandRunner): Promise<string | null> {
  const inet = await currentTable({ runner });
  if (inet === null) return null;
  const bridge = await currentTable({ runner }, 'bridge');
  return bridge === null ? inet : `${inet}\n${bridge}`;
}

/** Puts exactly the rules the isolation applied back (and the bridge table, for bridges made since), in one transaction: there is no moment without them. */
export async function replaceIsolation(runner: CommandRunner, snapshot: unknown): Promise<void> {
  const applied = (snapshot as IsolationSnapshot | undefined)?.appliedRuleset;
  if (!applied) throw new ExecutionError('the isolation record holds no rules to put back');
  // Declaring a table first makes its deletion valid whether or not it is there.
  const ruleset = rulesetNow(applied);
  const families = ruleset.includes(`table bridge ${TABLE}`) ? ['inet', 'bridge'] : ['inet'];
  await mustRun(runner, 'nft', ['-f', '-'], `${families.map((f) => `table ${f} ${TABLE}\ndelete table ${f} ${TABLE}\n`).join('')}${ruleset}\n`);
}

export const isolateDevice: Executor<'isolate_device'> = async (ctx) => {
  const selective = ctx.command.parameters.isolation === 'selective';
  const allowances = selective ? ctx.command.parameters.allow ?? [] : [];
  const allowed = [...ctx.serverAddresses, ...allowances];
  if (ctx.serverAddresses.length === 0) throw new ExecutionError('the Quell server address is unknown: isolating now would cut the agent off for good');
  const needs = isolationNeeds();
  const ruleset = isolationRuleset(allowed, needs);
  const snapshot: IsolationSnapshot = { priorRuleset: await currentTable(ctx), appliedRuleset: ruleset };
  // Replace atomically: one nft transaction deletes any old tables and adds the new ones.
  const script = `${snapshot.priorRuleset ? `delete table inet ${TABLE}\n` : ''}${(await currentTable(ctx, 'bridge')) ? `delete table bridge ${TABLE}\n` : ''}${ruleset}\n`;
  await mustRun(ctx.runner, 'nft', ['-f', '-'], script);
  const now = await currentTable(ctx);
  if (!now || !/hook forward .*policy drop/.test(now) || !allowed.every((a) => now.includes(a))) throw new ExecutionError(`isolation rules are not in place after applying them:\n${now ?? '(no table)'}`);
  if (needs.bridges && !(await currentTable(ctx, 'bridge'))) throw new ExecutionError('the bridge isolation table is not in place after applying it');
  const dns = needs.resolvers.length ? `; DNS to ${needs.resolvers.join(', ')}` : '';
  return {
    output: `Isolated (${selective ? 'selective' : 'full'}); reachable: loopback, ${allowed.join(', ')}${dns}; DHCP and IPv6 neighbour discovery kept; forwarded${needs.bridges ? ' and bridged' : ''} traffic (containers, VMs) dropped`,
    snapshot,
  };
};

/** Lifts exactly the isolation this agent applied and recorded; without that record it changes nothing, like every undo. */
export const releaseIsolation: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot as IsolationSnapshot | undefined;
  if (typeof snapshot !== 'object' || snapshot === null || !('priorRuleset' in snapshot)) throw new ExecutionError('this agent holds no record of the isolation this undoes; nothing was changed');
  if (await currentTable(ctx)) await mustRun(ctx.runner, 'nft', ['delete', 'table', 'inet', TABLE]);
  if (await currentTable(ctx, 'bridge')) await mustRun(ctx.runner, 'nft', ['delete', 'table', 'bridge', TABLE]);
  if (snapshot?.priorRuleset) await mustRun(ctx.runner, 'nft', ['-f', '-'], snapshot.priorRuleset);
  const now = await currentTable(ctx);
  if ((now === null) !== !snapshot?.priorRuleset) throw new ExecutionError('the isolation table is not back to its prior state');
  return { output: snapshot?.priorRuleset ? 'Released: the prior isolation rules are back' : 'Released from isolation' };
};
