import { addressOrRange } from '@quell/contracts';
import { DNS_FILTER_PORT, UPSTREAM_PORTS } from '../dns-filter.ts';
import { type CommandRunner, mustRun } from '../runner.ts';

/** Our own nftables table for address block indicators, apart from containment's and isolation's. */
export const ADDRESS_BLOCKS_TABLE = 'quell_indicators';
/** Never blocked, whatever range names them: the device talking to itself. */
const LOOPBACK = { 4: ['127.0.0.0/8'], 6: ['::1'] };

type ByFamily = { 4: readonly string[]; 6: readonly string[] };

/**
 * The sets that remember who matched a block or audit entry, by remote
 * address, with a packet counter each (the agent reads them to report hits):
 * one per action, direction and family.
 */
export const SEEN_SETS = (['block', 'audit'] as const).flatMap((action) => (['inbound', 'outbound'] as const).flatMap((direction) =>
  ([4, 6] as const).map((family) => ({ name: `seen_${action}_${direction === 'inbound' ? 'in' : 'out'}${family}`, action, direction, family }))));

/** The sets of the addresses blocked names resolve to, filled while the table is in force, each address for as long as its answer lives. */
export const RESOLVED_SETS = { 4: 'resolved4', 6: 'resolved6' } as const;

/**
 * The table for these indicators: traffic from and to each blocked address
 * or range is dropped, in, out and forwarded, and traffic of each audited
 * one let through; both are remembered by remote address. The addresses
 * blocked names resolve to are blocked likewise, from sets the agent fills.
 * What is kept (the Quell server's addresses, loopback, allowed addresses)
 * is let through first, so that no range cuts the agent off its server.
 */
export function addressBlocksRuleset(lists: { block: ByFamily; audit: ByFamily; keep: ByFamily; redirectDns?: boolean }): string {
  const set = (name: string, family: 4 | 6, elements: readonly string[]) =>
    `  set ${name} { type ipv${family}_addr; flags interval; auto-merge;${elements.length > 0 ? ` elements = { ${elements.join(', ')} }` : ''} }`;
  const seen = SEEN_SETS.map(({ name, family }) => `  set ${name} { type ipv${family}_addr; size 65535; flags dynamic,timeout; timeout 1h; counter; }`);
  const resolved = ([4, 6] as const).map((family) => `  set ${RESOLVED_SETS[family]} { type ipv${family}_addr; size 65535; flags timeout; }`);
  const chain = (name: string, hook: string, matches: string[]) =>
    `  chain ${name} { type filter hook ${hook} priority -180; policy accept; ${matches.map((m) => `${m};`).join(' ')} }`;
  const matches = (direction: 'inbound' | 'outbound') => {
    const field = direction === 'inbound' ? 'saddr' : 'daddr';
    const tag = direction === 'inbound' ? 'in' : 'out';
    return ([4, 6] as const).flatMap((family) => {
      const ip = family === 4 ? 'ip' : 'ip6';
      return [
        `${ip} ${field} @keep${family} accept`,
        `${ip} ${field} @block${family} update @seen_block_${tag}${family} { ${ip} ${field} } drop`,
        `${ip} ${field} @${RESOLVED_SETS[family]} update @seen_block_${tag}${family} { ${ip} ${field} } drop`,
        `${ip} ${field} @audit${family} update @seen_audit_${tag}${family} { ${ip} ${field} }`,
      ];
    });
  };
  return [
    `table inet ${ADDRESS_BLOCKS_TABLE} {`,
    ...(['keep', 'block', 'audit'] as const).flatMap((list) => ([4, 6] as const).map((family) => set(`${list}${family}`, family, lists[list][family]))),
    ...seen,
    ...resolved,
    chain('input', 'input', matches('inbound')),
    chain('output', 'output', matches('outbound')),
    chain('forward', 'forward', [...matches('inbound'), ...matches('outbound')]),
    // The endpoint's DNS queries, to any resolver, go to the agent's filter; the filter's own go out from its reserved ports.
    ...(lists.redirectDns ? [`  chain dns { type nat hook output priority -100; policy accept; meta l4proto { tcp, udp } th dport 53 th sport != ${UPSTREAM_PORTS.first}-${UPSTREAM_PORTS.last} redirect to :${DNS_FILTER_PORT}; }`] : []),
    '}',
  ].join('\n');
}

/**
 * Makes the agent's table block and audit exactly these addresses and
 * ranges, in one nft transaction (no table at all when there are none), and
 * checks that nft holds what was applied. Entries are checked again here,
 * whatever the signed state says; what is `kept` (the server's addresses,
 * allowed ones) is never blocked. Returns why it could not, or null.
 */
