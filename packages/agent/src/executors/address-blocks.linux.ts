import { addressOrRange } from '@quell/contracts';
import { type CommandRunner, mustRun } from '../runner.ts';

/** Our own nftables table for address block indicators, apart from containment's and isolation's. */
export const ADDRESS_BLOCKS_TABLE = 'quell_indicators';
/** Never blocked, whatever range names them: the device talking to itself. */
const LOOPBACK = { 4: ['127.0.0.0/8'], 6: ['::1'] };

/**
 * The table for these blocks: traffic from and to each address or range is
 * dropped, in, out and forwarded; what is kept (the Quell server's
 * addresses, loopback, allowed addresses) is let through first, so that no
 * range cuts the agent off its server.
 */
export function addressBlocksRuleset(block: { 4: readonly string[]; 6: readonly string[] }, keep: { 4: readonly string[]; 6: readonly string[] }): string {
  const set = (name: string, type: string, elements: readonly string[]) =>
    `  set ${name} { type ${type}; flags interval; auto-merge;${elements.length > 0 ? ` elements = { ${elements.join(', ')} }` : ''} }`;
  const chain = (name: string, hook: string, matches: string[]) =>
    `  chain ${name} { type filter hook ${hook} priority -180; policy accept; ${matches.map((m) => `${m};`).join(' ')} }`;
  const both = (direction: 'saddr' | 'daddr') => [`ip ${direction} @keep4 accept`, `ip6 ${direction} @keep6 accept`, `ip ${direction} @block4 drop`, `ip6 ${direction} @block6 drop`];
  return [
    `table inet ${ADDRESS_BLOCKS_TABLE} {`,
    set('keep4', 'ipv4_addr', keep[4]),
    set('keep6', 'ipv6_addr', keep[6]),
    set('block4', 'ipv4_addr', block[4]),
    set('block6', 'ipv6_addr', block[6]),
    chain('input', 'input', both('saddr')),
    chain('output', 'output', both('daddr')),
    chain('forward', 'forward', [...both('saddr'), ...both('daddr')]),
    '}',
  ].join('\n');
}

/**
 * Makes the agent's table block exactly these addresses and ranges, in one
 * nft transaction (no table at all when there are none), and checks that
 * nft holds what was applied. Entries are checked again here, whatever the
 * signed state says; what is `kept` (the server's addresses, allowed ones)
 * is never blocked. Returns why
 * it could not, or null.
 */
export async function applyAddressBlocks(runner: CommandRunner, entries: readonly string[], kept: readonly string[]): Promise<string | null> {
  const block: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  for (const entry of new Set(entries)) {
    const parsed = addressOrRange(entry);
    if ('problem' in parsed) return `refused the address blocks: ${parsed.problem}`;
    block[parsed.family].push(parsed.value);
  }
  const keep: { 4: string[]; 6: string[] } = { 4: [...LOOPBACK[4]], 6: [...LOOPBACK[6]] };
  for (const address of kept) {
    const parsed = addressOrRange(address);
    if (!('problem' in parsed)) keep[parsed.family].push(parsed.value);
  }
  const wanted = block[4].length + block[6].length;
  // Nothing to block and no table left from before: nft is not touched at all.
  if (wanted === 0 && (await runner.run('nft', ['list', 'table', 'inet', ADDRESS_BLOCKS_TABLE])).code !== 0) return null;
  try {
    // Creating the table first makes the delete valid whether or not it existed: one atomic replacement.
    const script = `table inet ${ADDRESS_BLOCKS_TABLE}\ndelete table inet ${ADDRESS_BLOCKS_TABLE}\n${wanted > 0 ? `${addressBlocksRuleset(block, keep)}\n` : ''}`;
    await mustRun(runner, 'nft', ['-f', '-'], script);
    const listed = await runner.run('nft', ['list', 'table', 'inet', ADDRESS_BLOCKS_TABLE]);
    if (wanted === 0 && listed.code === 0) return 'the address block table is still there after removing it';
    if (wanted > 0 && listed.code !== 0) return `the address block table is not there after applying it: ${listed.stderr.trim()}`;
  } catch (error) {
    return `could not apply the address blocks: ${(error as Error).message}`;
  }
  return null;
}
