import { describe, expect, it } from 'vitest';
import { addressOrRange, entryHolding } from './addresses.ts';

describe('addresses and ranges of address indicators', () => {
  it('keeps one form of each: an address as nft prints it, a range as its network and prefix length', () => {
    expect(addressOrRange(' 192.0.2.7 ')).toEqual({ value: '192.0.2.7', family: 4 });
    expect(addressOrRange('192.0.2.7/32')).toEqual({ value: '192.0.2.7', family: 4 });
    expect(addressOrRange('10.9.3.4/16')).toEqual({ value: '10.9.0.0/16', family: 4 });
    expect(addressOrRange('2001:0DB8::0001')).toEqual({ value: '2001:db8::1', family: 6 });
    expect(addressOrRange('2001:DB8::1:2/64')).toEqual({ value: '2001:db8::/64', family: 6 });
  });

  it('refuses what is neither, and a range wider than /8 or /16 that would cut devices off the internet', () => {
    for (const value of ['1.2.3', '010.1.1.1', '0x0a.1.1.1', 'fe80::1%eth0', 'example.org', '10.0.0.1/abc', '10.0.0.1/33', '10.0.0.0/16/2', '10.0.0.0/', '2001:db8::/129', '']) {
      expect(addressOrRange(value), value).toHaveProperty('problem');
    }
    expect(addressOrRange('10.0.0.0/7')).toEqual({ problem: 'a range wider than /8 would cut devices off from most of the internet: 10.0.0.0/7' });
    expect(addressOrRange('::/0')).toHaveProperty('problem');
    expect(addressOrRange('10.0.0.0/8')).toEqual({ value: '10.0.0.0/8', family: 4 });
  });

  it('tells which entry a remote address matched: the narrowest one that holds it', () => {
    const entries = ['10.0.0.0/8', '10.9.0.0/16', '10.9.3.4', '2001:db8::/32', 'not an entry'];
    expect(entryHolding('10.9.3.4', entries)).toBe('10.9.3.4');
    expect(entryHolding('10.9.7.1', entries)).toBe('10.9.0.0/16');
    expect(entryHolding('10.200.0.1', entries)).toBe('10.0.0.0/8');
    expect(entryHolding('::ffff:10.9.7.1', entries)).toBe('10.9.0.0/16');
    expect(entryHolding('2001:db8:1::5', entries)).toBe('2001:db8::/32');
    expect(entryHolding('192.0.2.1', entries)).toBeNull();
    expect(entryHolding('not an address', entries)).toBeNull();
  });
});
