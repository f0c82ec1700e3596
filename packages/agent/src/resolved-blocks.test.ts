import { describe, expect, it } from 'vitest';
import type { AnsweredAddress } from './dns-filter.ts';
import { createResolvedBlocks } from './resolved-blocks.ts';

/** The policy alone, with the DNS answers a blocked name's owner chose; the lab test in dns-filter.test.ts shows the nftables side. */
function setup(answers: Record<string, AnsweredAddress[]>) {
  let clock = 1_000_000;
  const blockedNow = new Map<string, number>();
  const looked: string[] = [];
  const blocks = createResolvedBlocks({
    lookup: async (name) => {
      looked.push(name);
      return answers[name] ?? [];
    },
    spared: async () => ['203.0.113.53'],
    block: async (addresses) => {
      for (const { address, seconds } of addresses) blockedNow.set(address, seconds);
      return null;
    },
    unblock: async (address) => void blockedNow.delete(address),
    onProblem: (problem) => {
      throw new Error(problem);
    },
    now: () => clock,
  });
  return { blocks, blockedNow, looked, advance: (ms: number) => (clock += ms) };
}

describe('the addresses of blocked names', () => {
  it('blocks what a blocked name resolves to for as long as its answer lives (one minute to one hour), and tells which entry and name each is for', async () => {
    const { blocks, blockedNow } = setup({
      // Spelled as an answer may spell it; blocked (and matched against the table's reports) as nft prints it.
      'evil.test': [{ address: '198.51.100.7', ttl: 30 }, { address: '2001:0DB8:0:0::7', ttl: 86_400 }],
      'c2.evil.test': [{ address: '198.51.100.8', ttl: 300 }],
    });
    await blocks.reapplied(new Set(['evil.test']));
    await blocks.resolve('c2.evil.test');
    expect(Object.fromEntries(blockedNow)).toEqual({ '198.51.100.7': 60, '2001:db8::7': 3600, '198.51.100.8': 300 });
    expect(blocks.current().get('198.51.100.8')).toEqual({ value: 'evil.test', name: 'c2.evil.test' });
  });

  it('never blocks an address of the network\'s own ranges, a resolver, or one a name that is not blocked answered with; one seen shared later is unblocked', async () => {
    const { blocks, blockedNow } = setup({
      'evil.test': ['10.0.0.5', '192.168.1.1', '127.0.0.1', '169.254.169.254', '100.64.0.1', 'fd00::1', '::1', '::ffff:10.0.0.1', '224.0.0.251', '203.0.113.53', '198.51.100.9', '198.51.100.7']
        .map((address) => ({ address, ttl: 600 })),
    });
    blocks.answeredForOthers([{ address: '198.51.100.9', ttl: 60 }]);
    await blocks.reapplied(new Set(['evil.test']));
    expect([...blockedNow.keys()]).toEqual(['198.51.100.7']);
    blocks.answeredForOthers([{ address: '198.51.100.7', ttl: 60 }]);
    expect(blockedNow.size).toBe(0);
    expect(blocks.current().size).toBe(0);
  });

  it('takes a few addresses per name, resolves a name at most once a minute, and forgets names no longer blocked', async () => {
    const many = Array.from({ length: 40 }, (_, i) => ({ address: `198.51.100.${i + 1}`, ttl: 600 }));
    const { blocks, blockedNow, looked, advance } = setup({ 'cdn.test': many });
    await blocks.reapplied(new Set(['cdn.test']));
    expect(blockedNow.size).toBe(16);
    await blocks.resolve('cdn.test');
    expect(looked).toEqual(['cdn.test']);
    advance(61_000);
    await blocks.resolve('cdn.test');
    expect(looked).toEqual(['cdn.test', 'cdn.test']);
    await blocks.resolve('other.test');
    expect(looked).toHaveLength(2);
    await blocks.reapplied(new Set());
    expect(blocks.current().size).toBe(0);
    advance(601_000);
    expect(blocks.current().size).toBe(0);
  });

  it('drops an answer that comes back after its name was lifted', async () => {
    let answer: (value: AnsweredAddress[]) => void = () => {};
    const blockedNow: string[] = [];
    const blocks = createResolvedBlocks({
      lookup: () => new Promise((resolve) => (answer = resolve)),
      spared: async () => [],
      block: async (addresses) => {
        blockedNow.push(...addresses.map(({ address }) => address));
        return null;
      },
      unblock: async () => {},
      onProblem: () => {},
    });
    const ahead = blocks.reapplied(new Set(['slow.test']));
    await new Promise((resolve) => setImmediate(resolve));
    await blocks.reapplied(new Set());
    answer([{ address: '198.51.100.7', ttl: 600 }]);
    await ahead;
    expect(blockedNow).toEqual([]);
  });
});
