import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { isIP } from 'node:net';
import { type IndicatorHit, domainHolding } from '@quell/contracts';
import dnsPacket from 'dns-packet';

/** Where the filter listens, on loopback: the agent's table redirects the endpoint's DNS queries here. */
export const DNS_FILTER_PORT = 53535;
/** Source ports of the filter's own queries to the real resolvers: the redirect lets these through. */
export const UPSTREAM_PORTS = { first: 61000, last: 61999 } as const;
/** How long one resolver has to answer before the next is asked. */
const UPSTREAM_TIMEOUT_MS = 2000;
/** How often the resolvers are read again from resolv.conf. */
const RESOLVERS_TTL_MS = 5000;
/** Queries answered at once; beyond this, UDP queries are dropped (their clients ask again) and TCP ones get SERVFAIL. */
const MAX_QUERIES_IN_FLIGHT = 512;
/** TCP connections held open at once; a new one beyond closes the oldest, so idle connections cannot lock clients out. */
const MAX_TCP_CONNECTIONS = 256;
const REFUSED = 5;
const SERVFAIL = 2;

export interface DnsLists { block: ReadonlySet<string>; audit: ReadonlySet<string>; allow: ReadonlySet<string> }

export interface DnsFilter {
  close(): Promise<void>;
}

/** An address in a DNS answer, with how long the answer may be kept, in seconds. */
export interface AnsweredAddress { address: string; ttl: number }

/**
 * The resolvers the endpoint is configured with, as the filter forwards to
 * them: those of /etc/resolv.conf that are not on loopback, or else those of
 * systemd-resolved's own list (a local stub would send its queries back here).
 */
/** The configured resolvers, read again at most every few seconds: one list for the filter and the lookups of blocked names. */
export function cachedResolvers(read: () => Promise<string[]> = configuredResolvers): () => Promise<string[]> {
  let cached: { list: string[]; at: number } = { list: [], at: 0 };
  return async () => {
    if (Date.now() - cached.at > RESOLVERS_TTL_MS) cached = { list: await read(), at: Date.now() };
    return cached.list;
  };
}

export async function configuredResolvers(files = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']): Promise<string[]> {
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const servers = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!.replace(/%.*$/, ''))
      .filter((address) => isIP(address) !== 0 && !/^(127\.|::1$|0\.0\.0\.0$)/.test(address));
    if (servers.length > 0) return servers;
  }
  return [];
}

/** What the filter does with a name: the entry of the state that decides, and whether it is refused or reported. */
export function verdictFor(name: string, lists: DnsLists): { action: 'block' | 'audit'; entry: string } | null {
  // An allow wins over both, whatever its depth.
  if (domainHolding(name, lists.allow) !== null) return null;
  const blocked = domainHolding(name, lists.block);
  if (blocked !== null) return { action: 'block', entry: blocked };
  const audited = domainHolding(name, lists.audit);
  return audited === null ? null : { action: 'audit', entry: audited };
}

/** The answer to `query` with only a response code: the question echoed, no records. */
function replyWith(query: dnsPacket.Packet, rcode: number): Buffer {
  const recursion = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  return dnsPacket.encode({ id: query.id, type: 'response', flags: recursion | dnsPacket.RECURSION_AVAILABLE | rcode, questions: query.questions });
}

const randomUpstreamPort = (): number => UPSTREAM_PORTS.first + Math.floor(Math.random() * (UPSTREAM_PORTS.last - UPSTREAM_PORTS.first + 1));

/** One query over UDP from a port of the reserved range, the answer unchanged; null when none comes in time. */
function askOverUdp(server: string, query: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket: UdpSocket = createSocket(isIP(server) === 6 ? 'udp6' : 'udp4');
    const done = (answer: Buffer | null): void => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(null), UPSTREAM_TIMEOUT_MS);
    socket.on('error', () => done(null));
    // The answer must come from the server asked, for this query's id.
    socket.on('message', (message, from) => {
      if (from.address === server && from.port === 53 && message.length >= 2 && message.readUInt16BE(0) === query.readUInt16BE(0)) done(message);
    });
    socket.bind(randomUpstreamPort(), () => socket.send(query, 53, server));
  });
}

/** One query over TCP (two-byte length prefix) from a port of the reserved range; null when no whole answer comes in time. */
function askOverTcp(server: string, query: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: server, port: 53, localPort: randomUpstreamPort() });
    let received = Buffer.alloc(0);
    const done = (answer: Buffer | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(null), UPSTREAM_TIMEOUT_MS);
    socket.on('error', () => done(null));
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query])));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) done(received.subarray(2, 2 + received.readUInt16BE(0)));
    });
  });
}

/** The addresses of an answer's A and AAAA records, whatever name (or alias) they are for; none when it is not a DNS answer. */
export function answeredAddresses(bytes: Buffer): AnsweredAddress[] {
  let answer: dnsPacket.Packet;
  try {
    answer = dnsPacket.decode(bytes);
  } catch {
    return [];
  }
  return (answer.answers ?? []).flatMap((record) => ((record.type === 'A' || record.type === 'AAAA') && typeof record.data === 'string'
    ? [{ address: record.data, ttl: record.ttl ?? 0 }] : []));
}

