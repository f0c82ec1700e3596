/**
 * `npm run bench` (last part): what enforcing indicators costs on one
 * endpoint, with the agent's own code, as root, in namespaces of its own
 * (never this machine's own tables, resolver or mounts):
 *
 * - 100,000 address entries applied to the agent's nftables table (one nft
 *   transaction, checked afterwards), against one entry;
 * - DNS: one query at a time to a resolver directly, and to the same resolver
 *   redirected through the agent's filter; p50 and p99 of each, and the p99
 *   the filter adds;
 * - executions of a small program on a mount the exec guard holds and on one
 *   it does not, per execution (its verdicts cached, as they are once a
 *   program has run).
 *
 * Writes its section of bench/RESULTS.md. Each part runs as a child of this
 * script inside its namespace (`node bench/indicators.ts <part>`).
 */
import { replaceSection } from './report.ts';
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import dnsPacket from 'dns-packet';
import { startDnsFilter } from '../packages/agent/src/dns-filter.ts';
import { applyAddressBlocks } from '../packages/agent/src/executors/address-blocks.linux.ts';
import { systemRunner } from '../packages/agent/src/runner.ts';

const RESULTS = new URL('./RESULTS.md', import.meta.url).pathname;
const ADDRESSES = 100_000;
const DNS_SAMPLES = 5_000;
const EXECUTIONS = 2_000;
/** Rounds of executions on each mount: one round varies by tens of microseconds on a shared machine. */
const ROUNDS = 31;
const SELF = new URL(import.meta.url).pathname;

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const median = (values: number[]): number => percentile(values, 50);
const log = (message: string) => process.stderr.write(`[indicators] ${message}\n`);

