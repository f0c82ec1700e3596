import { isIP } from 'node:net';
import type { ContainmentEntry } from '@quell/contracts';
import { type CommandRunner, mustRun } from '../runner.ts';
import { ExecutionError } from './executor.ts';

/** Our own nftables table, apart from isolation's: containment never touches rules that others own. */
const TABLE = 'quell_containment';
const MAC_ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** What this agent could not enforce: one entry (by action id), or the whole state. */
export interface ContainmentOutcome { failures: Record<string, string>; error?: string }

/** The form nft prints an address in, so that what is read back compares equal to what was written. */
function canonical(address: string): string {
  return isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address.toLowerCase();
}

/** The table for these addresses: traffic from and to each is dropped, in and out and when forwarded. */
export function containmentRuleset(v4: readonly string[], v6: readonly string[], macs: readonly string[]): string {
  const set = (name: string, type: string, elements: readonly string[]) =>
    `  set ${name} { type ${type};${elements.length > 0 ? ` elements = { ${elements.join(', ')} }` : ''} }`;
  return [
    `table inet ${TABLE} {`,
    set('addr4', 'ipv4_addr', v4),
    set('addr6', 'ipv6_addr', v6),
    set('mac', 'ether_addr', macs),
    '  chain input { type filter hook input priority -190; policy accept; ip saddr @addr4 drop; ip6 saddr @addr6 drop; ether saddr @mac drop; }',
    '  chain output { type filter hook output priority -190; policy accept; ip daddr @addr4 drop; ip6 daddr @addr6 drop; }',
    '  chain forward { type filter hook forward priority -190; policy accept; ip saddr @addr4 drop; ip daddr @addr4 drop; ip6 saddr @addr6 drop; ip6 daddr @addr6 drop; }',
    '}',
  ].join('\n');
}

/** The addresses in the table now, or null when there is no table. */
async function enforced(runner: CommandRunner): Promise<Set<string> | null> {
  const result = await runner.run('nft', ['-j', 'list', 'table', 'inet', TABLE]);
  if (result.code !== 0) return null;
  const items = (JSON.parse(result.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables;
  return new Set(items.flatMap((item) => item.set?.elem ?? []).filter((e): e is string => typeof e === 'string').map(canonical));
}

/**
 * Makes the table hold exactly these entries, in one nft transaction, then
 * reads it back. An entry naming this device itself or the Quell server is
 * refused (it would cut the device or the agent off), as is a malformed one;
 * the others are still enforced.
 */
export async function applyContainment(
  runner: CommandRunner, entries: readonly ContainmentEntry[], protectedAddresses: { own: readonly string[]; server: readonly string[] },
): Promise<ContainmentOutcome> {
  const failures: Record<string, string> = {};
  const own = new Set(protectedAddresses.own.map(canonical));
  const server = new Set(protectedAddresses.server.map(canonical));
  const v4 = new Set<string>();
  const v6 = new Set<string>();
  const macs = new Set<string>();
  for (const entry of entries) {
    const family = typeof entry.address === 'string' ? isIP(entry.address) : 0;
    if (family === 0) failures[entry.actionId] = `not an IP address: ${JSON.stringify(entry.address)}`;
    else if (entry.mac !== undefined && !MAC_ADDRESS.test(entry.mac)) failures[entry.actionId] = `not a MAC address: ${JSON.stringify(entry.mac)}`;
    else if (server.has(canonical(entry.address))) failures[entry.actionId] = `${entry.address} is the Quell server: containing it would cut this agent off`;
    else if (own.has(canonical(entry.address)) || (entry.mac !== undefined && own.has(canonical(entry.mac)))) failures[entry.actionId] = `${entry.address} is this device itself`;
    else {
      (family === 4 ? v4 : v6).add(canonical(entry.address));
      if (entry.mac !== undefined) macs.add(canonical(entry.mac));
    }
  }
  const wanted = [...v4, ...v6, ...macs];
  try {
    // Creating the table first makes the delete valid whether or not it existed: one atomic replacement.
    const script = `table inet ${TABLE}\ndelete table inet ${TABLE}\n${wanted.length > 0 ? `${containmentRuleset([...v4], [...v6], [...macs])}\n` : ''}`;
    await mustRun(runner, 'nft', ['-f', '-'], script);
    const now = await enforced(runner);
    if (wanted.length === 0 && now !== null) throw new ExecutionError('the containment table is still there after removing it');
    const missing = wanted.filter((address) => !now?.has(address));
    if (missing.length > 0) throw new ExecutionError(`not enforced after applying: ${missing.join(', ')}`);
    if (now && now.size !== wanted.length) throw new ExecutionError(`the containment table holds ${now.size} addresses, not the ${wanted.length} applied`);
  } catch (error) {
    return { failures, error: `could not apply the containment rules: ${(error as Error).message}` };
  }
  return { failures };
}
