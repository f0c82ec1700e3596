import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isolationNeeds, isolationRuleset } from './isolation.linux.ts';

describe('the isolation ruleset', () => {
  const work = mkdtempSync(join(tmpdir(), 'quell-isolation-rules-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('keeps DHCP, IPv6 neighbour discovery and DNS to the host\'s resolvers only, drops forwarded and bridged traffic, and loads in nftables', () => {
    const ruleset = isolationRuleset(['192.0.2.10'], { resolvers: ['192.0.2.53', '2001:db8::53'], bridges: true });
    expect(ruleset).toContain('udp sport 67 udp dport 68 accept');
    expect(ruleset).toContain('udp sport 546 udp dport 547 accept');
    expect(ruleset).toMatch(/icmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit \} accept/);
    expect(ruleset).toContain('ip daddr 192.0.2.53 udp dport 53 accept');
    expect(ruleset).toContain('ip6 daddr 2001:db8::53 tcp dport 53 accept');
    expect(ruleset.match(/dport 53/g)).toHaveLength(4);
    expect(ruleset).toMatch(/table inet quell_isolation \{[\s\S]*chain forward \{\s*type filter hook forward priority -200; policy drop;\s*\}/);
    expect(ruleset).toMatch(/table bridge quell_isolation \{[\s\S]*policy drop;/);
    expect(isolationRuleset([], { resolvers: [], bridges: false })).not.toContain('table bridge');
    // nftables itself accepts it (checked, not applied, in a namespace of its own).
    const ns = `qrules${process.pid}`.slice(0, 15);
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', '-'], { input: `${ruleset}\n` });
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });

  it('refuses anything that is not an address, allowance or resolver alike', () => {
    expect(() => isolationRuleset(['10.0.0.1; flush ruleset'], { resolvers: [], bridges: false })).toThrow(/not an IP address/);
    expect(() => isolationRuleset([], { resolvers: ['dns.example'], bridges: false })).toThrow(/not an IP address/);
  });

  it('finds the resolvers the host uses (behind systemd-resolved\'s stub too) and whether it has bridges', () => {
    const stub = join(work, 'resolv.conf');
    const upstream = join(work, 'upstream.conf');
    writeFileSync(stub, '# managed\nnameserver 127.0.0.53\noptions edns0\nsearch example\n');
    writeFileSync(upstream, 'nameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver not-an-address\n');
    const net = join(work, 'net');
    mkdirSync(join(net, 'eth0'), { recursive: true });
    expect(isolationNeeds([stub, upstream, join(work, 'missing')], net)).toEqual({ resolvers: ['192.0.2.53', 'fe80::1'], bridges: false });
    mkdirSync(join(net, 'br0', 'bridge'), { recursive: true });
    expect(isolationNeeds([stub], net)).toEqual({ resolvers: [], bridges: true });
  });
});