/** What the configured resolvers answer for a name's A and AAAA records, asked from the reserved ports. */
export async function lookupAddresses(name: string, resolvers: readonly string[]): Promise<AnsweredAddress[]> {
  const found: AnsweredAddress[] = [];
  for (const type of ['A', 'AAAA'] as const) {
    const query = dnsPacket.encode({ type: 'query', id: Math.floor(Math.random() * 65_536), flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
    for (const server of resolvers) {
      const answer = await askOverUdp(server, query);
      if (answer === null) continue;
      found.push(...answeredAddresses(answer).filter(({ address }) => isIP(address) === (type === 'A' ? 4 : 6)));
      break;
    }
  }
  return found;
}

/**
 * The endpoint's DNS filter: answers queries for blocked names (and their
 * subdomains) with REFUSED, passes every other query unchanged to the
 * configured resolvers and their answers back unchanged, and reports the
 * names that match a block or audit entry. Listens on loopback, over UDP
 * and TCP, for IPv4 and IPv6.
 */
export async function startDnsFilter(options: {
  lists: () => DnsLists;
  onHit: (hit: IndicatorHit, client: { protocol: 'udp' | 'tcp'; port: number }) => void;
  /** The addresses of each answer passed on to the endpoint, told once it has gone. */
  onForwarded?: (addresses: AnsweredAddress[]) => void;
  resolvers?: () => Promise<string[]>;
  port?: number;
}): Promise<DnsFilter> {
  const port = options.port ?? DNS_FILTER_PORT;
  let inFlight = 0;
  const currentResolvers = options.resolvers ?? cachedResolvers();

  async function answer(bytes: Buffer, client: { protocol: 'udp' | 'tcp'; port: number }): Promise<Buffer | null> {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(bytes);
    } catch {
      return null; // not DNS: nothing to answer
    }
    const names = (query.questions ?? []).map((question) => question.name.toLowerCase());
    if (query.type !== 'query' || names.length === 0) return null;
    // Every question is looked at: a blocked name second in a query is refused like a first.
    const lists = options.lists();
    const verdicts = names.flatMap((name) => {
      const verdict = verdictFor(name, lists);
      return verdict === null ? [] : [{ name, ...verdict }];
    });
    const now = Date.now();
    for (const verdict of verdicts) options.onHit({ value: verdict.entry, action: verdict.action, name: verdict.name.slice(0, 253), count: 1, firstAt: now, lastAt: now }, client);
    if (verdicts.some((verdict) => verdict.action === 'block')) return replyWith(query, REFUSED);
    if (inFlight >= MAX_QUERIES_IN_FLIGHT) return client.protocol === 'udp' ? null : replyWith(query, SERVFAIL);
    inFlight += 1;
    try {
      for (const server of await currentResolvers()) {
        const upstream = await (client.protocol === 'udp' ? askOverUdp(server, bytes) : askOverTcp(server, bytes));
        if (upstream) {
          if (options.onForwarded) setImmediate(() => options.onForwarded!(answeredAddresses(upstream)));
          return upstream;
        }
      }
      return replyWith(query, SERVFAIL);
    } finally {
      inFlight -= 1;
    }
  }

  const udpBinding = Promise.allSettled((['udp4', 'udp6'] as const).map((type) => new Promise<UdpSocket | null>((resolve, reject) => {
    const socket = createSocket(type);
    socket.once('error', (error: NodeJS.ErrnoException) => (type === 'udp6' && error.code === 'EADDRNOTAVAIL' ? resolve(null) : reject(error)));
    socket.bind(port, type === 'udp4' ? '127.0.0.1' : '::1', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      socket.on('message', (message, from) => {
        void answer(message, { protocol: 'udp', port: from.port }).then((reply) => reply && socket.send(reply, from.port, from.address));
      });
      resolve(socket);
    });
  })));

  const connections = new Set<Socket>();
  const tcpBinding = Promise.allSettled(['127.0.0.1', '::1'].map((host) => new Promise<Server | null>((resolve, reject) => {
    const server = createServer((socket) => {
      if (connections.size >= MAX_TCP_CONNECTIONS) {
        const oldest = connections.values().next().value!;
        connections.delete(oldest);
        oldest.destroy();
      }
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
      let buffered = Buffer.alloc(0);
      socket.on('error', () => {});
      socket.setTimeout(10_000, () => socket.destroy());
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
          buffered = buffered.subarray(2 + message.length);
          void answer(message, { protocol: 'tcp', port: socket.remotePort ?? 0 }).then((reply) => {
            if (reply && !socket.destroyed) socket.write(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
          });
        }
        if (buffered.length > 65_537) socket.destroy();
      });
    });
    server.once('error', (error: NodeJS.ErrnoException) => (host === '::1' && error.code === 'EADDRNOTAVAIL' ? resolve(null) : reject(error)));
    server.listen(port, host, () => resolve(server));
  })));

  const [udpResults, tcpResults] = await Promise.all([udpBinding, tcpBinding]);
  const udp = udpResults.map((r) => (r.status === 'fulfilled' ? r.value : null));
  const tcp = tcpResults.map((r) => (r.status === 'fulfilled' ? r.value : null));
  const failed = [...udpResults, ...tcpResults].find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const close = async (): Promise<void> => {
    for (const socket of udp) socket?.close();
    for (const socket of connections) socket.destroy();
    await Promise.all(tcp.map((server) => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))));
  };
  if (failed) {
    await close();
    throw new Error(`the DNS filter cannot listen on port ${port}: ${(failed.reason as Error).message}`);
  }

  return { close };
}
