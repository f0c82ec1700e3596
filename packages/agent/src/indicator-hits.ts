import { readFile } from 'node:fs/promises';
import { INDICATOR_HITS_MAX, type IndicatorHit, entryHolding } from '@quell/contracts';
import { SEEN_SETS, readSeenAddresses } from './executors/address-blocks.linux.ts';
import type { CommandRunner } from './runner.ts';

/** Hits kept while the server is out of reach or slow to answer; beyond this, the oldest go. */
const MAX_HELD_HITS = 10_000;
/** A report not acknowledged within this long is sent again (the server counts each report once). */
const RESEND_AFTER_MS = 10_000;

export interface HitReporter {
  /** A hit to report, merged with those like it not yet sent. */
  add(hit: IndicatorHit): void;
  /** Sends the report waiting for its acknowledgement again (after a reconnect), or the next one. */
  flush(options?: { resend: boolean }): void;
  acknowledged(seq: number): void;
  close(): void;
}

const sameHit = (hit: IndicatorHit): string => JSON.stringify([hit.value, hit.action, hit.remote, hit.direction, hit.name, hit.path, hit.sha256]);

/**
 * Reports indicator hits to the server, signed, one report at a time: the
 * next goes once the server has acknowledged the last. Each report's
 * sequence number grows (milliseconds, so a restarted agent goes on above
 * its last), which lets the server count a report sent twice only once.
 */
export function createHitReporter(options: { sign(seq: number, hits: IndicatorHit[]): string; send(jws: string): boolean; intervalMs: number }): HitReporter {
  const held = new Map<string, IndicatorHit>();
  let waiting: { seq: number; jws: string; sentAt: number } | null = null;
  let lastSeq = 0;

  function flush({ resend } = { resend: false }): void {
    if (waiting === null && held.size > 0) {
      const hits = [...held.values()].slice(0, INDICATOR_HITS_MAX);
      for (const hit of hits) held.delete(sameHit(hit));
      lastSeq = Math.max(lastSeq + 1, Date.now());
      waiting = { seq: lastSeq, jws: options.sign(lastSeq, hits), sentAt: 0 };
    }
    if (waiting === null || (!resend && waiting.sentAt > Date.now() - RESEND_AFTER_MS)) return;
    if (options.send(waiting.jws)) waiting.sentAt = Date.now();
  }

  const timer = setInterval(flush, options.intervalMs);
  timer.unref();
  return {
    add(hit) {
      const key = sameHit(hit);
      const known = held.get(key);
      if (known) {
        held.set(key, { ...known, ...hit, process: hit.process ?? known.process, user: hit.user ?? known.user, count: known.count + hit.count, firstAt: known.firstAt });
        return;
      }
      if (held.size >= MAX_HELD_HITS) held.delete(held.keys().next().value!);
      held.set(key, hit);
    },
    flush,
    acknowledged(seq) {
      if (waiting?.seq !== seq) return;
      waiting = null;
      flush();
    },
    close: () => clearInterval(timer),
  };
}

/**
 * Reads, every `intervalMs` and when asked, which remote addresses matched a block or
 * audit entry of the agent's table since it last looked, and hands each
 * over as a hit on the entry that holds it, with the process and user that
 * had a connection to it open then, where there was one.
 */