export async function applyAddressBlocks(runner: CommandRunner, lists: { block: readonly string[]; audit: readonly string[]; redirectDns?: boolean }, kept: readonly string[]): Promise<string | null> {
  const block: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  const audit: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  for (const [entries, into] of [[lists.block, block], [lists.audit, audit]] as const) {
    for (const entry of new Set(entries)) {
      const parsed = addressOrRange(entry);
      if ('problem' in parsed) return `refused the address indicators: ${parsed.problem}`;
      into[parsed.family].push(parsed.value);
    }
  }
  const keep: { 4: string[]; 6: string[] } = { 4: [...LOOPBACK[4]], 6: [...LOOPBACK[6]] };
  for (const address of kept) {
    const parsed = addressOrRange(address);
    if (!('problem' in parsed)) keep[parsed.family].push(parsed.value);
  }
  const wanted = block[4].length + block[6].length + audit[4].length + audit[6].length + (lists.redirectDns ? 1 : 0);
  // Nothing to block or audit and no table left from before: nft is not touched at all.
  if (wanted === 0 && (await runner.run('nft', ['list', 'table', 'inet', ADDRESS_BLOCKS_TABLE])).code !== 0) return null;
  try {
    // Creating the table first makes the delete valid whether or not it existed: one atomic replacement.
    const script = `table inet ${ADDRESS_BLOCKS_TABLE}\ndelete table inet ${ADDRESS_BLOCKS_TABLE}\n${wanted > 0 ? `${addressBlocksRuleset({ block, audit, keep, redirectDns: lists.redirectDns })}\n` : ''}`;
    await mustRun(runner, 'nft', ['-f', '-'], script);
    // One of its chains, not the table: listing a table prints every element of its sets.
    const listed = await runner.run('nft', ['list', 'chain', 'inet', ADDRESS_BLOCKS_TABLE, 'input']);
    if (wanted === 0 && listed.code === 0) return 'the address block table is still there after removing it';
    if (wanted > 0 && listed.code !== 0) return `the address block table is not there after applying it: ${listed.stderr.trim()}`;
  } catch (error) {
    return `could not apply the address blocks: ${(error as Error).message}`;
  }
  return null;
}

/** A listing of the agent's table without the sets that traffic and DNS answers fill: they change all the time. */
export function withoutSeenSets(listing: string): string {
  // nft prints each set's closing brace alone on a line, one tab in; elements are indented further.
  return listing.replace(/\n\tset (seen_\w+|resolved[46]) \{[\s\S]*?\n\t\}/g, '');
}

/** Blocks these addresses (of names the DNS filter blocks) for `seconds` each in the agent's table; why it could not, or null. */
export async function blockResolvedAddresses(runner: CommandRunner, addresses: ReadonlyArray<{ address: string; seconds: number }>): Promise<string | null> {
  const lines = addresses.flatMap(({ address, seconds }) => {
    const parsed = addressOrRange(address);
    return 'problem' in parsed || parsed.value.includes('/') ? [] : [`add element inet ${ADDRESS_BLOCKS_TABLE} ${RESOLVED_SETS[parsed.family]} { ${parsed.value} timeout ${Math.round(seconds)}s }`];
  });
  if (lines.length === 0) return null;
  const applied = await runner.run('nft', ['-f', '-'], `${lines.join('\n')}\n`);
  return applied.code === 0 ? null : `could not block the addresses of blocked names: ${applied.stderr.trim()}`;
}

/** Stops blocking an address a blocked name resolved to (it turned out to be shared with a name that is not blocked). */
export async function unblockResolvedAddress(runner: CommandRunner, address: string): Promise<void> {
  const parsed = addressOrRange(address);
  if ('problem' in parsed) return;
  // Absent already (expired, or the table replaced) is as good as deleted.
  await runner.run('nft', ['delete', 'element', 'inet', ADDRESS_BLOCKS_TABLE, RESOLVED_SETS[parsed.family], `{ ${parsed.value} }`]);
}

/** A remote address that matched a block or audit entry, and the packets counted for it since the agent's table was last applied. */
export interface SeenAddress { action: 'block' | 'audit'; direction: 'inbound' | 'outbound'; remote: string; packets: number }

/** What the agent's table remembers of the addresses that matched, for the families and actions that have entries. */
export async function readSeenAddresses(runner: CommandRunner, sets: ReadonlyArray<(typeof SEEN_SETS)[number]>): Promise<SeenAddress[]> {
  const seen: SeenAddress[] = [];
  for (const set of sets) {
    const listed = await runner.run('nft', ['-j', 'list', 'set', 'inet', ADDRESS_BLOCKS_TABLE, set.name]);
    if (listed.code !== 0) continue; // no table (nothing in force), or it is being replaced
    for (const element of parseSeenSet(listed.stdout)) seen.push({ action: set.action, direction: set.direction, ...element });
  }
  return seen;
}

/** The elements of one "seen" set as `nft -j list set` prints them: each remote address and its packet count. */
export function parseSeenSet(json: string): Array<{ remote: string; packets: number }> {
  let parsed: { nftables?: Array<{ set?: { elem?: Array<{ elem?: { val?: unknown; counter?: { packets?: unknown } } }> } }> };
  try {
    parsed = JSON.parse(json) as typeof parsed;
  } catch {
    return [];
  }
  const elements = parsed.nftables?.find((entry) => entry.set)?.set?.elem ?? [];
  return elements.flatMap(({ elem }) => (typeof elem?.val === 'string' && typeof elem.counter?.packets === 'number' ? [{ remote: elem.val, packets: elem.counter.packets }] : []));
}
