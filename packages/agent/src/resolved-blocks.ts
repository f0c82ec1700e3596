import { addressOrRange, domainHolding, isLocalAddress } from '@quell/contracts';
import type { AnsweredAddress } from './dns-filter.ts';

/** How long an address a blocked name resolved to stays blocked, whatever the TTL of its answer says. */
const BLOCKED_SECONDS = { min: 60, max: 3600 } as const;
/** A name is resolved again at most this often. */
const RESOLVE_AGAIN_MS = 60_000;
/** Names remembered as resolved lately; lookups under way at once (a flood of made-up subdomains asks no more). */
const MAX_REMEMBERED_NAMES = 4096;
const MAX_LOOKUPS_AT_ONCE = 8;
/** Addresses taken from one name's answer; a name that answers with more is spread over shared hosting. */
const MAX_PER_NAME = 16;
/** Addresses blocked for names at once, over all of them. */
const MAX_ADDRESSES = 4096;
/** Blocked names resolved ahead when the list changes, before anything on the endpoint asks for them. */
const MAX_NAMES_AHEAD = 256;
/** How long an address answered for a name that is not blocked is known as shared, and so never blocked for a blocked one. */
const SHARED_FOR_MS = 3_600_000;
const MAX_SHARED = 20_000;

/** An address as nft prints it (IPv6 compressed), so that what the table reports matches what was blocked; null for what is no address. */
function canonical(address: string): string | null {
  const parsed = addressOrRange(address);
  return 'problem' in parsed || parsed.value.includes('/') ? null : parsed.value;
}

/** Which blocked entry an address is blocked for, and the name that resolved to it. */
export interface ResolvedFor { value: string; name: string }

export interface ResolvedBlocks {
  /** Resolves a blocked name (at most once a minute) and blocks the addresses it resolves to. */
  resolve(name: string): Promise<void>;
  /**
   * After the agent's table was replaced (a new state, a repair), which
   * empties its sets: forgets the names no longer blocked, blocks again what
   * still holds, and resolves the blocked entries ahead.
   */
  reapplied(blocked: ReadonlySet<string>): Promise<void>;
  /** Addresses the filter passed on for a name that is not blocked: shared, so never blocked (and no longer, if they were). */
  answeredForOthers(addresses: readonly AnsweredAddress[]): void;
  /** The addresses blocked now, by what they are blocked for. */
  current(): ReadonlyMap<string, ResolvedFor>;
}

/**
 * The addresses the names the DNS filter refuses resolve to, blocked too, so
 * that a process that learns them another way (DNS over HTTPS, an answer
 * cached before the block, a hard-coded address) is cut off as well — where
 * that cannot turn the block against the endpoint: the name's answers are
 * the attacker's to write, so addresses of the network's own ranges, the
 * resolvers and any address that answered for a name not blocked are never
 * taken, nor more than a few per name.
 */
export function createResolvedBlocks(deps: {
  lookup(name: string): Promise<AnsweredAddress[]>;
  /** Addresses never blocked whatever answers for them: the resolvers, the endpoint's own. */
  spared(): Promise<readonly string[]>;
  block(addresses: ReadonlyArray<{ address: string; seconds: number }>): Promise<string | null>;
  unblock(address: string): Promise<void>;
  onProblem(problem: string): void;
  now?: () => number;
}): ResolvedBlocks {
  const now = deps.now ?? Date.now;
  const blocked = new Map<string, ResolvedFor & { until: number }>();
  const resolvedAt = new Map<string, number>();
  const shared = new Map<string, number>();
  let blockedNames: ReadonlySet<string> = new Set();
  let lookups = 0;

  const live = (): Array<[string, ResolvedFor & { until: number }]> => {
    const at = now();
    for (const [address, entry] of blocked) if (entry.until <= at) blocked.delete(address);
    return [...blocked];
  };

  async function resolve(name: string): Promise<void> {
    const value = domainHolding(name, blockedNames);
    const last = resolvedAt.get(name);
    if (value === null || (last !== undefined && now() - last < RESOLVE_AGAIN_MS) || lookups >= MAX_LOOKUPS_AT_ONCE) return;
    resolvedAt.delete(name);
    resolvedAt.set(name, now());
    if (resolvedAt.size > MAX_REMEMBERED_NAMES) resolvedAt.delete(resolvedAt.keys().next().value!);
    lookups += 1;
    const [looked, spared] = await Promise.all([deps.lookup(name), deps.spared()]).finally(() => (lookups -= 1));
    const answers = looked.flatMap(({ address, ttl }) => {
      const spelled = canonical(address);
      return spelled === null ? [] : [{ address: spelled, ttl }];
    });
    // The list may have changed while the resolvers answered.
    if (domainHolding(name, blockedNames) !== value) return;
    const at = now();
    let room = MAX_ADDRESSES - live().length;
    const sparedNow = new Set(spared.map(canonical));
    const taken = answers.filter(({ address }) => !isLocalAddress(address) && !sparedNow.has(address) && (shared.get(address) ?? 0) <= at)
      .slice(0, MAX_PER_NAME).filter(({ address }) => blocked.has(address) || room-- > 0)
      .map(({ address, ttl }) => ({ address, seconds: Math.min(Math.max(ttl, BLOCKED_SECONDS.min), BLOCKED_SECONDS.max) }));
    if (taken.length === 0) return;
    // Known before the table holds them: traffic they stop from the first packet on is told as a hit on this name.
    for (const { address, seconds } of taken) blocked.set(address, { value, name, until: at + seconds * 1000 });
    const problem = await deps.block(taken);
    if (problem === null) return;
    for (const { address } of taken) blocked.delete(address);
    deps.onProblem(problem);
  }

  return {
    resolve,
    async reapplied(names) {
      blockedNames = names;
      for (const [address, entry] of live()) if (domainHolding(entry.name, names) === null) blocked.delete(address);
      for (const name of resolvedAt.keys()) if (domainHolding(name, names) === null) resolvedAt.delete(name);
      const at = now();
      const again = live().map(([address, entry]) => ({ address, seconds: (entry.until - at) / 1000 })).filter(({ seconds }) => seconds >= 1);
      const problem = again.length > 0 ? await deps.block(again) : null;
      if (problem !== null) deps.onProblem(problem);
      for (const name of [...names].slice(0, MAX_NAMES_AHEAD)) await resolve(name);
    },
    answeredForOthers(addresses) {
      const until = now() + SHARED_FOR_MS;
      for (const answered of addresses) {
        const address = canonical(answered.address);
        if (address === null) continue;
        shared.delete(address);
        shared.set(address, until);
        if (shared.size > MAX_SHARED) shared.delete(shared.keys().next().value!);
        if (blocked.delete(address)) void deps.unblock(address);
      }
    },
    current: () => new Map(live().map(([address, { value, name }]) => [address, { value, name }])),
  };
}