/** Times applying `count` distinct addresses (in 11.0.0.0/8), five times: the median, in milliseconds. */
async function applyAddresses(count: number): Promise<number> {
  const addresses = Array.from({ length: count }, (_, i) => `11.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    const failed = await applyAddressBlocks(systemRunner, { block: addresses, audit: [] }, []);
    times.push(performance.now() - t0);
    if (failed) throw new Error(failed);
    await applyAddressBlocks(systemRunner, { block: [], audit: [] }, []);
  }
  return median(times);
}

/** One query at a time to `port` on `host`, timed from sending to the whole answer. */
async function queryTimes(host: string, port: number, samples: number): Promise<number[]> {
  const socket = createSocket('udp4');
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const query = dnsPacket.encode({ type: 'query', id: i & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `host${i}.example.org` }] });
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      socket.once('message', () => resolve());
      socket.send(query, port, host);
    });
    times.push(performance.now() - t0);
  }
  socket.close();
  return times;
}

/** Inside a network namespace of its own: the address table, then DNS directly and through the filter. */
async function networkPart(): Promise<void> {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  execFileSync('ip', ['addr', 'add', '10.53.0.1/32', 'dev', 'lo']);
  const one = await applyAddresses(1);
  const many = await applyAddresses(ADDRESSES);
  // A resolver answering every A query at once, on port 53 of an address of this namespace.
  const resolver = createSocket('udp4');
  resolver.on('message', (message, from) => {
    const query = dnsPacket.decode(message);
    resolver.send(dnsPacket.encode({ id: query.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE, questions: query.questions,
      answers: [{ type: 'A', name: query.questions![0]!.name, ttl: 60, data: '192.0.2.1' }] }), from.port, from.address);
  });
  await new Promise<void>((resolve) => resolver.bind(53, '10.53.0.1', resolve));
  await queryTimes('10.53.0.1', 53, 500); // warm-up
  const direct = await queryTimes('10.53.0.1', 53, DNS_SAMPLES);
  const filter = await startDnsFilter({ lists: () => ({ block: new Set(['blocked.example']), audit: new Set(), allow: new Set() }), onHit: () => {}, resolvers: async () => ['10.53.0.1'] });
  const redirect = await applyAddressBlocks(systemRunner, { block: [], audit: [], redirectDns: true }, []);
  if (redirect) throw new Error(redirect);
  await queryTimes('10.53.0.1', 53, 500);
  const filtered = await queryTimes('10.53.0.1', 53, DNS_SAMPLES);
  await filter.close();
  resolver.close();
  process.stdout.write(JSON.stringify({ one, many, direct: { p50: median(direct), p99: percentile(direct, 99) }, filtered: { p50: median(filtered), p99: percentile(filtered, 99) } }));
}

/** Inside a mount namespace of its own: executions on a guarded tmpfs and on one that is not, per execution in microseconds. */
async function execPart(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'quell-bench-exec-'));
  const guarded = join(root, 'guarded');
  const open = join(root, 'open');
  for (const dir of [guarded, open]) {
    mkdirSync(dir);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', dir]);
    copyFileSync('/usr/bin/true', join(dir, 'true'));
  }
  const helper = new URL('../packages/agent/dist/quell-exec-guard', import.meta.url).pathname;
  const guard = spawn(helper, [guarded], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: guard.stdout });
  await new Promise((resolve) => lines.once('line', resolve));
  // The agent's side: this program is clean, every time it is asked (once, then the helper remembers).
  lines.on('line', (line) => {
    const [, id] = line.split(' ');
    guard.stdin.write(`${id} allow\n`);
  });
  // Asynchronously: this process answers the guard, as the agent does, while the loop runs.
  const perExecution = async (dir: string): Promise<number> => {
    const t0 = performance.now();
    const code = await new Promise<number | null>((resolve) => spawn('sh', ['-c', `i=0; while [ $i -lt ${EXECUTIONS} ]; do ${dir}/true; i=$((i+1)); done`]).once('exit', resolve));
    if (code !== 0) throw new Error(`the loop on ${dir} failed (${code})`);
    return ((performance.now() - t0) * 1000) / EXECUTIONS;
  };
  await perExecution(guarded);
  // Rounds alternate which mount goes first, so that neither always runs on a warmer machine.
  const rounds: Array<{ open: number; guarded: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) rounds.push({ open: await perExecution(open), guarded: await perExecution(guarded) });
    else rounds.push({ guarded: await perExecution(guarded), open: await perExecution(open) });
  }
  guard.kill();
  for (const dir of [guarded, open]) execFileSync('umount', [dir]);
  rmSync(root, { recursive: true, force: true });
  process.stdout.write(JSON.stringify({ open: median(rounds.map((r) => r.open)), guarded: median(rounds.map((r) => r.guarded)), added: median(rounds.map((r) => r.guarded - r.open)) }));
}

async function main(): Promise<void> {
  const part = process.argv[2];
  if (part === 'network') return networkPart();
  if (part === 'exec') return execPart();
  if (process.getuid?.() !== 0) throw new Error('bench/indicators.ts needs root: it makes network and mount namespaces');
  const load = loadavg()[0]!;
  const namespace = `quell-bench-${process.pid}`;
  execFileSync('ip', ['netns', 'add', namespace]);
  let network: { one: number; many: number; direct: { p50: number; p99: number }; filtered: { p50: number; p99: number } };
  try {
    log('address table and DNS, in a network namespace of its own');
    network = JSON.parse(execFileSync('ip', ['netns', 'exec', namespace, process.execPath, '--import', 'tsx', SELF, 'network'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  } finally {
    execFileSync('ip', ['netns', 'del', namespace]);
  }
  log('executions, in a mount namespace of its own');
  const exec = JSON.parse(execFileSync('unshare', ['--mount', '--propagation', 'private', process.execPath, '--import', 'tsx', SELF, 'exec'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as { open: number; guarded: number; added: number };
  const addedDns = network.filtered.p99 - network.direct.p99;
  const addedExec = exec.added;
  const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
  const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 0)} ms`;
  const section = [
    '<!-- indicators:start -->',
    '## Indicators on one endpoint',
    '',
    `Produced by \`bench/indicators.ts\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; 1-minute load average ${load.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end.`,
    'The agent\'s own code, as root, in a network namespace and a mount namespace of the benchmark\'s own.',
    '',
    '| measure | target | result |',
    '|---|---|---|',
    `| one address applied to the agent's table (nft transaction and its check), median of 5 |  | ${ms(network.one)} |`,
    `| **${ADDRESSES.toLocaleString('en')} addresses applied**, median of 5 | ≤ 1 s | **${ms(network.many)}** (${verdict(network.many <= 1000)}) |`,
    `| DNS query answered by the resolver directly, p50 / p99 (${DNS_SAMPLES.toLocaleString('en')} queries, one at a time) |  | ${ms(network.direct.p50)} / ${ms(network.direct.p99)} |`,
    `| the same queries redirected through the agent's DNS filter, p50 / p99 |  | ${ms(network.filtered.p50)} / ${ms(network.filtered.p99)} |`,
    `| **p99 the filter adds** | ≤ 1 ms | **${ms(addedDns)}** (${verdict(addedDns <= 1)}) |`,
    `| execution of a small program on a mount the exec guard does not hold (median of ${ROUNDS} rounds × ${EXECUTIONS.toLocaleString('en')}) |  | ${exec.open.toFixed(0)} µs |`,
    `| the same on a mount it holds, its verdict cached |  | ${exec.guarded.toFixed(0)} µs |`,
    `| **what the exec guard adds per execution** (median of the rounds' differences) | ≤ 50 µs | **${addedExec.toFixed(0)} µs** (${verdict(addedExec <= 50)}) |`,
    '',
    'The DNS clock runs from sending a query to receiving its whole answer; the resolver answers at once, so the difference is the redirect and the filter.',
    'Executions are timed in a shell loop, from the loop\'s start to its end; the first execution of the program (the one the agent is asked about) is not in the timed rounds.',
    '<!-- indicators:end -->',
  ].join('\n');
  replaceSection(RESULTS, 'indicators', section);
  process.stdout.write(`${section}\n`);
}

await main();