export function watchAddressHits(options: {
  runner: CommandRunner;
  intervalMs: number;
  /** The address block and audit entries in force. */
  entries: () => { block: readonly string[]; audit: readonly string[] };
  /** The addresses blocked names resolved to, blocked now, with the entry and name each is blocked for. */
  resolved?: () => ReadonlyMap<string, { value: string; name: string }>;
  onHit: (hit: IndicatorHit) => void;
  onError: (error: Error) => void;
}): { readNow(): Promise<void>; close(): void } {
  /** Packets counted per set and remote address at the last look; the table's counters start again when it is replaced. */
  let last = new Map<string, number>();
  let looking: Promise<void> | null = null;

  async function look(): Promise<void> {
    const entries = options.entries();
    const resolved = options.resolved?.() ?? new Map<string, { value: string; name: string }>();
    const families = (list: readonly string[]) => new Set(list.map((entry) => (entry.includes(':') ? 6 : 4)));
    const wanted = { block: families([...entries.block, ...resolved.keys()]), audit: families(entries.audit) };
    const sets = SEEN_SETS.filter((set) => wanted[set.action].has(set.family));
    if (sets.length === 0) {
      last = new Map();
      return;
    }
    const now = Date.now();
    const counted = new Map<string, number>();
    for (const seen of await readSeenAddresses(options.runner, sets)) {
      const key = `${seen.action}:${seen.direction}:${seen.remote}`;
      counted.set(key, seen.packets);
      const before = last.get(key) ?? 0;
      const count = seen.packets >= before ? seen.packets - before : seen.packets;
      if (count === 0) continue;
      const value = entryHolding(seen.remote, entries[seen.action]);
      const resolvedFor = value === null && seen.action === 'block' ? resolved.get(seen.remote) : undefined;
      if (value === null && resolvedFor === undefined) continue; // lifted since
      const owner = await socketOwner(options.runner, ['-Htunap', 'dst', seen.remote.includes(':') ? `[${seen.remote}]` : seen.remote]);
      options.onHit({ value: value ?? resolvedFor!.value, ...(resolvedFor ? { name: resolvedFor.name } : {}), action: seen.action, remote: seen.remote, direction: seen.direction, ...owner, count, firstAt: now, lastAt: now });
    }
    last = counted;
  }

  const lookOnce = (): Promise<void> => (looking ??= look().catch(options.onError).finally(() => (looking = null)));
  const timer = setInterval(() => void lookOnce(), options.intervalMs);
  timer.unref();
  return {
    // Replacing the table empties its sets: the agent reads them just before, in a look that starts after it asked.
    readNow: async () => {
      await looking;
      await lookOnce();
    },
    close: () => clearInterval(timer),
  };
}

/** `ss` runs at most this many times a second to name hits' processes: beyond, hits go without (a flood of queries must not start a process each). */
const OWNER_LOOKUPS_PER_SECOND = 20;
const ownerLookups = { second: 0, count: 0 };
/** The account database, read again at most once a minute: a hit names its user without reading the file each time. */
const accounts = { text: '', at: 0 };
async function accountDatabase(): Promise<string> {
  if (Date.now() - accounts.at > 60_000) Object.assign(accounts, { text: await readFile('/etc/passwd', 'utf8').catch(() => ''), at: Date.now() });
  return accounts.text;
}

/** The process (and its user) with a socket `ss` finds with these arguments open now; nothing when there is none, it is gone, or too many were asked this second. */
export async function socketOwner(runner: CommandRunner, ssArguments: readonly string[]): Promise<Pick<IndicatorHit, 'process' | 'user'>> {
  const second = Math.floor(Date.now() / 1000);
  if (ownerLookups.second !== second) Object.assign(ownerLookups, { second, count: 0 });
  if (++ownerLookups.count > OWNER_LOOKUPS_PER_SECOND) return {};
  const listed = await runner.run('ss', [...ssArguments]);
  const match = /users:\(\("((?:[^"\\]|\\.)*)",pid=(\d+)/.exec(listed.code === 0 ? listed.stdout : '');
  if (!match) return {};
  const pid = Number(match[2]);
  const [commandLine, status, passwd] = await Promise.all([
    readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
    readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''),
    accountDatabase(),
  ]);
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  const user = uid === undefined ? undefined : passwd.split('\n').map((line) => line.split(':')).find((fields) => fields[2] === uid)?.[0] ?? uid;
  const args = commandLine.split('\0').filter(Boolean).join(' ').slice(0, 4096);
  return { process: { pid, name: match[1]!.slice(0, 1024), ...(args ? { commandLine: args } : {}) }, ...(user ? { user: user.slice(0, 256) } : {}) };
}
