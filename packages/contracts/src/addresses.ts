import ipaddr from 'ipaddr.js';

/** The widest ranges an address indicator may block: wider ones would cut devices off from most of the internet. */
export const WIDEST_BLOCKED_PREFIX = { 4: 8, 6: 16 } as const;

/**
 * An IPv4 or IPv6 address, or a range in CIDR notation, in the one form it is
 * stored, signed and enforced in: the address as nft prints it (IPv6
 * compressed), a range as its network address and prefix length
 * (`10.9.3.4/16` is `10.9.0.0/16`; a full-length prefix is the address).
 * Null with the reason when it is neither, or a range too wide to block.
 */
export function addressOrRange(raw: string): { value: string; family: 4 | 6 } | { problem: string } {
  const [address = '', prefix, ...rest] = raw.trim().split('/');
  // Four-part decimal only for IPv4 (not `10.1` or `0x0a.1.1.1`, which parsers also take); IPv6 without a zone (`%eth0`).
  const version = ipaddr.IPv4.isValidFourPartDecimal(address) ? 4 : !/[.%]/.test(address) && ipaddr.IPv6.isValid(address) ? 6 : 0;
  if (version === 0 || rest.length > 0) return { problem: `not an IP address or CIDR range: ${JSON.stringify(raw.slice(0, 100))}` };
  const family: 4 | 6 = version;
  const bits = family === 4 ? 32 : 128;
  if (prefix === undefined) return { value: ipaddr.parse(address).toString(), family };
  const length = /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
  if (length < 0 || length > bits) return { problem: `not a prefix length of an IPv${family} range: ${JSON.stringify(prefix.slice(0, 10))}` };
  if (length < WIDEST_BLOCKED_PREFIX[family]) return { problem: `a range wider than /${WIDEST_BLOCKED_PREFIX[family]} would cut devices off from most of the internet: ${raw.trim()}` };
  if (length === bits) return { value: ipaddr.parse(address).toString(), family };
  const network = family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${length}`) : ipaddr.IPv6.networkAddressFromCIDR(`${address}/${length}`);
  return { value: `${network.toString()}/${length}`, family };
}

/** Ranges of a network's own (private, loopback, link-local, shared, multicast, unspecified): no answer of a name's DNS may have them blocked. */
const LOCAL_RANGES = new Set(['unspecified', 'broadcast', 'multicast', 'linkLocal', 'loopback', 'private', 'uniqueLocal', 'carrierGradeNat']);

/** True for an address that belongs to a network's own ranges (an IPv4-mapped IPv6 address as its IPv4 one); false for any other, and for what is not an address. */
export function isLocalAddress(address: string): boolean {
  return ipaddr.isValid(address) && LOCAL_RANGES.has(ipaddr.process(address).range());
}

/**
 * The narrowest of `entries` (addresses and ranges as `addressOrRange`
 * spells them) that holds `address`, or null: which indicator a remote
 * address matched.
 */
export function entryHolding(address: string, entries: readonly string[]): string | null {
  if (!ipaddr.isValid(address)) return null;
  const parsed = ipaddr.process(address);
  let best: { entry: string; bits: number } | null = null;
  for (const entry of entries) {
    const [network = '', prefix] = entry.split('/');
    if (!ipaddr.isValid(network)) continue;
    const base = ipaddr.process(network);
    if (base.kind() !== parsed.kind()) continue;
    const bits = prefix === undefined ? (parsed.kind() === 'ipv4' ? 32 : 128) : Number(prefix);
    if (parsed.match(base, bits) && (best === null || bits > best.bits)) best = { entry, bits };
  }
  return best?.entry ?? null;
}

/** A domain name as indicators store it: lower case, labels of letters, digits and hyphens, a top-level label of letters, no trailing dot. */
export const DOMAIN_NAME = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/** The name a domain or URL indicator is enforced at: the domain, or the URL's host when that is a domain name (not an address). */
export function enforcedName(type: string, value: string): string | null {
  if (type === 'domain') return value;
  if (type !== 'url') return null;
  try {
    const host = new URL(value).hostname;
    return DOMAIN_NAME.test(host) ? host : null;
  } catch {
    return null;
  }
}

/**
 * The narrowest entry of `domains` that is `name` or a parent of it
 * (`evil.example` holds `c2.evil.example`), or null.
 */
export function domainHolding(name: string, domains: ReadonlySet<string>): string | null {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join('.');
    if (domains.has(candidate)) return candidate;
  }
  return null;
}
